"""The decision rules: which decisions on a review are valid, and which one is in force."""

from __future__ import annotations

from collections.abc import Sequence

from streams.records import Decision, Review


def check_decision(review: Review, decision: Decision) -> str | None:
    """Why ``decision`` cannot apply to ``review`` whatever else was decided, or None."""
    if decision.decision == "approve" and decision.labels and not decision.override_reason:
        outside = [label for label in decision.labels if label not in review.labels]
        if outside:
            return (
                f"labels {outside} are not among the review's candidates {list(review.labels)}: "
                "an approval of other labels needs an override_reason"
            )
    return None


def in_force(review: Review, decisions: Sequence[Decision]) -> Decision | None:
    """The decision in force after ``decisions`` (in log order): the first valid one, or the
    latest valid one that names the decision in force before it in ``supersedes``."""
    succession = in_force_in_turn(review, decisions)
    return succession[-1] if succession else None


def in_force_in_turn(review: Review, decisions: Sequence[Decision]) -> list[Decision]:
    """Every decision that was in force as ``decisions`` (in log order) were applied, in turn: the
    last one is :func:`in_force`'s, each earlier one was superseded by the next. One pass."""
    succession: list[Decision] = []
    for decision in decisions:
        if check_decision(review, decision) is not None:
            continue
        if decision.supersedes == (succession[-1].decision_id if succession else None):
            succession.append(decision)
    return succession
