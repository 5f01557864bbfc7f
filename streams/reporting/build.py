"""Building a :class:`~streams.reporting.figures.Report` from the records of the output topics:
pure (no broker, no clock), de-duplicated, in a period. :func:`build_report` is the entry point.
It reads each record once, as its view (:mod:`streams.reporting.views`); all after that works on
the views' attributes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from classifiers.base import LABELS
from streams.kafka.topics import CLEARED, DLQ, REFERRALS, REVIEW
from streams.kafka.topics import DECISIONS as DECISIONS_TOPIC
from streams.records import DECISIONS, MATCH_TYPES, OBSERVED_AT_EARLIEST, DecidedBy
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
)
from streams.reporting.views import (
    NOT_A_TIME,
    ClearedView,
    DecisionView,
    ReferralView,
    ReviewView,
    Verdict,
    View,
    view_topics,
)

_PRECEDENCE = {REVIEW.name: 0, CLEARED.name: 1, REFERRALS.name: 2}
"""On the same verdict time, a referral beats a clearance and both beat a review still pending."""
V = TypeVar("V", bound=View, covariant=True)


@dataclass(frozen=True)
class _Entry(Generic[V]):
    """One de-duplicated record (its view) with its place in the input."""

    topic: str
    record: V
    order: int

    @property
    def at(self) -> datetime | None:
        return self.record.at

    def rank(self) -> tuple[datetime, int, int]:
        return (self.at or datetime.min.replace(tzinfo=UTC), _PRECEDENCE.get(self.topic, 0), self.order)


@dataclass
class _Topic(Generic[V]):
    """A topic's records after validation, the time filter's upper bound and de-duplication."""

    entries: dict[Hashable, _Entry[V]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


def _prepare(topic: str, records: Sequence[V | None], *, filtered: bool, until: datetime | None) -> _Topic[V]:
    """Drop invalid records (no view), undated ones when the period is bounded, those at or after
    ``until`` (so that "later" means "later but before the period's end"), and duplicates (the
    latest wins). A record whose view has no key stands for itself."""
    prepared: _Topic[V] = _Topic()
    prepared.counts["read"] = len(records)
    for order, record in enumerate(records):
        if record is None:
            prepared.counts["invalid"] += 1
            continue
        at = record.at
        if at is None and filtered:
            prepared.counts["undated"] += 1
            continue
        if until is not None and at is not None and at >= until:
            prepared.counts["out_of_period"] += 1
            continue
        entry = _Entry(topic, record, order)
        key = record.key if record.key is not None else ("#", order)
        previous = prepared.entries.get(key)
        if previous is not None:
            prepared.counts["duplicates"] += 1
            if previous.rank() > entry.rank():
                continue
        prepared.entries[key] = entry
    return prepared


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
    records_by_topic: Mapping[str, Sequence[object]],
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

    views = view_topics(records_by_topic)
    referral_topic = _prepare(REFERRALS.name, views.referrals, filtered=filtered, until=until)
    cleared_topic = _prepare(CLEARED.name, views.cleared, filtered=filtered, until=until)
    review_topic = _prepare(REVIEW.name, views.review, filtered=filtered, until=until)
    dlq_topic = _prepare(DLQ.name, views.dlq, filtered=filtered, until=until)
    decision_topic = _prepare(DECISIONS_TOPIC.name, views.decisions, filtered=filtered, until=until)
    topics: dict[str, _Topic[View]] = {
        REFERRALS.name: referral_topic,
        CLEARED.name: cleared_topic,
        REVIEW.name: review_topic,
        DLQ.name: dlq_topic,
        DECISIONS_TOPIC.name: decision_topic,
    }

    def in_period(entry: _Entry[View]) -> bool:
        return since is None or entry.at is None or entry.at >= since

    def latest_by_item(entries: Iterable[_Entry[Verdict]]) -> dict[str, _Entry[Verdict]]:
        latest: dict[str, _Entry[Verdict]] = {}
        for entry in entries:
            item = entry.record.item_id
            if item is not None and (item not in latest or latest[item].rank() < entry.rank()):
                latest[item] = entry
        return latest

    def superseded(entry: _Entry[Verdict], later: Mapping[str, _Entry[Verdict]]) -> bool:
        other = later.get(entry.record.item_id or "")
        return other is not None and (entry.at is None or other.at is None or other.at >= entry.at)

    # Supersession looks at every verdict before ``until``, also those before ``since``.
    all_referrals = list(referral_topic.entries.values())
    referral_by_item = latest_by_item(all_referrals)
    decided_by_item = latest_by_item([*all_referrals, *cleared_topic.entries.values()])
    referrals = [e for e in all_referrals if in_period(e)]
    cleared = [
        e for e in cleared_topic.entries.values() if in_period(e) and not superseded(e, referral_by_item)
    ]
    reviews = [e for e in review_topic.entries.values() if in_period(e)]
    pending = [e for e in reviews if not superseded(e, decided_by_item)]
    dead = [e for e in dlq_topic.entries.values() if in_period(e)]
    decisions = [e for e in decision_topic.entries.values() if in_period(e)]

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

    verdicts: list[_Entry[Verdict]] = [*referrals, *cleared, *pending]
    times = [e.at for e in verdicts if e.at is not None]
    final = latest_by_item(verdicts)

    return Report(
        period=Period(since, until, min(times, default=None), max(times, default=None)),
        totals=Totals(
            items=len({e.record.item_id for e in verdicts if e.record.item_id is not None}),
            referrals=len(referrals),
            cleared=len(cleared),
            pending_review=len(pending),
            dlq=len(dead),
        ),
        **_referral_figures(referrals),
        verdicts_by_platform=_rates(referrals, cleared, lambda view: view.platform),
        verdicts_by_lang=_rates(referrals, cleared, lambda view: view.lang),
        **latencies,
        review=_review(referrals, cleared, reviews, pending, decisions),
        known_content_by_type=_with_keys(
            Counter(e.record.match_type for e in referrals if e.record.decided_by == DecidedBy.HASHBANK),
            MATCH_TYPES,
        ),
        dlq_by_code=_sorted(Counter(e.record.code for e in dead)),
        dlq_by_stage=_sorted(Counter(e.record.stage for e in dead)),
        shadow=_shadow(final.values()),
        input=inputs,
        generated_at=_utc(generated_at),
    )


def _referral_figures(referrals: Sequence[_Entry[ReferralView]]) -> dict[str, Any]:
    labels: Counter[str] = Counter()
    multi = 0
    for entry in referrals:
        labels.update(entry.record.labels)
        multi += len(entry.record.labels) > 1

    def model(referral: ReferralView) -> str:
        if referral.decided_by == DecidedBy.HASHBANK:
            return DecidedBy.HASHBANK.value
        return referral.model

    return {
        "referrals_by_label": _with_keys(labels, LABELS),
        "multi_label_referrals": multi,
        "referrals_by_platform": _sorted(Counter(e.record.platform for e in referrals)),
        "referrals_by_lang": _sorted(Counter(e.record.lang for e in referrals)),
        "referrals_by_model": _sorted(Counter(model(e.record) for e in referrals)),
        "referrals_by_decided_by": _with_keys(Counter(e.record.decided_by for e in referrals), DECIDED_BY),
    }


def _rates(
    referrals: Sequence[_Entry[ReferralView]],
    cleared: Sequence[_Entry[ClearedView]],
    by: Callable[[ReferralView | ClearedView], str],
) -> dict[str, Rate]:
    referred = Counter(by(e.record) for e in referrals)
    clear = Counter(by(e.record) for e in cleared)
    return {
        key: Rate(verdicts=referred[key] + clear[key], referrals=referred[key], cleared=clear[key])
        for key in sorted(set(referred) | set(clear))
    }


def _latencies(referrals: Sequence[_Entry[ReferralView]]) -> tuple[dict[str, Any], int]:
    """The time to referral, overall and per route, and how many dated referrals carry an
    ``observed_at`` that is not a plausible capture time (one record with year 1 would otherwise
    move the median by two thousand years)."""
    seconds: dict[str, list[float]] = {route: [] for route in DECIDED_BY}
    implausible = 0
    for entry in referrals:
        observed = entry.record.observed_at
        if observed is None or entry.at is None:
            continue
        if observed is NOT_A_TIME or not OBSERVED_AT_EARLIEST <= observed <= entry.at:
            implausible += 1
            continue
        seconds.setdefault(entry.record.decided_by, []).append((entry.at - observed).total_seconds())
    figures = {
        "time_to_referral": Latency.of([s for values in seconds.values() for s in values]),
        "time_to_referral_by_decided_by": {route: Latency.of(values) for route, values in seconds.items()},
    }
    return figures, implausible


def _review(
    referrals: Sequence[_Entry[ReferralView]],
    cleared: Sequence[_Entry[ClearedView]],
    reviews: Sequence[_Entry[ReviewView]],
    pending: Sequence[_Entry[ReviewView]],
    decisions: Sequence[_Entry[DecisionView]],
) -> Review:
    def reviewed(entries: Sequence[_Entry[ReferralView | ClearedView]], decision: str) -> int:
        return sum(
            1 for e in entries if e.record.decided_by == DecidedBy.REVIEW and e.record.reviewed == decision
        )

    received = Counter(e.record.decision or "other" for e in decisions)
    return Review(
        queued=len(reviews),
        approved=reviewed(referrals, "approve"),
        rejected=reviewed(cleared, "reject"),
        pending=len(pending),
        decisions_received={"total": len(decisions), **_with_keys(received, (*DECISIONS, "other"))},
    )


def _shadow(final: Iterable[_Entry[Verdict]]) -> dict[str, Shadow]:
    """Per shadow model, over each item's latest verdict that carries a shadow block."""
    tallies: dict[str, Counter[str]] = {}
    for entry in final:
        shadow = entry.record.shadow
        if shadow is None:
            continue
        tally = tallies.setdefault(shadow.model, Counter())
        tally["items"] += 1
        tally["shadow_flagged"] += shadow.flagged
        live = isinstance(entry.record, ReferralView) and entry.record.decided_by != DecidedBy.HASHBANK
        tally["live_flagged"] += live
        tally["agreed"] += shadow.agrees
    return {
        name: Shadow(t["items"], t["shadow_flagged"], t["live_flagged"], t["agreed"])
        for name, t in sorted(tallies.items())
    }
