"""Building a :class:`~streams.reporting.figures.Report` from the records of the output topics:
pure (no broker, no clock), de-duplicated, in a period. :func:`build_report` is the entry point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from classifiers.base import LABELS
from streams.kafka.topics import CLEARED, DLQ, REFERRALS, REVIEW, TopicSpec
from streams.kafka.topics import DECISIONS as DECISIONS_TOPIC
from streams.records import DECISIONS, MATCH_TYPES, OBSERVED_AT_EARLIEST, DecidedBy, SourcePosition
from streams.reporting.figures import (
    DECIDED_BY,
    Latency,
    Period,
    Rate,
    Report,
    Review,
    Shadow,
    TopicInput,
    Totals,
    rfc3339,
    utc_time,
)
from streams.safejson import json_type

UNKNOWN = "unknown"
"""What a missing or empty platform, language, model or code is counted as."""
_PRECEDENCE = {REVIEW.name: 0, CLEARED.name: 1, REFERRALS.name: 2}
"""On the same verdict time, a referral beats a clearance and both beat a review still pending."""


@dataclass(frozen=True)
class _Entry:
    """One de-duplicated record with its verdict time and its place in the input."""

    topic: str
    record: Mapping[str, Any]
    at: datetime | None
    order: int

    @property
    def item_id(self) -> str | None:
        value = self.record.get("item_id")
        return value if isinstance(value, str) and value else None

    def rank(self) -> tuple[datetime, int, int]:
        return (self.at or datetime.min.replace(tzinfo=UTC), _PRECEDENCE.get(self.topic, 0), self.order)


@dataclass
class _Topic:
    """A topic's records after validation, the time filter's upper bound and de-duplication."""

    entries: dict[Hashable, _Entry] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


def _prepare(
    topic: str,
    records: Sequence[Mapping[str, Any]],
    *,
    time_field: str,
    key: Callable[[Mapping[str, Any], int], Hashable | None],
    filtered: bool,
    until: datetime | None,
) -> _Topic:
    """Drop invalid records, undated ones when the period is bounded, those at or after ``until``
    (so that "later" means "later but before the period's end"), and duplicates (the latest wins)."""
    prepared = _Topic()
    prepared.counts["read"] = len(records)
    for order, record in enumerate(records):
        k = key(record, order) if isinstance(record, Mapping) else None
        if k is None:
            prepared.counts["invalid"] += 1
            continue
        at = utc_time(record.get(time_field))
        if at is None and filtered:
            prepared.counts["undated"] += 1
            continue
        if until is not None and at is not None and at >= until:
            prepared.counts["out_of_period"] += 1
            continue
        entry = _Entry(topic, record, at, order)
        previous = prepared.entries.get(k)
        if previous is not None:
            prepared.counts["duplicates"] += 1
            if previous.rank() > entry.rank():
                continue
        prepared.entries[k] = entry
    return prepared


def _field_key(name: str) -> Callable[[Mapping[str, Any], int], Hashable | None]:
    def key(record: Mapping[str, Any], order: int) -> Hashable | None:
        value = record.get(name)
        return value if isinstance(value, str) and value else None

    return key


def _dlq_key(record: Mapping[str, Any], order: int) -> Hashable | None:
    """A dead letter stands for one input message: its source topic, partition and offset."""
    source = record.get("source")
    if isinstance(source, Mapping):
        topic, partition, offset = (source.get("topic"), source.get("partition"), source.get("offset"))
        if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int):
            return SourcePosition(topic, partition, offset)
    return ("#", order)  # no source to recognise a redelivery by: keep it


def _decision_key(record: Mapping[str, Any], order: int) -> Hashable | None:
    """``decision_id``; without one, what the worker derives it from (review, reviewer, decision,
    time). A value that is not a string stands for itself only by its JSON type, so that the key
    never walks into whatever a producer nested there."""
    decision_id = record.get("decision_id")
    if isinstance(decision_id, str) and decision_id:
        return decision_id
    review_id = record.get("review_id")
    if not isinstance(review_id, str) or not review_id:
        return None
    values = (record.get(k) for k in ("review_id", "reviewer", "decision", "decided_at"))
    return tuple(value if isinstance(value, str) else (json_type(value),) for value in values)


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    return value if isinstance(value, str) and value.strip() else UNKNOWN


def _decided_by(record: Mapping[str, Any]) -> str:
    """``decided_by``; records from before schema version 2 have none and were all the model's."""
    value = record.get("decided_by")
    if value is None:
        return DecidedBy.MODEL.value
    return value if isinstance(value, str) and value else UNKNOWN


def _model_name(model: object) -> str | None:
    if isinstance(model, Mapping) and (name := _text(model, "name")) != UNKNOWN:
        return f"{name}@{_text(model, 'revision')}"
    return None


def _sub(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def _labels(record: Mapping[str, Any]) -> list[str]:
    value = record.get("labels")
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(label for label in value if isinstance(label, str) and label))


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter)}


