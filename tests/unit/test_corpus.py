"""The seed corpus and the independent test sets: format, taxonomy, splits, pairs, no leaks.

Loops over whatever language files exist, so files arriving from other branches are checked too.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from classifiers.base import LABELS
from classifiers.corpus import (
    CATEGORIES,
    INDEPENDENT,
    POSITIVE_CATEGORY,
    SEED_SPLITS,
    Example,
    independent_examples,
    independent_files,
    read_examples,
    seed_examples,
    seed_files,
)

KEYS = ["id", "text", "labels", "lang", "category", "split"]
SEED = seed_files()
INDEPENDENT_FILES = independent_files()
ALL = SEED + INDEPENDENT_FILES


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def test_the_english_and_dutch_files_exist() -> None:
    assert {p.stem for p in SEED} >= {"en", "nl"}
    assert {p.stem for p in INDEPENDENT_FILES} >= {"en", "nl"}


def test_seed_files_do_not_include_the_independent_sets() -> None:
    assert all(p.parent.name == "seed" for p in SEED)
    assert all(p.parent.name == INDEPENDENT for p in INDEPENDENT_FILES)
    assert not {e.split for e in seed_examples()} & {INDEPENDENT}


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_line_parses_in_the_corpus_format(path: Path) -> None:
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines, "no examples"
    for number, line in enumerate(lines, 1):
        row = json.loads(line)
        where = f"{path.name}:{number}"
        keys = list(row)
        assert keys[: len(KEYS)] == KEYS and set(keys[len(KEYS) :]) <= {"pair"}, where
        assert isinstance(row["text"], str) and 0 < len(row["text"]) < 300, where
        assert row["text"] == row["text"].strip(), where
        assert isinstance(row["labels"], list) and set(row["labels"]) <= set(LABELS), where
        assert len(set(row["labels"])) == len(row["labels"]), where
        assert row["lang"] == path.stem, where
        assert row["category"] in CATEGORIES, where
        assert (row["category"] == POSITIVE_CATEGORY) == bool(row["labels"]), where
        assert "pair" not in row or (isinstance(row["pair"], str) and row["pair"]), where
    read_examples([path])  # and the loader accepts it


def test_ids_are_unique_across_all_files() -> None:
    ids = Counter(e.id for e in read_examples(ALL))
    assert not [i for i, n in ids.items() if n > 1]


def test_seed_splits_are_train_or_test_and_independent_splits_independent() -> None:
    assert {e.split for e in read_examples(SEED)} <= set(SEED_SPLITS)
    assert {e.split for e in read_examples(INDEPENDENT_FILES)} == {INDEPENDENT}


def test_the_independent_api_returns_only_the_independent_sets() -> None:
    independent = independent_examples()
    assert independent == seed_examples(INDEPENDENT)
    assert independent and all(e.split == INDEPENDENT for e in independent)
    seed = {e.id for e in seed_examples()}
    assert seed == {e.id for e in seed_examples("train") + seed_examples("test")}
    assert not seed & {e.id for e in independent}


def test_every_pair_has_two_members_in_one_split_and_language() -> None:
    pairs: dict[str, list[Example]] = defaultdict(list)
    for example in read_examples(ALL):
        if example.pair is not None:
            pairs[example.pair].append(example)
    assert pairs, "no contrast pairs"
    for pair, members in pairs.items():
        assert len(members) == 2, pair
        assert len({m.split for m in members}) == 1, pair
        assert len({m.lang for m in members}) == 1, pair
        assert pair.startswith(f"{members[0].lang}-"), pair


def test_the_english_and_dutch_pairs_contrast_a_positive_with_a_negative() -> None:
    for lang, minimum in (("en", 40), ("nl", 30)):
        pairs: dict[str, list[Example]] = defaultdict(list)
        for example in seed_examples():
            if example.lang == lang and example.pair is not None:
                pairs[example.pair].append(example)
        assert len(pairs) >= minimum, lang
        for pair, members in pairs.items():
            assert sorted(m.positive for m in members) == [False, True], pair
        test = sum(members[0].split == "test" for members in pairs.values())
        assert 0.1 <= test / len(pairs) <= 0.3, lang


def test_no_independent_text_appears_in_the_seed_files() -> None:
    seed = {_normalised(e.text) for e in seed_examples()}
    leaked = [e.id for e in independent_examples() if _normalised(e.text) in seed]
    assert not leaked


def test_texts_are_not_repeated_within_the_seed_files() -> None:
    texts = Counter(_normalised(e.text) for e in seed_examples())
    assert not [t for t, n in texts.items() if n > 1]


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_language_has_at_least_as_many_hard_negatives_as_positives(path: Path) -> None:
    examples = read_examples([path])
    positives = sum(e.positive for e in examples)
    hard = sum(e.hard_negative for e in examples)
    assert positives and hard >= positives, (positives, hard)


@pytest.mark.parametrize("path", INDEPENDENT_FILES, ids=lambda p: p.name)
def test_independent_sets_have_every_label_and_some_everyday_texts(path: Path) -> None:
    examples = read_examples([path])
    assert {label for e in examples for label in e.labels} == set(LABELS)
    assert any(not e.positive and not e.hard_negative for e in examples)
