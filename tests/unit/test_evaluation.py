"""``classifiers.evaluation`` and ``propwatch evaluate``: bootstrap intervals, the per-language
table, contrast pairs, and the independent test sets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from classifiers.base import LABELS, Scores
from classifiers.corpus import Example, seed_examples
from classifiers.evaluation import (
    MARKDOWN_HEADER,
    SEED,
    Report,
    bootstrap_counts,
    compare,
    format_comparison,
    format_language_table,
    format_markdown_rows,
    format_report,
    pair_figures,
    report_from_scores,
)
from classifiers.testing import build_tiny_model
from streams.cli import main

THRESHOLDS = dict.fromkeys(LABELS, 0.5)
MODEL = {"name": "fake", "revision": "0"}


def _noisy_scores(examples: list[Example], seed: int = 0) -> list[Scores]:
    """Scores that are right most of the time: a model of middling quality."""
    rng = random.Random(seed)
    return [
        {label: (0.75 if label in e.labels else 0.25) + rng.uniform(-0.4, 0.4) for label in LABELS}
        for e in examples
    ]


@pytest.fixture(scope="module")
def test_split() -> list[Example]:
    return seed_examples("test")


def _report(examples: list[Example], seed: int = SEED, data: dict[str, object] | None = None) -> Report:
    return report_from_scores(
        examples, _noisy_scores(examples), LABELS, THRESHOLDS, model=MODEL, seed=seed, data=data
    )


def test_intervals_contain_the_point_estimate(test_split: list[Example]) -> None:
    report = _report(test_split)
    for s in [report.overall, *report.by_lang.values()]:
        low, high = s.binary.f1_ci
        assert 0 <= low <= s.binary.f1 <= high <= 1
        low, high = s.macro_f1_ci
        assert 0 <= low <= s.macro_f1 <= high <= 1
    # A language's few dozen examples give a wider interval than all of them.
    assert np.diff(report.by_lang["de"].binary.f1_ci) > np.diff(report.overall.binary.f1_ci)


def test_intervals_are_reproducible_with_the_seed(test_split: list[Example]) -> None:
    first, again = _report(test_split), _report(test_split)
    assert first.as_json() == again.as_json()
    other = _report(test_split, seed=SEED + 1)
    assert other.overall.binary.f1 == first.overall.binary.f1
    assert other.overall.binary.f1_ci != first.overall.binary.f1_ci
    assert first.bootstrap["seed"] != other.bootstrap["seed"]


def test_bootstrap_counts_draw_every_resample_in_full() -> None:
    counts = bootstrap_counts(50, resamples=200, seed=1)
    assert counts.shape == (200, 50)
    assert (counts.sum(axis=1) == 50).all()
    assert (counts == bootstrap_counts(50, resamples=200, seed=1)).all()


def test_a_perfect_model_has_a_degenerate_interval(test_split: list[Example]) -> None:
    scores = [{label: float(label in e.labels) for label in LABELS} for e in test_split]
    report = report_from_scores(test_split, scores, LABELS, THRESHOLDS, model=MODEL)
    assert report.overall.binary.f1 == 1.0 and report.overall.binary.f1_ci == (1.0, 1.0)
    assert report.overall.macro_f1_ci == (1.0, 1.0)
    assert report.overall.pairs is not None and report.overall.pairs.member_error_rate == 0.0


def _example(id_: str, labels: tuple[str, ...], pair: str | None, lang: str = "en") -> Example:
    return Example(id_, f"text {id_}", labels, lang, "propaganda" if labels else "manual", "test", pair)


def test_pair_figures_on_a_hand_made_set() -> None:
    examples = [
        _example("p1+", ("instruction",), "p1"),  # flagged: right
        _example("p1-", (), "p1"),  # not flagged: right -> pair 1 all right
        _example("p2+", ("recruitment",), "p2"),  # missed: wrong
        _example("p2-", (), "p2"),  # not flagged: right
        _example("p3+", ("threat",), "p3"),  # flagged: right
        _example("p3-", (), "p3"),  # flagged: wrong
        _example("lone", (), "p4"),  # its partner is not in the data: not a pair
        _example("x", ("threat",), None),  # no pair
    ]
    flagged = [True, False, False, False, True, True, True, False]
    pairs = pair_figures(examples, flagged, [e.positive for e in examples])
    assert pairs is not None
    assert (pairs.pairs, pairs.members, pairs.members_wrong) == (3, 6, 2)
    assert pairs.member_error_rate == round(2 / 6, 4)
    assert (pairs.positives_missed, pairs.negatives_flagged) == (1, 1)
    assert (pairs.pairs_right, pairs.pairs_right_rate) == (1, round(1 / 3, 4))
    assert pair_figures(examples[-2:], flagged[-2:], [False, True]) is None


def test_pairs_go_through_the_flag_rule_per_language() -> None:
    examples = [
        _example("a+", ("instruction",), "a"),
        _example("a-", (), "a"),
        _example("b+", ("threat",), "b", lang="nl"),
        _example("b-", (), "b", lang="nl"),
    ]
    # Only the Dutch benign member is over a threshold.
    scores = [{label: 0.9 if label == "instruction" else 0.1 for label in LABELS}, dict.fromkeys(LABELS, 0.1)]
    scores += [
        {label: 0.9 if label == "threat" else 0.1 for label in LABELS},
        {**dict.fromkeys(LABELS, 0.1), "threat": 0.6},
    ]
    report = report_from_scores(examples, scores, LABELS, THRESHOLDS, model=MODEL)
    en, nl = report.by_lang["en"].pairs, report.by_lang["nl"].pairs
    assert en is not None and (en.member_error_rate, en.pairs_right) == (0.0, 1)
    assert nl is not None and (nl.member_error_rate, nl.pairs_right, nl.negatives_flagged) == (0.5, 0, 1)
    overall = report.overall.pairs
    assert overall is not None and (overall.members_wrong, overall.pairs_right_rate) == (1, 0.5)
    row = report.as_json()["per_language"]["nl"]
    assert row["pair_member_error_rate"] == 0.5 and row["pairs_right_rate"] == 0.0


def test_the_text_table_has_a_row_per_language(test_split: list[Example]) -> None:
    text = format_report(_report(test_split, data={"split": "test"}))
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("lang "))
    assert "95% CI" in lines[header] and "FPR hard" in lines[header] and "pair err" in lines[header]
    rows = [line.split()[0] for line in lines[header + 1 : header + 8]]
    assert rows == ["ar", "de", "en", "fr", "nl", "tr", "all"]
    for line in lines[header + 1 : header + 8]:
        assert line.count("[") == 2, line  # the F1 and macro-F1 intervals


@pytest.fixture(autouse=True)
def _fp32_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny test model has no ONNX export, and int8 ONNX is the default backend."""
    monkeypatch.setenv("PROPWATCH_BACKEND", "transformers")


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_json_has_the_per_language_table(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _cli_json(capsys, "--model", str(tiny_model_dir), "--split", "test")
    assert report["data"] == {"items": len(seed_examples("test")), "source": "seed corpus", "split": "test"}
    assert set(report["per_language"]) == {"ar", "de", "en", "fr", "nl", "tr", "all"}
    assert report["bootstrap"]["resamples"] == 1000
    for row in report["per_language"].values():
        assert {
            "items",
            "positives",
            "precision",
            "recall",
            "f1",
            "f1_ci",
            "hard_negative_fpr",
            "macro_f1",
            "macro_f1_ci",
            "pairs",
            "pair_member_error_rate",
            "pairs_right_rate",
            "labels",
        } <= set(row)
        assert set(row["labels"]) == set(LABELS)
        assert row["f1_ci"][0] <= row["f1"] <= row["f1_ci"][1]
    assert report["per_language"]["all"]["items"] == report["overall"]["items"]
    assert report["by_lang"]["en"]["pairs"]["pairs"] > 0


def test_evaluate_reads_the_independent_sets(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--model", str(tiny_model_dir), "--split", "independent"]) == 0
    text = capsys.readouterr().out
    assert "source independent test sets" in text and "split independent" in text
    assert {line.split()[0] for line in text.splitlines() if line[:3] in ("ar ", "tr ", "all")} == {
        "ar",
        "tr",
        "all",
    }
    report = _cli_json(capsys, "--model", str(tiny_model_dir), "--split", "independent")
    assert report["data"]["items"] == len(seed_examples("independent"))
    assert set(report["per_language"]) == {"ar", "de", "en", "fr", "nl", "tr", "all"}


def test_markdown_rows_for_docs_models(test_split: list[Example]) -> None:
    rows = format_markdown_rows(_report(test_split), "candidate").splitlines()
    assert rows[:2] == list(MARKDOWN_HEADER)
    assert [row.split("|")[2].strip() for row in rows[2:]] == ["ar", "de", "en", "fr", "nl", "tr", "all"]
    assert all(row.count("|") == 11 for row in rows)
    assert all(row.startswith("| candidate | ") for row in rows[2:])


def test_compare_gives_paired_differences(test_split: list[Example]) -> None:
    a, b = _noisy_scores(test_split, seed=0), _noisy_scores(test_split, seed=1)
    comparison = compare(test_split, a, b, LABELS, THRESHOLDS)
    assert list(comparison) == ["ar", "de", "en", "fr", "nl", "tr", "all"]
    report_a = report_from_scores(test_split, a, LABELS, THRESHOLDS, model=MODEL)
    report_b = report_from_scores(test_split, b, LABELS, THRESHOLDS, model=MODEL)
    for lang, row in comparison.items():
        s_a = report_a.overall if lang == "all" else report_a.by_lang[lang]
        s_b = report_b.overall if lang == "all" else report_b.by_lang[lang]
        f1 = row["f1"]
        assert f1["a"] == s_a.binary.f1 and f1["b"] == s_b.binary.f1
        assert f1["difference"] == pytest.approx(s_b.binary.f1 - s_a.binary.f1, abs=1e-4)
        assert row["macro_f1"]["a"] == pytest.approx(s_a.macro_f1, abs=1e-4)
    # A model against itself: no difference on any resample.
    same = compare(test_split, a, a, LABELS, THRESHOLDS)
    assert all(row["f1"]["difference_ci"] == [0.0, 0.0] for row in same.values())
    text = format_comparison(comparison, "model a", "model b")
    assert "A: model a" in text and len(text.splitlines()) == 4 + 7


def test_evaluate_compare_two_models(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = build_tiny_model(tmp_path / "other", seed=3)
    argv = ["--model", str(tiny_model_dir), "--compare", str(other), "--split", "independent"]
    document = _cli_json(capsys, *argv)
    assert set(document) == {"a", "b", "difference"}
    assert document["a"]["model"]["revision"] != document["b"]["model"]["revision"]
    assert set(document["difference"]) == {"ar", "de", "en", "fr", "nl", "tr", "all"}
    assert main(["evaluate", *argv]) == 0
    assert "B minus A" in capsys.readouterr().out


def test_the_tables_read_the_same_from_the_json(test_split: list[Example]) -> None:
    report = _report(test_split)
    table = json.loads(json.dumps(report.as_json()))["per_language"]
    assert format_markdown_rows(table, "fake") == format_markdown_rows(report)
    assert format_language_table(table) == format_language_table(report)
