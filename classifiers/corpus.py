"""The seed corpus: synthetic, short, non-operational examples written for this project.

JSON Lines in ``classifiers/seed/`` (one file per language) with ``id``, ``text``, ``labels``
(taxonomy labels; empty for negatives), ``lang``, ``category`` (``propaganda`` for positives,
else the kind of negative, see ``CATEGORIES``), ``split`` (``train`` or ``test``, fixed) and an
optional ``pair``: the two members of a contrast pair (a positive and a near-identical negative
sharing its cue words) carry the same pair id and the same split.

``classifiers/seed/independent/`` holds one independent test set per language, in the same format
with ``split`` ``independent``: written in a different style (other groups, voices and topics),
never trained on, read by ``independent_examples()`` or ``seed_examples("independent")``.
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

POSITIVE_CATEGORY = "propaganda"
NEGATIVE_CATEGORIES = (
    "news",
    "court",
    "research",
    "counter_speech",
    "policy",
    "idiom",
    "game",
    "manual",
    "recruiting_ad",
    "history",
    "fiction",
    # Topics the independent test sets draw their hard negatives from (violent idioms and cue
    # words in everyday subjects), so that they test more than the seed files' own style.
    "sports",
    "weather",
    "cooking",
    "local_politics",
    EASY_NEGATIVE,
)
CATEGORIES = (POSITIVE_CATEGORY, *NEGATIVE_CATEGORIES)
"""Every ``category`` a corpus line may have."""

SEED_SPLITS = ("train", "test")
INDEPENDENT = "independent"
"""The split of the independent test sets (``classifiers/seed/independent/``)."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: tuple[str, ...]
    lang: str | None = None
    category: str | None = None
    split: str | None = None
    pair: str | None = None

    @property
    def positive(self) -> bool:
        return bool(self.labels)

    @property
    def hard_negative(self) -> bool:
        return not self.labels and self.category not in (None, EASY_NEGATIVE)


def _seed_folder() -> Path:
    return Path(str(files("classifiers").joinpath("seed")))


def seed_files() -> list[Path]:
    """The seed corpus's files (train and test), one per language: the top folder only, so never
    the independent test sets."""
    return sorted(_seed_folder().glob("*.jsonl"))


def independent_files() -> list[Path]:
    """The independent test sets, one per language."""
    return sorted((_seed_folder() / INDEPENDENT).glob("*.jsonl"))


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
        pair=row.get("pair"),
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
    """The project's seed corpus, optionally one split (``train`` or ``test``); ``independent``
    gives the independent test sets instead, which no other value (not even ``None``) includes."""
    if split == INDEPENDENT:
        return independent_examples()
    return read_examples(seed_files(), split)


def independent_examples() -> list[Example]:
    """The independent test sets, all languages: for evaluation only, never for training."""
    return read_examples(independent_files())
