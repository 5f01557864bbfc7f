"""The flag rule: which scores refer an item, queue it for review, or clear it.

:meth:`Policy.decide` is the one place where a score meets a threshold. The worker decides every
item with it (``streams.pipeline``), the shadow model's ``flagged``/``agrees`` come from it, and
evaluation counts flags with it (:mod:`classifiers.evaluation`), so that what a data scientist
measures is what the worker does. It lives in ``classifiers`` rather than ``streams`` because
evaluation runs without the stream code, and ``streams`` already depends on ``classifiers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

SCORE_PLACES = 6
"""Scores are rounded to this many decimal places before the rule applies: the records carry
them rounded, so that a record's scores and its verdict always agree."""


@dataclass(frozen=True)
class Verdict:
    """What the thresholds make of one item's scores."""

    scores: dict[str, float]
    """The scores the rule applied to (rounded), one per label of the policy."""
    labels: tuple[str, ...]
    """Labels at or over their referral threshold: the item is referred when there are any."""
    candidates: tuple[str, ...] = ()
    """Labels at or over their review threshold, when none reaches its referral threshold."""

    @property
    def flagged(self) -> bool:
        return bool(self.labels)

    @property
    def outcome(self) -> Literal["refer", "review", "clear"]:
        return "refer" if self.labels else "review" if self.candidates else "clear"


@dataclass(frozen=True)
class Policy:
    """Referral thresholds per label, and optional lower review thresholds."""

    thresholds: Mapping[str, float]
    review_thresholds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def for_labels(
        cls,
        labels: tuple[str, ...] | list[str],
        thresholds: Mapping[str, float],
        review_thresholds: Mapping[str, float] | None = None,
    ) -> Policy:
        """The policy for a model's ``labels``: their thresholds, and the review thresholds of those."""
        return cls(
            {label: thresholds[label] for label in labels},
            {label: value for label, value in (review_thresholds or {}).items() if label in labels},
        )

    def decide(self, scores: Mapping[str, float]) -> Verdict:
        """Refer on the labels whose score reaches their threshold; else review on those that reach
        their review threshold; else clear."""
        rounded = {label: round(float(scores[label]), SCORE_PLACES) for label in self.thresholds}
        labels = tuple(label for label, score in rounded.items() if score >= self.thresholds[label])
        candidates = (
            ()
            if labels
            else tuple(
                label for label, threshold in self.review_thresholds.items() if rounded[label] >= threshold
            )
        )
        return Verdict(rounded, labels, candidates)
