"""The seed corpus: synthetic, short, non-operational examples written for this project.

JSON Lines in ``classifiers/seed/`` (one file per language) with ``id``, ``text``, ``labels``
(taxonomy labels; empty for negatives), ``lang``, ``category`` (``propaganda`` for positives,
else the kind of negative) and ``split`` (``train`` or ``test``, fixed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from classifiers.base import LABELS

EASY_NEGATIVE = "everyday"
"""The one negative category that is not a hard negative."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: tuple[str, ...]
    lang: str | None = None
    category: str | None = None
    split: str | None = None

    @property
    def positive(self) -> bool:
        return bool(self.labels)

    @property
    def hard_negative(self) -> bool:
        return not self.labels and self.category not in (None, EASY_NEGATIVE)


def seed_files() -> list[Path]:
    folder = Path(str(files("classifiers").joinpath("seed")))
    return sorted(folder.glob("*.jsonl"))


def read_examples(paths: Iterable[Path | str], split: str | None = None) -> list[Example]:
    """Labelled examples from JSON Lines files, optionally only one ``split``."""
    examples = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    example = example_from_row(json.loads(line), f"{Path(path).name}:{number}")
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from exc
                if split is None or example.split == split:
                    examples.append(example)
    return examples


def example_from_row(row: dict[str, Any], default_id: str) -> Example:
    """One example from a corpus-format object (``text``, ``labels`` and optional fields)."""
    labels = tuple(row.get("labels") or ())
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}")
    return Example(
        id=str(row.get("id", default_id)),
        text=row["text"],
        labels=labels,
        lang=row.get("lang"),
        category=row.get("category"),
        split=row.get("split"),
    )


def examples_from_records(records: Iterable[dict[str, Any]]) -> list[Example]:
    """Reviewers' decisions (examples topic records) as examples; the latest decision on an item
    wins, since a reviewer may correct an earlier one."""
    latest: dict[str, Example] = {}
    for number, record in enumerate(records, 1):
        item_id = (record.get("review") or {}).get("item_id") or str(number)
        latest[item_id] = example_from_row(record, f"decision:{number}")
    return list(latest.values())


def seed_examples(split: str | None = None) -> list[Example]:
    """The project's seed corpus, optionally one split."""
    return read_examples(seed_files(), split)
