"""Evaluate a classifier on labelled examples: what a data scientist compares models by.

Per-label precision, recall and F1 and their macro average; the binary flag-or-not decision
(any label over its threshold) with its false-positive rate, also on hard negatives alone;
each overall and per language; and the threshold that maximises each label's F1 on the data.

The test sets are small (a few dozen positives per language), so binary F1 and macro-F1 come with
a 95 % percentile bootstrap interval: ``resamples`` resamples of the slice's examples, drawn with
replacement with a fixed seed, so the same scores always give the same interval. A difference
between two models that lies inside both intervals may be noise.

Contrast pairs (examples sharing a ``pair`` id: a positive and a near-identical benign text with
the same cue words) get their own figures: the share of pair members the flag decision gets
wrong, and the share of pairs it gets entirely right.

Every flag decision goes through :func:`_flagged`: the one place that says which labels a score
map flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from classifiers.base import Classifier, Scores
from classifiers.corpus import Example
from classifiers.policy import Policy

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
RESAMPLES = 1000
"""Bootstrap resamples per slice."""
SEED = 13
"""The bootstrap's seed: fixed, so a report is reproducible from the scores."""
CONFIDENCE = 0.95


def _flagged(scores: Scores, thresholds: Mapping[str, float]) -> tuple[str, ...]:
    """The labels ``scores`` flags under ``thresholds``: every figure here counts with
    :meth:`Policy.decide`, the worker's own flag rule."""
    return Policy(thresholds).decide(scores).labels


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
    f1_ci: tuple[float, float] = (0.0, 0.0)
    """95 % bootstrap interval of ``f1`` (low, high)."""


@dataclass(frozen=True)
class Pairs:
    """The flag decision on contrast pairs: pairs are the ``pair`` ids with at least two members
    in the slice; members are their examples."""

    pairs: int
    members: int
    members_wrong: int
    member_error_rate: float | None
    positives_missed: int
    negatives_flagged: int
    pairs_right: int
    pairs_right_rate: float | None
    """Share of pairs whose members the decision gets all right."""


@dataclass(frozen=True)
class Slice:
    """The figures of one group of examples (all, or one language)."""

    items: int
    labels: dict[str, PRF]
    macro_f1: float
    binary: Binary
    macro_f1_ci: tuple[float, float] = (0.0, 0.0)
    pairs: Pairs | None = None


