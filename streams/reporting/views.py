"""What the report reads of each record: one small frozen view per topic, built once per record by
its ``of`` (:func:`view_topics` for all of them), right after the reader. Everything after this
module works on attributes.

The report does not read through the record models of :mod:`streams.records`, on purpose: they are
the writer's contract (strict, version 3) and refuse what the report must still count, records of
schema version 2 and earlier still on the topics for their retention, and foreign values (an error
code, label, match type or route this release does not know) that it counts as they are, or as
:data:`UNKNOWN`. So a view holds only the fields the report uses, named as in the records, each
read leniently: a value of the wrong type reads as missing, and never raises. A record without the
key the report de-duplicates it by is no record for the report: ``of`` returns None, and it is
counted as invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol, TypeVar

from streams.kafka.topics import CLEARED, DLQ, REFERRALS, REVIEW
from streams.kafka.topics import DECISIONS as DECISIONS_TOPIC
from streams.records import DECISIONS, DecidedBy, SourcePosition
from streams.records.names import DecisionName
from streams.reporting.figures import utc_time
from streams.safejson import json_type

UNKNOWN = "unknown"
"""What a missing or empty platform, language, model, route, match type, error code or stage is
counted as."""


class NotATime(Enum):
    """An ``observed_at`` that is there but is not a timestamp (so not a plausible capture time)."""

    VALUE = "not a time"


NOT_A_TIME = NotATime.VALUE
V = TypeVar("V")


class View(Protocol):
    """A record as the report reads it: placed in time by its verdict, de-duplicated by its key."""

    @property
    def at(self) -> datetime | None:
        """The verdict time in UTC; None: missing or not a timestamp (undated)."""

    @property
    def key(self) -> Hashable | None:
        """What a redelivery repeats; None: nothing to recognise one by (the record stands alone)."""


@dataclass(frozen=True)
class ShadowView:
    """A ``shadow`` block: the shadow model (``name@revision``) and its verdict on the item."""

    model: str
    flagged: bool
    agrees: bool

    @classmethod
    def of(cls, value: object) -> ShadowView | None:
        """None for a missing, null or empty block."""
        if not isinstance(value, Mapping) or not value:
            return None
        return cls(_model(value.get("model")), value.get("flagged") is True, value.get("agrees") is True)


@dataclass(frozen=True)
class ReviewView:
    """A review record: an item queued for a person."""

    item_id: str
    classified_at: datetime | None
    shadow: ShadowView | None

    @property
    def at(self) -> datetime | None:
        return self.classified_at

    @property
    def key(self) -> Hashable | None:
        return self.item_id

    @classmethod
    def of(cls, record: object) -> ReviewView | None:
        if not isinstance(record, Mapping) or (item_id := _id(record.get("item_id"))) is None:
            return None
        return cls(
            item_id=item_id,
            classified_at=utc_time(record.get("classified_at")),
            shadow=ShadowView.of(record.get("shadow")),
        )


@dataclass(frozen=True)
class ClearedView:
    """A cleared record; ``reviewed`` is the decision of its ``review`` block, if a known one."""

    item_id: str
    classified_at: datetime | None
    shadow: ShadowView | None
    platform: str
    lang: str
    decided_by: str
    reviewed: DecisionName | None

    @property
    def at(self) -> datetime | None:
        return self.classified_at

    @property
    def key(self) -> Hashable | None:
        return self.item_id

    @classmethod
    def of(cls, record: object) -> ClearedView | None:
        if not isinstance(record, Mapping) or (item_id := _id(record.get("item_id"))) is None:
            return None
        return cls(
            item_id=item_id,
            classified_at=utc_time(record.get("classified_at")),
            shadow=ShadowView.of(record.get("shadow")),
            platform=_text(record.get("platform")),
            lang=_text(record.get("lang")),
            decided_by=_decided_by(record.get("decided_by")),
            reviewed=_decision(_block(record, "review").get("decision")),
        )


@dataclass(frozen=True)
class ReferralView:
    """A referral record, keyed by ``referral_id`` (its ``item_id`` may be missing: it still
    counts as a referral, of no item); ``model`` is ``name@revision`` or :data:`UNKNOWN`,
    ``match_type`` the type of its ``match`` block, ``reviewed`` the decision of its ``review``
    block, if a known one."""

    referral_id: str
    item_id: str | None
    classified_at: datetime | None
    shadow: ShadowView | None
    platform: str
    lang: str
    decided_by: str
    reviewed: DecisionName | None
    labels: tuple[str, ...]
    model: str
    match_type: str
    observed_at: datetime | NotATime | None
    """None: missing or null; :data:`NOT_A_TIME`: there but not a timestamp in years 1 to 9999."""

    @property
    def at(self) -> datetime | None:
        return self.classified_at

    @property
    def key(self) -> Hashable | None:
        return self.referral_id

    @classmethod
    def of(cls, record: object) -> ReferralView | None:
        if not isinstance(record, Mapping) or (referral_id := _id(record.get("referral_id"))) is None:
            return None
        labels, observed = record.get("labels"), record.get("observed_at")
        return cls(
            referral_id=referral_id,
            item_id=_id(record.get("item_id")),
            classified_at=utc_time(record.get("classified_at")),
            shadow=ShadowView.of(record.get("shadow")),
            platform=_text(record.get("platform")),
            lang=_text(record.get("lang")),
            decided_by=_decided_by(record.get("decided_by")),
            reviewed=_decision(_block(record, "review").get("decision")),
            labels=tuple(dict.fromkeys(x for x in labels if isinstance(x, str) and x))
            if isinstance(labels, list)
            else (),
            model=_model(record.get("model")),
            match_type=_text(_block(record, "match").get("type")),
            observed_at=None if observed is None else utc_time(observed) or NOT_A_TIME,
        )


Verdict = ReferralView | ClearedView | ReviewView
"""A record of an item's verdict: referred, cleared, or waiting for review."""