def _utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes are read as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _with_keys(counter: Counter[str], keys: Sequence[str]) -> dict[str, int]:
    """``keys`` first (zeros included, so the JSON keys are stable), then any others sorted."""
    return {**{k: counter[k] for k in keys}, **{k: counter[k] for k in sorted(set(counter) - set(keys))}}


def build_report(
    records_by_topic: Mapping[str, Sequence[Mapping[str, Any]]],
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    unreadable: Mapping[str, int] | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """The report of the verdicts in ``[since, until)`` (either bound None: open) among
    ``records_by_topic``: ``{short name: records}`` as
    :func:`~streams.reporting.read.read_topics` returns; topics left out count as empty. Pure: no
    broker, no clock.

    Each record is placed in time by its verdict: ``classified_at`` (referrals, cleared, review),
    ``received_at`` (dlq), ``decided_at`` (decisions). Records are de-duplicated (see
    :mod:`streams.reporting`); a review is pending unless a referral or clearance of the same item
    at or after it exists before ``until``, and a clearance is superseded by a later referral of
    the item. A referral is never superseded: it is a notice already sent. ``unreadable`` is the
    reader's count of values it could not read, per topic.

    Records are taken as the reader returns them: JSON objects without lone surrogates, which no
    report could encode. Whatever their fields hold (wrong types, huge numbers, any nesting,
    control characters, timestamps that overflow in UTC), building, rendering and encoding the
    report does not raise.
    """
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise ValueError(f"since ({rfc3339(since)}) must be before until ({rfc3339(until)})")
    filtered = since is not None or until is not None

    topics = {
        topic.name: _prepare(
            topic.name,
            records_by_topic.get(topic.name, ()),
            time_field=time_field,
            key=key,
            filtered=filtered,
            until=until,
        )
        for topic, time_field, key in (
            (REFERRALS, "classified_at", _field_key("referral_id")),
            (CLEARED, "classified_at", _field_key("item_id")),
            (REVIEW, "classified_at", _field_key("item_id")),
            (DLQ, "received_at", _dlq_key),
            (DECISIONS_TOPIC, "decided_at", _decision_key),
        )
    }

    def in_period(entry: _Entry) -> bool:
        return since is None or entry.at is None or entry.at >= since

    def latest_by_item(entries: Iterable[_Entry]) -> dict[str, _Entry]:
        latest: dict[str, _Entry] = {}
        for entry in entries:
            item = entry.item_id
            if item is not None and (item not in latest or latest[item].rank() < entry.rank()):
                latest[item] = entry
        return latest

    def superseded(entry: _Entry, later: Mapping[str, _Entry]) -> bool:
        other = later.get(entry.item_id or "")
        return other is not None and (entry.at is None or other.at is None or other.at >= entry.at)

    def entries(topic: TopicSpec) -> list[_Entry]:
        return list(topics[topic.name].entries.values())

    # Supersession looks at every verdict before ``until``, also those before ``since``.
    referral_by_item = latest_by_item(entries(REFERRALS))
    decided_by_item = latest_by_item([*entries(REFERRALS), *entries(CLEARED)])
    referrals = [e for e in entries(REFERRALS) if in_period(e)]
    cleared = [e for e in entries(CLEARED) if in_period(e) and not superseded(e, referral_by_item)]
    reviews = [e for e in entries(REVIEW) if in_period(e)]
    pending = [e for e in reviews if not superseded(e, decided_by_item)]
    dead = [e for e in entries(DLQ) if in_period(e)]
    decisions = [e for e in entries(DECISIONS_TOPIC) if in_period(e)]

    latencies, implausible_observed_at = _latencies(referrals)
    inputs = {}
    for name, prepared in topics.items():
        in_range = sum(1 for e in prepared.entries.values() if in_period(e))
        inputs[name] = TopicInput(
            read=prepared.counts["read"],
            unreadable=(unreadable or {}).get(name, 0),
            invalid=prepared.counts["invalid"],
            undated=prepared.counts["undated"],
            out_of_period=prepared.counts["out_of_period"] + len(prepared.entries) - in_range,
            duplicates=prepared.counts["duplicates"],
            in_period=in_range,
            implausible_observed_at=implausible_observed_at if name == REFERRALS.name else 0,
        )

    verdicts = [*referrals, *cleared, *pending]
    times = [e.at for e in verdicts if e.at is not None]
    final = latest_by_item(verdicts)

    return Report(
        period=Period(since, until, min(times, default=None), max(times, default=None)),
        totals=Totals(
            items=len({e.item_id for e in verdicts if e.item_id is not None}),
            referrals=len(referrals),
            cleared=len(cleared),
            pending_review=len(pending),
            dlq=len(dead),
        ),
        **_referral_figures(referrals),
        verdicts_by_platform=_rates(referrals, cleared, "platform"),
        verdicts_by_lang=_rates(referrals, cleared, "lang"),
        **latencies,
        review=_review(referrals, cleared, reviews, pending, decisions),
        known_content_by_type=_with_keys(
            Counter(
                _text(_sub(e.record, "match"), "type")
                for e in referrals
                if _decided_by(e.record) == DecidedBy.HASHBANK
            ),
            MATCH_TYPES,
        ),
        dlq_by_code=_sorted(Counter(_text(_sub(e.record, "error"), "code") for e in dead)),
        dlq_by_stage=_sorted(Counter(_text(e.record, "stage") for e in dead)),
        shadow=_shadow(final.values()),
        input=inputs,
        generated_at=_utc(generated_at),
    )


def _referral_figures(referrals: Sequence[_Entry]) -> dict[str, Any]:
    labels: Counter[str] = Counter()
    multi = 0
    for entry in referrals:
        found = _labels(entry.record)
        labels.update(found)
        multi += len(found) > 1

    def model(record: Mapping[str, Any]) -> str:
        if _decided_by(record) == DecidedBy.HASHBANK:
            return DecidedBy.HASHBANK.value
        return _model_name(record.get("model")) or UNKNOWN

    return {
        "referrals_by_label": _with_keys(labels, LABELS),
        "multi_label_referrals": multi,
        "referrals_by_platform": _sorted(Counter(_text(e.record, "platform") for e in referrals)),
        "referrals_by_lang": _sorted(Counter(_text(e.record, "lang") for e in referrals)),
        "referrals_by_model": _sorted(Counter(model(e.record) for e in referrals)),
        "referrals_by_decided_by": _with_keys(Counter(_decided_by(e.record) for e in referrals), DECIDED_BY),
    }


def _rates(referrals: Sequence[_Entry], cleared: Sequence[_Entry], name: str) -> dict[str, Rate]:
    referred = Counter(_text(e.record, name) for e in referrals)
    clear = Counter(_text(e.record, name) for e in cleared)
    return {
        key: Rate(verdicts=referred[key] + clear[key], referrals=referred[key], cleared=clear[key])
        for key in sorted(set(referred) | set(clear))
    }


def _latencies(referrals: Sequence[_Entry]) -> tuple[dict[str, Any], int]:
    """The time to referral, overall and per route, and how many dated referrals carry an
    ``observed_at`` that is not a plausible capture time (one record with year 1 would otherwise
    move the median by two thousand years)."""
    seconds: dict[str, list[float]] = {route: [] for route in DECIDED_BY}
    implausible = 0
    for entry in referrals:
        value = entry.record.get("observed_at")
        if value is None or entry.at is None:
            continue
        observed = utc_time(value)
        if observed is None or not OBSERVED_AT_EARLIEST <= observed <= entry.at:
            implausible += 1
            continue
        seconds.setdefault(_decided_by(entry.record), []).append((entry.at - observed).total_seconds())
    figures = {
        "time_to_referral": Latency.of([s for values in seconds.values() for s in values]),
        "time_to_referral_by_decided_by": {route: Latency.of(values) for route, values in seconds.items()},
    }
    return figures, implausible


def _review(
    referrals: Sequence[_Entry],
    cleared: Sequence[_Entry],
    reviews: Sequence[_Entry],
    pending: Sequence[_Entry],
    decisions: Sequence[_Entry],
) -> Review:
    def reviewed(entries: Sequence[_Entry], decision: str) -> int:
        return sum(
            1
            for e in entries
            if _decided_by(e.record) == DecidedBy.REVIEW
            and _sub(e.record, "review").get("decision") == decision
        )

    received = Counter(
        e.record.get("decision") if e.record.get("decision") in DECISIONS else "other" for e in decisions
    )
    return Review(
        queued=len(reviews),
        approved=reviewed(referrals, "approve"),
        rejected=reviewed(cleared, "reject"),
        pending=len(pending),
        decisions_received={"total": len(decisions), **_with_keys(received, (*DECISIONS, "other"))},
    )


def _shadow(final: Iterable[_Entry]) -> dict[str, Shadow]:
    """Per shadow model, over each item's latest verdict that carries a shadow block."""
    tallies: dict[str, Counter[str]] = {}
    for entry in final:
        shadow = _sub(entry.record, "shadow")
        if not shadow:
            continue
        tally = tallies.setdefault(_model_name(shadow.get("model")) or UNKNOWN, Counter())
        tally["items"] += 1
        tally["shadow_flagged"] += shadow.get("flagged") is True
        live = entry.topic == REFERRALS.name and _decided_by(entry.record) != DecidedBy.HASHBANK
        tally["live_flagged"] += live
        tally["agreed"] += shadow.get("agrees") is True
    return {
        name: Shadow(t["items"], t["shadow_flagged"], t["live_flagged"], t["agreed"])
        for name, t in sorted(tallies.items())
    }
