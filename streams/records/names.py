"""The small fixed vocabularies records use: what decided, how known content matched, what a
reviewer decided. Metrics and the report label by them, so they live here, free of numpy."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

MatchType = Literal["exact", "near"]
MATCH_TYPES: tuple[MatchType, ...] = ("exact", "near")
"""How an item can match a hash bank entry: the same normalised text, or a near duplicate."""

DecisionName = Literal["approve", "reject"]
DECISIONS: tuple[DecisionName, ...] = ("approve", "reject")
"""What a reviewer can decide on a review record."""

Role = Literal["reviewer", "supervisor"]
ROLES: tuple[Role, ...] = ("reviewer", "supervisor")
"""Who may decide: a supervisor may also supersede a decision in force (when decisions are
signed, only a supervisor may). The review console's third role, ``auditor``, only reads."""


class DecidedBy(StrEnum):
    """What reached a verdict: the live model, the hash bank of known content, or a reviewer."""

    MODEL = "model"
    HASHBANK = "hashbank"
    REVIEW = "review"