@dataclass(frozen=True)
class DeadLetterView:
    """A dead letter: the input message it stands for (``source``), why, and at which stage."""

    source: SourcePosition | None
    received_at: datetime | None
    code: str
    stage: str

    @property
    def at(self) -> datetime | None:
        return self.received_at

    @property
    def key(self) -> Hashable | None:
        """Its source position; None (no source to recognise a redelivery by) keeps it."""
        return self.source

    @classmethod
    def of(cls, record: object) -> DeadLetterView | None:
        if not isinstance(record, Mapping):
            return None
        source = _block(record, "source")
        topic, partition, offset = source.get("topic"), source.get("partition"), source.get("offset")
        position = (
            SourcePosition(topic, partition, offset)
            if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int)
            else None
        )
        return cls(
            position,
            utc_time(record.get("received_at")),
            _text(_block(record, "error").get("code")),
            _text(record.get("stage")),
        )


@dataclass(frozen=True)
class DecisionView:
    """A reviewer's decision: ``decision`` is None for anything but a known decision name."""

    key: Hashable
    decided_at: datetime | None
    decision: DecisionName | None

    @property
    def at(self) -> datetime | None:
        return self.decided_at

    @classmethod
    def of(cls, record: object) -> DecisionView | None:
        """Keyed by ``decision_id``; without one, by what the worker derives it from (review,
        reviewer, decision, time). A value that is not a string stands for itself only by its JSON
        type, so that the key never walks into whatever a producer nested there. Without a
        ``review_id`` either, None."""
        if not isinstance(record, Mapping):
            return None
        key: Hashable | None = _id(record.get("decision_id"))
        if key is None:
            if _id(record.get("review_id")) is None:
                return None
            values = (record.get(k) for k in ("review_id", "reviewer", "decision", "decided_at"))
            key = tuple(value if isinstance(value, str) else (json_type(value),) for value in values)
        return cls(key, utc_time(record.get("decided_at")), _decision(record.get("decision")))


@dataclass(frozen=True)
class TopicViews:
    """The report's topics as views, in the reader's order; None: not a record of its topic."""

    referrals: list[ReferralView | None]
    cleared: list[ClearedView | None]
    review: list[ReviewView | None]
    dlq: list[DeadLetterView | None]
    decisions: list[DecisionView | None]


def view_topics(records_by_topic: Mapping[str, Sequence[object]]) -> TopicViews:
    """Each record of ``records_by_topic`` (``{short name: records}`` as
    :func:`~streams.reporting.read.read_topics` returns) as its topic's view. Topics left out are
    empty; others are ignored."""

    def each(name: str, read: Callable[[object], V | None]) -> list[V | None]:
        return [read(record) for record in records_by_topic.get(name, ())]

    return TopicViews(
        referrals=each(REFERRALS.name, ReferralView.of),
        cleared=each(CLEARED.name, ClearedView.of),
        review=each(REVIEW.name, ReviewView.of),
        dlq=each(DLQ.name, DeadLetterView.of),
        decisions=each(DECISIONS_TOPIC.name, DecisionView.of),
    )


def _id(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(value: object) -> str:
    return value if isinstance(value, str) and value.strip() else UNKNOWN


def _block(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def _model(value: object) -> str:
    """``name@revision``, or :data:`UNKNOWN` without a name."""
    if isinstance(value, Mapping) and (name := _text(value.get("name"))) != UNKNOWN:
        return f"{name}@{_text(value.get('revision'))}"
    return UNKNOWN


def _decided_by(value: object) -> str:
    """Records from before schema version 2 have no ``decided_by``: they were all the model's."""
    return DecidedBy.MODEL.value if value is None else _id(value) or UNKNOWN


def _decision(value: object) -> DecisionName | None:
    return next((name for name in DECISIONS if name == value), None)
