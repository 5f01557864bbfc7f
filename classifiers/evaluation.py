"""Evaluate a classifier on labelled examples: what a data scientist compares models by.

Per-label precision, recall and F1 and their macro average; the binary flag-or-not decision
(any label over its threshold) with its false-positive rate, also on hard negatives alone;
each overall and per language; and the threshold that maximises each label's F1 on the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from classifiers.base import Classifier, Scores
from classifiers.corpus import Example
from classifiers.policy import Policy

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    support: int

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> PRF:
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(round(precision, 4), round(recall, 4), round(f1, 4), tp + fn)


@dataclass(frozen=True)
class Binary:
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    hard_negative_fpr: float | None
    positives: int
    negatives: int
    hard_negatives: int


@dataclass(frozen=True)
class Slice:
    """The figures of one group of examples (all, or one language)."""

    items: int
    labels: dict[str, PRF]
    macro_f1: float
    binary: Binary


@dataclass(frozen=True)
class Report:
    model: dict[str, str]
    thresholds: dict[str, float]
    overall: Slice
    by_lang: dict[str, Slice]
    best_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def report_from_json(data: Mapping[str, Any]) -> Report:
    """A :class:`Report` back from :meth:`Report.as_json` (e.g. a model's evaluation.json)."""

    def slice_(s: Mapping[str, Any]) -> Slice:
        labels = {label: PRF(**prf) for label, prf in s["labels"].items()}
        return Slice(s["items"], labels, s["macro_f1"], Binary(**s["binary"]))

    return Report(
        model=dict(data["model"]),
        thresholds=dict(data["thresholds"]),
        overall=slice_(data["overall"]),
        by_lang={lang: slice_(s) for lang, s in data["by_lang"].items()},
        best_thresholds={k: dict(v) for k, v in data.get("best_thresholds", {}).items()},
    )


def score_examples(classifier: Classifier, examples: Sequence[Example], batch_size: int = 32) -> list[Scores]:
    scores: list[Scores] = []
    for start in range(0, len(examples), batch_size):
        scores.extend(classifier.predict([e.text for e in examples[start : start + batch_size]]))
    return scores


def _slice(
    examples: Sequence[Example],
    scores: Sequence[Scores],
    labels: Sequence[str],
    thresholds: Mapping[str, float],
) -> Slice:
    policy = Policy.for_labels(list(labels), thresholds)
    verdicts = [policy.decide(s) for s in scores]
    per_label = {}
    for label in labels:
        tp = fp = fn = 0
        for example, verdict in zip(examples, verdicts, strict=True):
            predicted, actual = label in verdict.labels, label in example.labels
            tp += predicted and actual
            fp += predicted and not actual
            fn += actual and not predicted
        per_label[label] = PRF.from_counts(tp, fp, fn)
    flagged = [verdict.flagged for verdict in verdicts]
    actual = [any(label in e.labels for label in labels) for e in examples]
    tp = sum(f and a for f, a in zip(flagged, actual, strict=True))
    fp = sum(f and not a for f, a in zip(flagged, actual, strict=True))
    fn = sum(a and not f for f, a in zip(flagged, actual, strict=True))
    negatives = len(examples) - sum(actual)
    hard = [f for f, e in zip(flagged, examples, strict=True) if e.hard_negative]
    prf = PRF.from_counts(tp, fp, fn)
    binary = Binary(
        precision=prf.precision,
        recall=prf.recall,
        f1=prf.f1,
        false_positive_rate=round(fp / negatives, 4) if negatives else 0.0,
        hard_negative_fpr=round(sum(hard) / len(hard), 4) if hard else None,
        positives=sum(actual),
        negatives=negatives,
        hard_negatives=len(hard),
    )
    macro = round(sum(p.f1 for p in per_label.values()) / len(per_label), 4)
    return Slice(items=len(examples), labels=per_label, macro_f1=macro, binary=binary)


def best_thresholds(
    examples: Sequence[Example], scores: Sequence[Scores], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """For each label, the grid threshold with the highest F1 on these examples."""
    best = {}
    for label in labels:
        candidates = []
        for threshold in THRESHOLD_GRID:
            policy = Policy({label: threshold})
            pairs = [
                (policy.decide(s).flagged, label in e.labels) for e, s in zip(examples, scores, strict=True)
            ]
            tp = sum(flagged and actual for flagged, actual in pairs)
            fp = sum(flagged and not actual for flagged, actual in pairs)
            fn = sum(actual and not flagged for flagged, actual in pairs)
            candidates.append((PRF.from_counts(tp, fp, fn).f1, -abs(threshold - 0.5), threshold))
        f1, _, threshold = max(candidates)
        best[label] = {"threshold": threshold, "f1": f1}
    return best


def evaluate(classifier: Classifier, examples: Sequence[Example], thresholds: Mapping[str, float]) -> Report:
    """Score ``examples`` with ``classifier`` and report the figures above."""
    if not examples:
        raise ValueError("no examples to evaluate")
    labels = classifier.labels
    scores = score_examples(classifier, examples)
    langs = sorted({e.lang for e in examples if e.lang})
    by_lang = {}
    for lang in langs:
        pairs = [(e, s) for e, s in zip(examples, scores, strict=True) if e.lang == lang]
        by_lang[lang] = _slice([e for e, _ in pairs], [s for _, s in pairs], labels, thresholds)
    return Report(
        model={"name": classifier.name, "revision": classifier.revision},
        thresholds={label: thresholds[label] for label in labels},
        overall=_slice(examples, scores, labels, thresholds),
        by_lang=by_lang,
        best_thresholds=best_thresholds(examples, scores, labels),
    )


def format_report(report: Report) -> str:
    """The report as a plain-text table."""
    lines = [f"model {report.model['name']} @ {report.model['revision']}"]
    slices = {"all": report.overall, **report.by_lang}
    labels = list(report.thresholds)
    header = f"{'':14}" + "".join(f"{name:>22}" for name in slices)
    lines += ["", "per label: precision / recall / F1 (support)", header]
    for label in labels:
        cells = "".join(
            f"{s.labels[label].precision:>7.2f}/{s.labels[label].recall:.2f}/{s.labels[label].f1:.2f}"
            f" ({s.labels[label].support:>3})"
            for s in slices.values()
        )
        lines.append(f"{label:14}{cells}")
    lines.append(f"{'macro-F1':14}" + "".join(f"{s.macro_f1:>22.3f}" for s in slices.values()))
    lines += ["", "flag or not", header]
    rows = [
        ("precision", lambda b: f"{b.precision:.3f}"),
        ("recall", lambda b: f"{b.recall:.3f}"),
        ("F1", lambda b: f"{b.f1:.3f}"),
        ("FPR", lambda b: f"{b.false_positive_rate:.3f}"),
        ("FPR hard neg.", lambda b: "n/a" if b.hard_negative_fpr is None else f"{b.hard_negative_fpr:.3f}"),
        ("items", lambda b: f"{b.positives}+/{b.negatives}-"),
    ]
    for name, cell in rows:
        lines.append(f"{name:14}" + "".join(f"{cell(s.binary):>22}" for s in slices.values()))
    lines += ["", "best threshold per label on this data (F1 there)"]
    for label, best in report.best_thresholds.items():
        lines.append(
            f"  {label:14}{best['threshold']:.2f} (F1 {best['f1']:.3f}; in force "
            f"{report.thresholds[label]:.2f})"
        )
    return "\n".join(lines)