@dataclass(frozen=True)
class Report:
    model: dict[str, str]
    thresholds: dict[str, float]
    overall: Slice
    by_lang: dict[str, Slice]
    best_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    bootstrap: dict[str, object] = field(default_factory=dict)
    data: dict[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """``model``, ``data`` (what was scored), ``thresholds``, ``bootstrap`` (how the intervals
        were drawn), ``per_language`` (the table: one row per language and ``all``, see
        :func:`table_row`), ``overall`` and ``by_lang`` (every figure of each slice, per label
        included) and ``best_thresholds``."""
        document = asdict(self)
        rows = _rows(self)
        return {
            "model": document["model"],
            "data": document["data"],
            "thresholds": document["thresholds"],
            "bootstrap": document["bootstrap"],
            "per_language": rows,
            "overall": document["overall"],
            "by_lang": document["by_lang"],
            "best_thresholds": document["best_thresholds"],
        }


def table_row(s: Slice) -> dict[str, object]:
    """One row of the per-language table: counts, flag-or-not figures with the F1 interval,
    macro-F1 with its interval, contrast-pair figures, and per-label P/R/F1."""
    pairs = s.pairs
    return {
        "items": s.items,
        "positives": s.binary.positives,
        "negatives": s.binary.negatives,
        "hard_negatives": s.binary.hard_negatives,
        "precision": s.binary.precision,
        "recall": s.binary.recall,
        "f1": s.binary.f1,
        "f1_ci": list(s.binary.f1_ci),
        "false_positive_rate": s.binary.false_positive_rate,
        "hard_negative_fpr": s.binary.hard_negative_fpr,
        "macro_f1": s.macro_f1,
        "macro_f1_ci": list(s.macro_f1_ci),
        "pairs": pairs.pairs if pairs else 0,
        "pairs_right": pairs.pairs_right if pairs else 0,
        "pair_member_error_rate": pairs.member_error_rate if pairs else None,
        "pairs_right_rate": pairs.pairs_right_rate if pairs else None,
        "labels": {label: asdict(prf) for label, prf in s.labels.items()},
    }


def report_from_json(data: Mapping[str, Any]) -> Report:
    """A :class:`Report` back from :meth:`Report.as_json` (e.g. a model's ``evaluation.json``)."""

    def slice_(s: Mapping[str, Any]) -> Slice:
        binary = dict(s["binary"])
        binary["f1_ci"] = tuple(binary.get("f1_ci", (0.0, 0.0)))
        return Slice(
            s["items"],
            {label: PRF(**prf) for label, prf in s["labels"].items()},
            s["macro_f1"],
            Binary(**binary),
            tuple(s.get("macro_f1_ci", (0.0, 0.0))),  # type: ignore[arg-type]
            Pairs(**s["pairs"]) if s.get("pairs") else None,
        )

    return Report(
        model=dict(data["model"]),
        thresholds=dict(data["thresholds"]),
        overall=slice_(data["overall"]),
        by_lang={lang: slice_(s) for lang, s in data["by_lang"].items()},
        best_thresholds={k: dict(v) for k, v in data.get("best_thresholds", {}).items()},
        bootstrap=dict(data.get("bootstrap", {})),
        data=dict(data.get("data", {})),
    )


def score_examples(classifier: Classifier, examples: Sequence[Example], batch_size: int = 32) -> list[Scores]:
    scores: list[Scores] = []
    for start in range(0, len(examples), batch_size):
        scores.extend(classifier.predict([e.text for e in examples[start : start + batch_size]]))
    return scores


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 from counts, elementwise; 0 where there is neither a positive nor a prediction."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(np.shape(tp), dtype=float), where=denominator > 0)


def bootstrap_counts(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """How often each of ``n`` examples is drawn in each resample: ``(resamples, n)``."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n)


def _interval(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return round(float(low), 4), round(float(high), 4)


def _resampled_f1(
    counts: np.ndarray, predicted: np.ndarray, actual: np.ndarray, flagged: np.ndarray, positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Binary F1 and macro-F1 on each resample (a row of ``counts``)."""

    def f1(p: np.ndarray, a: np.ndarray) -> np.ndarray:
        return _f1(
            counts @ (p & a).astype(np.int64),
            counts @ (p & ~a).astype(np.int64),
            counts @ (a & ~p).astype(np.int64),
        )

    return f1(flagged, positive), f1(predicted, actual).mean(axis=1)


def bootstrap_f1(
    predicted: np.ndarray,
    actual: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    flagged: np.ndarray | None = None,
    positive: np.ndarray | None = None,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of binary F1 and macro-F1 over resampled examples.

    ``predicted`` and ``actual`` are boolean ``(examples, labels)``; ``flagged`` and ``positive``
    the binary decision and truth per example (by default: any of the labels)."""
    flagged = predicted.any(axis=1) if flagged is None else flagged
    positive = actual.any(axis=1) if positive is None else positive
    counts = bootstrap_counts(len(predicted), resamples, seed)
    binary, macro = _resampled_f1(counts, predicted, actual, flagged, positive)
    return _interval(binary), _interval(macro)


def pair_figures(
    examples: Sequence[Example], flagged: Sequence[bool], positive: Sequence[bool]
) -> Pairs | None:
    """The flag decision (``flagged``) against the truth (``positive``) on the contrast pairs
    among ``examples``; None if there are none."""
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for example, flag, truth in zip(examples, flagged, positive, strict=True):
        if example.pair:
            groups.setdefault(example.pair, []).append((truth, flag))
    complete = [group for group in groups.values() if len(group) >= 2]
    if not complete:
        return None
    members = [member for group in complete for member in group]
    missed = sum(truth and not flag for truth, flag in members)
    false_flags = sum(flag and not truth for truth, flag in members)
    right = sum(all(flag == truth for truth, flag in group) for group in complete)
    return Pairs(
        pairs=len(complete),
        members=len(members),
        members_wrong=missed + false_flags,
        member_error_rate=round((missed + false_flags) / len(members), 4),
        positives_missed=missed,
        negatives_flagged=false_flags,
        pairs_right=right,
        pairs_right_rate=round(right / len(complete), 4),
    )


def _decisions(
    examples: Sequence[Example],
    scores: Sequence[Scores],
    labels: Sequence[str],
    thresholds: Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per example: the labels flagged and the labels true (boolean ``(examples, labels)``), and
    whether it is flagged and whether it is a positive (boolean ``(examples,)``)."""
    in_force = {label: thresholds[label] for label in labels}
    decisions = [_flagged(s, in_force) for s in scores]
    predicted = np.array([[label in d for label in labels] for d in decisions], dtype=bool)
    actual = np.array([[label in e.labels for label in labels] for e in examples], dtype=bool)
    flagged = np.array([bool(d) for d in decisions], dtype=bool)
    return (
        predicted.reshape(len(examples), len(labels)),
        actual.reshape(len(examples), len(labels)),
        flagged,
        actual.any(axis=1),
    )


def _slice(
    examples: Sequence[Example],
    scores: Sequence[Scores],
    labels: Sequence[str],
    thresholds: Mapping[str, float],
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Slice:
    predicted, actual, flagged_array, positive_array = _decisions(examples, scores, labels, thresholds)
    per_label = {}
    for column, label in enumerate(labels):
        p, a = predicted[:, column], actual[:, column]
        per_label[label] = PRF.from_counts(int((p & a).sum()), int((p & ~a).sum()), int((a & ~p).sum()))
    flagged, is_positive = flagged_array.tolist(), positive_array.tolist()
    tp = sum(f and a for f, a in zip(flagged, is_positive, strict=True))
    fp = sum(f and not a for f, a in zip(flagged, is_positive, strict=True))
    fn = sum(a and not f for f, a in zip(flagged, is_positive, strict=True))
    negatives = len(examples) - sum(is_positive)
    hard = [f for f, e in zip(flagged, examples, strict=True) if e.hard_negative]
    prf = PRF.from_counts(tp, fp, fn)
    f1_ci, macro_ci = bootstrap_f1(predicted, actual, resamples, seed, flagged_array, positive_array)
    binary = Binary(
        precision=prf.precision,
        recall=prf.recall,
        f1=prf.f1,
        false_positive_rate=round(fp / negatives, 4) if negatives else 0.0,
        hard_negative_fpr=round(sum(hard) / len(hard), 4) if hard else None,
        positives=sum(is_positive),
        negatives=negatives,
        hard_negatives=len(hard),
        f1_ci=f1_ci,
    )
    # The mean of the labels' unrounded F1s, by the function the intervals and --compare use, so
    # that the point estimate, its interval and a comparison agree to the last digit.
    ones = np.ones((1, len(examples)), dtype=np.int64)
    macro = round(float(_resampled_f1(ones, predicted, actual, flagged_array, positive_array)[1][0]), 4)
    return Slice(
        items=len(examples),
        labels=per_label,
        macro_f1=macro,
        binary=binary,
        macro_f1_ci=macro_ci,
        pairs=pair_figures(examples, flagged, is_positive),
    )


def best_thresholds(
    examples: Sequence[Example], scores: Sequence[Scores], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """For each label, the grid threshold with the highest F1 on these examples."""
    best = {}
    for label in labels:
        actual = [label in e.labels for e in examples]
        candidates = []
        for threshold in THRESHOLD_GRID:
            predicted = [bool(_flagged({label: s[label]}, {label: threshold})) for s in scores]
            tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
            fp = sum(p and not a for p, a in zip(predicted, actual, strict=True))
            fn = sum(a and not p for p, a in zip(predicted, actual, strict=True))
            candidates.append((PRF.from_counts(tp, fp, fn).f1, -abs(threshold - 0.5), threshold))
        f1, _, threshold = max(candidates)
        best[label] = {"threshold": threshold, "f1": f1}
    return best


def evaluate(
    classifier: Classifier,
    examples: Sequence[Example],
    thresholds: Mapping[str, float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    data: Mapping[str, object] | None = None,
) -> Report:
    """Score ``examples`` with ``classifier`` and report the figures above; ``data`` describes
    what was scored (e.g. ``{"split": "test"}``) and is kept in the report."""
    if not examples:
        raise ValueError("no examples to evaluate")
    return report_from_scores(
        examples,
        score_examples(classifier, examples),
        classifier.labels,
        thresholds,
        model={"name": classifier.name, "revision": classifier.revision},
        resamples=resamples,
        seed=seed,
        data=data,
    )


def report_from_scores(
    examples: Sequence[Example],
    scores: Sequence[Scores],
    labels: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    model: Mapping[str, str],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    data: Mapping[str, object] | None = None,
) -> Report:
    """The report of scores already computed (one score map per example)."""
    if not examples:
        raise ValueError("no examples to evaluate")
    langs = sorted({e.lang for e in examples if e.lang})
    by_lang = {}
    for lang in langs:
        chosen = [(e, s) for e, s in zip(examples, scores, strict=True) if e.lang == lang]
        by_lang[lang] = _slice(
            [e for e, _ in chosen], [s for _, s in chosen], labels, thresholds, resamples, seed
        )
    return Report(
        model=dict(model),
        thresholds={label: thresholds[label] for label in labels},
        overall=_slice(examples, scores, labels, thresholds, resamples, seed),
        by_lang=by_lang,
        best_thresholds=best_thresholds(examples, scores, labels),
        bootstrap={
            "method": "percentile bootstrap over the slice's examples, drawn with replacement",
            "confidence": CONFIDENCE,
            "resamples": resamples,
            "seed": seed,
        },
        data={"items": len(examples), **(data or {})},
    )


def _ci(interval: Sequence[float]) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _rows(report: Report) -> dict[str, dict[str, Any]]:
    rows = {lang: table_row(s) for lang, s in report.by_lang.items()}
    rows["all"] = table_row(report.overall)
    return rows


def _pairs_ok(row: Mapping[str, Any]) -> str:
    return f"{row['pairs_right']}/{row['pairs']}" if row["pairs"] else "n/a"


def format_language_table(table: Report | Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The per-language table, one row per language, then ``all``: of a report, or of its JSON's
    ``per_language``."""
    rows = _rows(table) if isinstance(table, Report) else table
    lines = [
        f"{'lang':6}{'items':>6}{'pos':>5}{'prec':>7}{'recall':>7}{'F1':>7}  {'95% CI':14}"
        f"{'FPR hard':>9}{'macro-F1':>9}  {'95% CI':14}{'pair err':>9}{'pairs ok':>10}"
    ]
    for name, r in rows.items():
        lines.append(
            f"{name:6}{r['items']:>6}{r['positives']:>5}{r['precision']:>7.3f}{r['recall']:>7.3f}"
            f"{r['f1']:>7.3f}  {_ci(r['f1_ci']):14}{_rate(r['hard_negative_fpr']):>9}"
            f"{r['macro_f1']:>9.3f}  {_ci(r['macro_f1_ci']):14}{_rate(r['pair_member_error_rate']):>9}"
            f"{_pairs_ok(r):>10}"
        )
    return lines


def format_report(report: Report) -> str:
    """The report as plain-text tables."""
    lines = [f"model {report.model['name']} @ {report.model['revision']}"]
    data = ", ".join(f"{k} {v}" for k, v in report.data.items())
    if data:
        lines.append(f"data: {data}")
    boot = report.bootstrap
    lines += [
        f"CI: {boot.get('confidence', CONFIDENCE):.0%} percentile bootstrap, {boot.get('resamples')} "
        f"resamples of each row's examples, seed {boot.get('seed')}",
        "",
        "per language: flag or not (any label over its threshold); pair err: share of contrast-pair "
        "members misclassified; pairs ok: pairs with both members right",
        *format_language_table(report),
    ]
    slices = {"all": report.overall, **report.by_lang}
    labels = list(report.thresholds)
    lines += ["", "per label: F1 (support)", f"{'':14}" + "".join(f"{name:>12}" for name in slices)]
    for label in labels:
        cells = "".join(f"{s.labels[label].f1:>6.2f} ({s.labels[label].support:>3})" for s in slices.values())
        lines.append(f"{label:14}{cells}")
    lines += ["", "per label, all languages: precision / recall / F1 (support)"]
    for label, prf in report.overall.labels.items():
        lines.append(f"  {label:14}{prf.precision:.3f} / {prf.recall:.3f} / {prf.f1:.3f} ({prf.support})")
    b = report.overall.binary
    lines.append(
        f"  false-positive rate, all negatives: {b.false_positive_rate:.3f} ({b.negatives} negatives)"
    )
    lines += ["", "best threshold per label on this data (F1 there)"]
    for label, best in report.best_thresholds.items():
        lines.append(
            f"  {label:14}{best['threshold']:.2f} (F1 {best['f1']:.3f}; in force "
            f"{report.thresholds[label]:.2f})"
        )
    return "\n".join(lines)


MARKDOWN_HEADER = (
    "| Model | Lang | Items (+) | F1 [95% CI] | Precision | Recall | FPR hard neg. "
    "| Macro-F1 [95% CI] | Pair err. | Pairs right |",
    "|---|---|---|---|---|---|---|---|---|---|",
)


def format_markdown_rows(table: Report | Mapping[str, Mapping[str, Any]], model: str | None = None) -> str:
    """The per-language table as Markdown rows (``MARKDOWN_HEADER`` first), as ``docs/models.md``
    holds them: of a report, or of its JSON's ``per_language`` (then ``model`` names the model)."""
    if isinstance(table, Report):
        name, rows = model or table.model["name"], _rows(table)
    else:
        name, rows = model or "?", table
    lines = list(MARKDOWN_HEADER)
    for lang, r in rows.items():
        lines.append(
            f"| {name} | {lang} | {r['items']} ({r['positives']}) | {r['f1']:.3f} {_ci(r['f1_ci'])} "
            f"| {r['precision']:.3f} | {r['recall']:.3f} | {_rate(r['hard_negative_fpr'])} "
            f"| {r['macro_f1']:.3f} {_ci(r['macro_f1_ci'])} | {_rate(r['pair_member_error_rate'])} "
            f"| {_pairs_ok(r)} |"
        )
    return "\n".join(lines)


def compare(
    examples: Sequence[Example],
    scores_a: Sequence[Scores],
    scores_b: Sequence[Scores],
    labels: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, dict[str, object]]:
    """Model B against model A on the same examples, per language and ``all``: each one's binary
    F1 and macro-F1, and B minus A with a paired bootstrap interval (both models scored on the
    same resamples, so the interval is that of the difference, narrower than the two intervals
    side by side). An interval that excludes 0 is a difference the data shows."""
    langs = sorted({e.lang for e in examples if e.lang})
    groups = {lang: [i for i, e in enumerate(examples) if e.lang == lang] for lang in langs}
    groups["all"] = list(range(len(examples)))
    result: dict[str, dict[str, object]] = {}
    for name, indices in groups.items():
        chosen = [examples[i] for i in indices]
        counts = bootstrap_counts(len(indices), resamples, seed)
        ones = np.ones((1, len(indices)), dtype=np.int64)
        figures = []
        for scores in (scores_a, scores_b):
            decisions = _decisions(chosen, [scores[i] for i in indices], labels, thresholds)
            figures.append((_resampled_f1(ones, *decisions), _resampled_f1(counts, *decisions)))
        (point_a, boot_a), (point_b, boot_b) = figures
        row: dict[str, object] = {"items": len(indices)}
        for k, key in enumerate(("f1", "macro_f1")):
            a, b = round(float(point_a[k][0]), 4), round(float(point_b[k][0]), 4)
            row[key] = {
                "a": a,
                "b": b,
                "difference": round(b - a, 4),
                "difference_ci": list(_interval(boot_b[k] - boot_a[k])),
            }
        result[name] = row
    return result


def format_comparison(comparison: Mapping[str, Mapping[str, object]], a: str, b: str) -> str:
    """The comparison as a plain-text table."""
    lines = [
        f"A: {a}",
        f"B: {b}",
        "B minus A, 95% paired bootstrap interval (the same resamples for both models)",
        f"{'lang':6}{'items':>6}{'F1 A':>7}{'F1 B':>7}{'B-A':>8}  {'95% CI':16}"
        f"{'macro A':>8}{'macro B':>8}{'B-A':>8}  {'95% CI':16}",
    ]
    for name, row in comparison.items():
        f1, macro = row["f1"], row["macro_f1"]
        assert isinstance(f1, dict) and isinstance(macro, dict)
        lines.append(
            f"{name:6}{row['items']:>6}{f1['a']:>7.3f}{f1['b']:>7.3f}{f1['difference']:>+8.3f}  "
            f"{_ci(f1['difference_ci']):16}{macro['a']:>8.3f}{macro['b']:>8.3f}"
            f"{macro['difference']:>+8.3f}  {_ci(macro['difference_ci']):16}"
        )
    return "\n".join(lines)
