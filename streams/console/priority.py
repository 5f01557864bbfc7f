"""The queue's order: a documented priority score per pending review.

    priority = max over the review's candidate labels of (SEVERITY[label] * score[label])
               * (1 + age in hours / AGE_DOUBLING_H)

- **Severity * confidence.** Each taxonomy label has a severity (:data:`SEVERITY`): a threat of
  violence and instructions for it are the most urgent under the TCO Regulation (removal within
  the hour once referred), then incitement, then recruitment. The model's score is its
  confidence. A review's urgency is its most urgent candidate label's product.
- **Age.** Waiting raises the priority linearly: a review a day old (:data:`AGE_DOUBLING_H`) counts
  twice what it did when queued, so that nothing waits for ever behind newer, more urgent items.
  The age runs from the review's ``classified_at`` (when the worker queued it); a time in the
  future counts as no age.

Ties are broken by age (older first), then by review id, so the order is total and stable.
"""

from __future__ import annotations

from streams.records import Review

SEVERITY: dict[str, float] = {"threat": 1.0, "instruction": 0.9, "incitement": 0.8, "recruitment": 0.7}
"""Severity of each taxonomy label, from 0 to 1 (a label missing here counts as 1)."""
AGE_DOUBLING_H = 24.0
"""Hours of waiting that double a review's priority."""


def urgency(review: Review) -> tuple[float, str]:
    """The highest severity * score over the review's candidate labels, and that label."""
    return max((SEVERITY.get(label, 1.0) * review.scores.get(label, 0.0), label) for label in review.labels)


def priority(review: Review, age_s: float) -> float:
    """The review's priority after waiting ``age_s`` seconds (see the module's formula)."""
    return urgency(review)[0] * (1.0 + max(0.0, age_s) / 3600.0 / AGE_DOUBLING_H)
