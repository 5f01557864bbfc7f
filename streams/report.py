"""The transparency report: what the pipeline decided over a period, read back from its topics.

The figures feed the transparency reports of the EU TCO Regulation (2021/784): Art. 7 for hosting
service providers, Art. 8 for competent authorities such as an Internet Referral Unit. They cover
what propwatch sees (referrals, clearances, human review, known-content matches, processing
failures); removal orders, complaints and penalties are recorded elsewhere and are not in it.

Two halves: :func:`read_topics` reads whole topics from a broker, and :func:`build_report` turns
their records into a :class:`Report` without one (pure, so unit tests need no broker).
:func:`format_markdown` renders a report for publication; :meth:`Report.as_json` gives its
figures to programs.

Delivery is at-least-once, so the same record can be read more than once. Every count is after
de-duplication: referrals by ``referral_id``, cleared and review records by ``item_id`` (a later
verdict of the same item wins), reviewers' decisions by ``decision_id``, dead letters by the input
message they stand for (``source`` topic, partition and offset).
"""

from __future__ import annotations

import html
import re
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from classifiers.base import LABELS
from streams.hashbank import MATCH_TYPES
from streams.io import one_line
from streams.records import DECISIONS, OBSERVED_AT_EARLIEST, DecidedBy, parse_rfc3339
from streams.safejson import NotJson, json_type, parse_object
from streams.settings import Settings

REPORT_VERSION = 1
"""Version of :meth:`Report.as_json`'s layout; bumped when a key changes meaning or goes away."""
TOPICS: tuple[str, ...] = ("referrals", "cleared", "review", "dlq", "decisions")
"""The topics (short names) the report reads."""
DECIDED_BY: tuple[str, ...] = tuple(str(route) for route in DecidedBy)
UNKNOWN = "unknown"
"""What a missing or empty platform, language, model or code is counted as."""
CELL_CHARS = 80
"""Longest value a Markdown table cell shows; longer ones are cut and end with an ellipsis."""

Record = dict[str, Any]
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# On the same verdict time, a referral beats a clearance and both beat a review still pending.
_PRECEDENCE = {"review": 0, "cleared": 1, "referrals": 2}
_MARKDOWN_SPECIAL = re.compile(r"[\\|`\[\]]")


# --- Reading -----------------------------------------------------------------------------------


def read_topics(
    settings: Settings,
    short_names: Iterable[str] = TOPICS,
    *,
    timeout_s: float = 60.0,
    unreadable: dict[str, int] | None = None,
) -> dict[str, list[Record]]:
    """Every record of the topics ``short_names``, from the beginning to their ends, as parsed JSON
    objects; ``{short name: [record, ...]}`` in partition order.

    It stops when every partition's position reaches its end (see :func:`_read_to_ends`), not
    after a silence; records written while it reads may be included. No consumer group is
    joined and nothing is committed. A topic that does not exist yet is empty. Values that
    :func:`parse_record` cannot read are skipped; when ``unreadable`` is given, their count per
    short name is added to it. Raises :class:`TimeoutError` when the end is not reached within
    ``timeout_s``.
    """
    names = list(dict.fromkeys(short_names))
    result: dict[str, list[Record]] = {name: [] for name in names}
    skipped: Counter[str] = Counter()
    short = {settings.topic(name): name for name in names}
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **settings.kafka_python_config())
    try:
        existing = consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in short
            if topic in existing
            for p in sorted(consumer.partitions_for_topic(topic))
        ]
        if partitions:
            consumer.assign(partitions)
            ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
            consumer.seek_to_beginning(*partitions)
            _read_to_ends(consumer, ends, short, result, skipped, timeout_s)
    finally:
        consumer.close()
    if unreadable is not None:
        for name, count in skipped.items():
            unreadable[name] = unreadable.get(name, 0) + count
    return result


def _read_to_ends(
    consumer: KafkaConsumer,
    ends: Mapping[TopicPartition, int],
    short: Mapping[str, str],
    result: dict[str, list[Record]],
    skipped: Counter[str],
    timeout_s: float,
) -> None:
    """Poll the assigned partitions until each one's position reaches its end: the larger of the
    end offset listed at the start and the high watermark of the latest fetch. The embedded broker
    (Tansu 0.6) lists less than the high watermark once one produce request carried several
    records to a partition, so the listed offset alone would stop short."""

    def end(tp: TopicPartition) -> int | None:
        highwater = consumer.highwater(tp)
        return None if highwater is None else max(ends[tp], highwater)

    remaining = set(ends)
    deadline = time.monotonic() + timeout_s
    while remaining:
        if time.monotonic() > deadline:
            behind = ", ".join(
                f"{tp.topic}[{tp.partition}] at {consumer.position(tp)} of {end(tp) or ends[tp]}"
                for tp in sorted(remaining)
            )
            raise TimeoutError(f"did not reach the end of the topics within {timeout_s:g} s: {behind}")
        for tp, messages in consumer.poll(timeout_ms=500).items():
            for message in messages:
                value = parse_record(message.value)
                if value is None:
                    skipped[short[tp.topic]] += 1
                else:
                    result[short[tp.topic]].append(value)
        if done := {
            tp for tp in remaining if (last := end(tp)) is not None and consumer.position(tp) >= last
        }:
            consumer.pause(*done)
            remaining -= done


def parse_record(value: bytes | None) -> Record | None:
    """A message value as a record, or None when it is not one: a tombstone, or anything
    :func:`streams.safejson.parse_object` refuses (not UTF-8 or not JSON, not an object, a number
    out of range, nesting deeper than ``MAX_DEPTH``, a lone surrogate). Never raises: whoever can
    write to a topic must not be able to stop the report for the topic's whole retention."""
    if value is None:
        return None
    parsed = parse_object(value)
    return None if isinstance(parsed, NotJson) else parsed


# --- Times -------------------------------------------------------------------------------------


def parse_when(value: str) -> datetime:
    """A report boundary: a date ``2026-11-01`` (midnight UTC) or an RFC 3339 timestamp with an
    offset (``2026-11-01T08:30:00Z``). Raises :class:`ValueError` with the accepted forms."""
    text = value.strip()
    if _DATE.fullmatch(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid date: {exc}") from None
    parsed = _time(text)
    if parsed is None:
        raise ValueError(
            f"{value!r} is neither a date (2026-11-01, meaning midnight UTC) nor an RFC 3339 "
            "timestamp with an offset (2026-11-01T08:30:00Z) in years 1 to 9999 UTC"
        )
    return parsed


def rfc3339(moment: datetime | None) -> str | None:
    """``moment`` as RFC 3339 in UTC (``Z``), whole seconds unless it has a fraction."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds").replace("+00:00", "Z")


def _time(value: object) -> datetime | None:
    """An RFC 3339 timestamp in UTC, or None: not a string, not a timestamp, or outside what
    ``datetime`` holds once in UTC (``0001-01-01T00:00:00+01:00``). Every time the report compares,
    subtracts or prints comes through here, so none of those steps can overflow."""
    moment = parse_rfc3339(value) if isinstance(value, str) else None
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def _aware(moment: datetime | None) -> datetime | None:
    """Naive datetimes are read as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


# --- The report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The period asked for (``since`` inclusive, ``until`` exclusive, None: open) and the first
    and last verdict time among the counted referrals, clearances and pending reviews."""

    since: datetime | None
    until: datetime | None
    first_verdict_at: datetime | None
    last_verdict_at: datetime | None


@dataclass(frozen=True)
class Totals:
    """Unique items with a verdict, referrals, clearances, reviews still pending, dead letters."""

    items: int
    referrals: int
    cleared: int
    pending_review: int
    dlq: int


@dataclass(frozen=True)
class Rate:
    """Verdicts (referrals plus clearances) of one platform or language, and the referral rate."""

    verdicts: int
    referrals: int
    cleared: int

    @property
    def referral_rate(self) -> float | None:
        return _ratio(self.referrals, self.verdicts)


@dataclass(frozen=True)
class Latency:
    """Seconds from ``observed_at`` to ``classified_at`` over referrals that carry both, where
    ``observed_at`` is a plausible capture time: not before :data:`OBSERVED_AT_EARLIEST` and not
    after the referral."""

    count: int
    median_s: float | None
    p90_s: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(seconds)
        return cls(len(ordered), _percentile(ordered, 0.5), _percentile(ordered, 0.9))


@dataclass(frozen=True)
class Review:
    """Human review in the period: items queued, approvals (referrals decided by review), rejections
    (clearances decided by review), items queued and still undecided at the period's end, and the
    reviewers' decisions received on the decisions topic (``approve``, ``reject``, ``other``)."""

    queued: int
    approved: int
    rejected: int
    pending: int
    decisions_received: dict[str, int]


@dataclass(frozen=True)
class Shadow:
    """One shadow model over the items whose verdict carries its scores."""

    items: int
    shadow_flagged: int
    live_flagged: int
    agreed: int

    @property
    def shadow_flag_rate(self) -> float | None:
        return _ratio(self.shadow_flagged, self.items)

    @property
    def live_flag_rate(self) -> float | None:
        return _ratio(self.live_flagged, self.items)

    @property
    def agreement_rate(self) -> float | None:
        return _ratio(self.agreed, self.items)


@dataclass(frozen=True)
class TopicInput:
    """What happened to one topic's records: ``read`` = ``invalid`` + ``undated`` +
    ``out_of_period`` + ``duplicates`` + ``in_period``; ``unreadable`` (what
    :func:`parse_record` refuses) comes from the reader and is not part of ``read``.
    ``implausible_observed_at`` (referrals only) is the part of ``in_period`` that has an
    ``observed_at`` but not a plausible one (not a timestamp, before
    :data:`OBSERVED_AT_EARLIEST`, or after the referral): counted everywhere but left out of the
    time to referral."""

    read: int = 0
    unreadable: int = 0
    invalid: int = 0
    undated: int = 0
    out_of_period: int = 0
    duplicates: int = 0
    in_period: int = 0
    implausible_observed_at: int = 0


@dataclass(frozen=True)
class Report:
    """The figures of one period; see :meth:`as_json` for what each means."""

    period: Period
    totals: Totals
    referrals_by_label: dict[str, int]
    multi_label_referrals: int
    referrals_by_platform: dict[str, int]
    referrals_by_lang: dict[str, int]
    referrals_by_model: dict[str, int]
    referrals_by_decided_by: dict[str, int]
    verdicts_by_platform: dict[str, Rate]
    verdicts_by_lang: dict[str, Rate]
    time_to_referral: Latency
    time_to_referral_by_decided_by: dict[str, Latency]
    review: Review
    known_content_by_type: dict[str, int]
    dlq_by_code: dict[str, int]
    dlq_by_stage: dict[str, int]
    shadow: dict[str, Shadow]
    input: dict[str, TopicInput]
    generated_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON object. Keys are stable within ``report_version``; maps keyed by
        data (platforms, languages, models, codes) are sorted by key; rates are fractions in
        [0, 1] rounded to 4 places, or null when nothing was counted; times are RFC 3339 UTC.

        - ``report_version``: 1. ``generated_at``: when the report was made, or null.
        - ``period``: ``since`` (inclusive) and ``until`` (exclusive), null when open;
          ``first_verdict_at`` / ``last_verdict_at``: earliest and latest verdict counted.
        - ``totals``: ``items`` (unique item ids with a verdict: referred, cleared or pending
          review), ``referrals`` (unique referral ids), ``cleared`` (items cleared and not referred
          later), ``pending_review`` (queued in the period, undecided at its end), ``dlq`` (dead
          letters, one per input message).
        - ``referrals``: ``by_label`` (every taxonomy label; a referral with several labels counts
          under each), ``multi_label`` (referrals with two labels or more), ``by_platform``,
          ``by_lang`` (missing: ``unknown``), ``by_model`` (``name@revision``, ``hashbank`` for
          known-content matches), ``by_decided_by`` (``model``, ``hashbank``, ``review``).
        - ``verdicts``: ``by_platform`` and ``by_lang``, each ``{verdicts, referrals, cleared,
          referral_rate}`` with verdicts = referrals + cleared.
        - ``time_to_referral``: ``count``, ``median_s``, ``p90_s`` of classified_at - observed_at
          in seconds over referrals whose ``observed_at`` is a plausible capture time (from
          1990-01-01T00:00:00Z to the referral); ``by_decided_by`` the same per route. Referrals
          with another ``observed_at`` are counted in ``input.referrals.implausible_observed_at``.
        - ``review``: ``queued``, ``approved``, ``rejected``, ``pending``, ``decisions_received``
          (``total``, ``approve``, ``reject``, ``other``).
        - ``known_content``: ``matches`` (referrals decided by the hash bank), ``by_type``
          (``exact``, ``near``).
        - ``dlq``: ``total``, ``by_code`` (``error.code``), ``by_stage``.
        - ``shadow``: per shadow model ``name@revision``: ``items`` scored, ``shadow_flagged``,
          ``shadow_flag_rate``, ``live_flagged`` / ``live_flag_rate`` (the same items referred by
          the live model), ``agreed`` / ``agreement_rate``; ``{}`` when no record has a shadow.
        - ``input``: per topic ``read``, ``unreadable``, ``invalid``, ``undated``,
          ``out_of_period``, ``duplicates``, ``in_period``, ``implausible_observed_at`` (see
          :class:`TopicInput`).
        """
        return {
            "report_version": REPORT_VERSION,
            "generated_at": rfc3339(self.generated_at),
            "period": {
                "since": rfc3339(self.period.since),
                "until": rfc3339(self.period.until),
                "first_verdict_at": rfc3339(self.period.first_verdict_at),
                "last_verdict_at": rfc3339(self.period.last_verdict_at),
            },
            "totals": {
                "items": self.totals.items,
                "referrals": self.totals.referrals,
                "cleared": self.totals.cleared,
                "pending_review": self.totals.pending_review,
                "dlq": self.totals.dlq,
            },
            "referrals": {
                "by_label": dict(self.referrals_by_label),
                "multi_label": self.multi_label_referrals,
                "by_platform": dict(self.referrals_by_platform),
                "by_lang": dict(self.referrals_by_lang),
                "by_model": dict(self.referrals_by_model),
                "by_decided_by": dict(self.referrals_by_decided_by),
            },
            "verdicts": {
                "by_platform": {k: _rate_json(v) for k, v in self.verdicts_by_platform.items()},
                "by_lang": {k: _rate_json(v) for k, v in self.verdicts_by_lang.items()},
            },
            "time_to_referral": {
                **_latency_json(self.time_to_referral),
                "by_decided_by": {
                    k: _latency_json(v) for k, v in self.time_to_referral_by_decided_by.items()
                },
            },
            "review": {
                "queued": self.review.queued,
                "approved": self.review.approved,
                "rejected": self.review.rejected,
                "pending": self.review.pending,
                "decisions_received": dict(self.review.decisions_received),
            },
            "known_content": {
                "matches": sum(self.known_content_by_type.values()),
                "by_type": dict(self.known_content_by_type),
            },
            "dlq": {
                "total": self.totals.dlq,
                "by_code": dict(self.dlq_by_code),
                "by_stage": dict(self.dlq_by_stage),
            },
            "shadow": {
                name: {
                    "items": s.items,
                    "shadow_flagged": s.shadow_flagged,
                    "shadow_flag_rate": s.shadow_flag_rate,
                    "live_flagged": s.live_flagged,
                    "live_flag_rate": s.live_flag_rate,
                    "agreed": s.agreed,
                    "agreement_rate": s.agreement_rate,
                }
                for name, s in self.shadow.items()
            },
            "input": {
                topic: {
                    "read": t.read,
                    "unreadable": t.unreadable,
                    "invalid": t.invalid,
                    "undated": t.undated,
                    "out_of_period": t.out_of_period,
                    "duplicates": t.duplicates,
                    "in_period": t.in_period,
                    "implausible_observed_at": t.implausible_observed_at,
                }
                for topic, t in self.input.items()
            },
        }


def _rate_json(rate: Rate) -> dict[str, Any]:
    return {
        "verdicts": rate.verdicts,
        "referrals": rate.referrals,
        "cleared": rate.cleared,
        "referral_rate": rate.referral_rate,
    }


def _latency_json(latency: Latency) -> dict[str, Any]:
    return {"count": latency.count, "median_s": latency.median_s, "p90_s": latency.p90_s}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolating linearly between the closest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)


# --- Building it -------------------------------------------------------------------------------


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
        at = _time(record.get(time_field))
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
        triple = (source.get("topic"), source.get("partition"), source.get("offset"))
        if isinstance(triple[0], str) and isinstance(triple[1], int) and isinstance(triple[2], int):
            return triple
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
        return "model"
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
    ``records_by_topic`` (``{short name: records}`` as :func:`read_topics` returns; topics left
    out count as empty). Pure: no broker, no clock.

    Each record is placed in time by its verdict: ``classified_at`` (referrals, cleared, review),
    ``received_at`` (dlq), ``decided_at`` (decisions). Records are de-duplicated (module
    docstring); a review is pending unless a referral or clearance of the same item at or after
    it exists before ``until``, and a clearance is superseded by a later referral of the item. A
    referral is never superseded: it is a notice already sent. ``unreadable`` is the reader's
    count of values it could not read, per topic.

    Records are taken as :func:`read_topics` returns them: JSON objects without lone surrogates,
    which no report could encode. Whatever their fields hold (wrong types, huge numbers, any
    nesting, control characters, timestamps that overflow in UTC), building, rendering and
    encoding the report does not raise.
    """
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and since >= until:
        raise ValueError(f"since ({rfc3339(since)}) must be before until ({rfc3339(until)})")
    filtered = since is not None or until is not None

    def prepare(
        topic: str, time_field: str, key: Callable[[Mapping[str, Any], int], Hashable | None]
    ) -> _Topic:
        return _prepare(
            topic,
            records_by_topic.get(topic, ()),
            time_field=time_field,
            key=key,
            filtered=filtered,
            until=until,
        )

    topics = {
        "referrals": prepare("referrals", "classified_at", _field_key("referral_id")),
        "cleared": prepare("cleared", "classified_at", _field_key("item_id")),
        "review": prepare("review", "classified_at", _field_key("item_id")),
        "dlq": prepare("dlq", "received_at", _dlq_key),
        "decisions": prepare("decisions", "decided_at", _decision_key),
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

    # Supersession looks at every verdict before ``until``, also those before ``since``.
    referral_by_item = latest_by_item(topics["referrals"].entries.values())
    decided_by_item = latest_by_item(
        [*topics["referrals"].entries.values(), *topics["cleared"].entries.values()]
    )
    referrals = [e for e in topics["referrals"].entries.values() if in_period(e)]
    cleared = [
        e for e in topics["cleared"].entries.values() if in_period(e) and not superseded(e, referral_by_item)
    ]
    reviews = [e for e in topics["review"].entries.values() if in_period(e)]
    pending = [e for e in reviews if not superseded(e, decided_by_item)]
    dead = [e for e in topics["dlq"].entries.values() if in_period(e)]
    decisions = [e for e in topics["decisions"].entries.values() if in_period(e)]

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
            implausible_observed_at=implausible_observed_at if name == "referrals" else 0,
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
                if _decided_by(e.record) == "hashbank"
            ),
            MATCH_TYPES,
        ),
        dlq_by_code=_sorted(Counter(_text(_sub(e.record, "error"), "code") for e in dead)),
        dlq_by_stage=_sorted(Counter(_text(e.record, "stage") for e in dead)),
        shadow=_shadow(final.values()),
        input=inputs,
        generated_at=_aware(generated_at),
    )


def _referral_figures(referrals: Sequence[_Entry]) -> dict[str, Any]:
    labels: Counter[str] = Counter()
    multi = 0
    for entry in referrals:
        found = _labels(entry.record)
        labels.update(found)
        multi += len(found) > 1

    def model(record: Mapping[str, Any]) -> str:
        if _decided_by(record) == "hashbank":
            return "hashbank"
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
        observed = _time(value)
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
            if _decided_by(e.record) == "review" and _sub(e.record, "review").get("decision") == decision
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
        tally["live_flagged"] += entry.topic == "referrals" and _decided_by(entry.record) != "hashbank"
        tally["agreed"] += shadow.get("agrees") is True
    return {
        name: Shadow(t["items"], t["shadow_flagged"], t["live_flagged"], t["agreed"])
        for name, t in sorted(tallies.items())
    }


# --- Markdown ----------------------------------------------------------------------------------


def _cell(value: object) -> str:
    """``value`` as one table cell, safe whatever a producer wrote into it: cut to
    :data:`CELL_CHARS` characters; control characters, line breaks (a row is one line),
    bidirectional overrides and lone surrogates written as ``\\uXXXX`` (:func:`one_line`), so
    that neither a terminal nor a page is driven or reordered by them; ``\\ | ` [ ]`` escaped,
    so that no value ends the row, opens code or makes a link or remote image; ``& < >`` as HTML
    entities, so that a page rendering the Markdown shows any HTML as text. Emphasis (``* _ ~``)
    is left: it hides nothing."""
    text = str(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "\u2026"
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\g<0>", one_line(text)), quote=False)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], text: Sequence[int] = (0,)) -> list[str]:
    """A Markdown table; the columns numbered in ``text`` are left-aligned, the others (numbers) right."""
    rule = "|" + "|".join("---" if i in text else "---:" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    if len(lines) == 2:
        lines.append("| " + " | ".join(["none", *[""] * (len(headers) - 1)]) + " |")
    return lines


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f} %"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    sign, rest = ("-" if seconds < 0 else ""), abs(seconds)
    if rest < 60:
        return f"{sign}{rest:.1f} s"
    if rest < 3600:
        return f"{sign}{int(rest // 60)} min {int(rest % 60)} s"
    if rest < 86400:
        return f"{sign}{int(rest // 3600)} h {int(rest % 3600 // 60)} min"
    return f"{sign}{int(rest // 86400)} d {int(rest % 86400 // 3600)} h"


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def format_markdown(report: Report) -> str:
    """The report as Markdown, readable as a published transparency report."""
    p, t = report.period, report.totals
    since = rfc3339(p.since) or "the oldest record kept"
    until = rfc3339(p.until) or "the time of the report"
    lines = [
        "# Transparency report: terrorist content detection",
        "",
        f"Period: from {since} (inclusive) to {until} (exclusive).",
    ]
    if p.first_verdict_at is not None:
        lines.append(f"Verdicts counted: {rfc3339(p.first_verdict_at)} to {rfc3339(p.last_verdict_at)}.")
    if report.generated_at is not None:
        lines.append(f"Generated: {rfc3339(report.generated_at)}.")
    lines += [
        "",
        "Figures for the transparency reports of Regulation (EU) 2021/784 (TCO), Articles 7 and 8, "
        "as seen by the detection pipeline; removal orders, complaints and penalties are not in it. "
        "Messages can be delivered more than once, so every count is after de-duplication: one "
        "referral per referral id, one verdict per item, one dead letter per input message.",
        "",
        "## Summary",
        "",
        *_table(
            ("Figure", "Count", "Meaning"),
            [
                ("Items with a verdict", t.items, "distinct items referred, cleared or awaiting review"),
                ("Referrals", t.referrals, "items reported as suspected terrorist content"),
                ("Cleared", t.cleared, "items assessed and not referred, by the model or a reviewer"),
                ("Awaiting review", t.pending_review, "items queued for a person, undecided at the end"),
                ("Processing failures", t.dlq, "items that could not be processed (dead-letter topic)"),
            ],
            text=(0, 2),
        ),
        "",
        "## Referrals by label",
        "",
        f"A referral with several labels counts under each; {report.multi_label_referrals} of "
        f"{t.referrals} referrals had more than one, so the column can add up to more than the total.",
        "",
        *_table(
            ("Label", "Referrals", "Share of referrals"),
            [(k, v, _percent(_ratio(v, t.referrals))) for k, v in report.referrals_by_label.items()],
        ),
    ]
    for title, column, counts in (
        ("Referrals by platform", "Platform", report.referrals_by_platform),
        ("Referrals by language", "Language", report.referrals_by_lang),
        (
            "Referrals by model",
            "Model (name@revision; hashbank: known-content match)",
            report.referrals_by_model,
        ),
        ("Referrals by decision route", "Decided by", report.referrals_by_decided_by),
    ):
        lines += ["", f"## {title}", "", *_table((column, "Referrals"), _by_count(counts))]
    lines += [
        "",
        "## Referral rates",
        "",
        "Verdicts are referrals plus clearances; the rate is the share of verdicts that were referrals.",
    ]
    for column, rates in (("Platform", report.verdicts_by_platform), ("Language", report.verdicts_by_lang)):
        lines += [
            "",
            *_table(
                (column, "Verdicts", "Referrals", "Cleared", "Referral rate"),
                [
                    (k, r.verdicts, r.referrals, r.cleared, _percent(r.referral_rate))
                    for k, r in rates.items()
                ],
            ),
        ]
    latency = report.time_to_referral
    lines += [
        "",
        "## Time from observation to referral",
        "",
        "From when the content was observed (observed_at) to the referral (classified_at), over referrals "
        "that say when their content was observed; the review route includes the time a person took. "
        f"{report.input['referrals'].implausible_observed_at} referrals with an observed_at that is not a "
        f"plausible capture time (not a timestamp, before {rfc3339(OBSERVED_AT_EARLIEST)} or after the "
        "referral) are not timed.",
        "",
        *_table(
            ("Decided by", "Referrals timed", "Median", "90th percentile"),
            [
                ("all", latency.count, _duration(latency.median_s), _duration(latency.p90_s)),
                *[
                    (k, v.count, _duration(v.median_s), _duration(v.p90_s))
                    for k, v in report.time_to_referral_by_decided_by.items()
                ],
            ],
        ),
    ]
    r = report.review
    d = r.decisions_received
    lines += [
        "",
        "## Human review",
        "",
        "Events in the period: an item queued before it and decided in it counts as decided only.",
        "",
        *_table(
            ("Figure", "Count"),
            [
                ("Queued for review", r.queued),
                ("Approved (referred)", r.approved),
                ("Rejected (cleared)", r.rejected),
                ("Queued and still pending", r.pending),
                ("Reviewer decisions received", d.get("total", 0)),
                ("... of which not approve or reject (dead-lettered)", d.get("other", 0)),
            ],
        ),
        "",
        "## Known-content matches",
        "",
        "Referrals decided by the hash bank of content already referred: exact (same normalised text) "
        "or near (similar text).",
        "",
        *_table(
            ("Match type", "Referrals"),
            [*report.known_content_by_type.items(), ("all", sum(report.known_content_by_type.values()))],
        ),
        "",
        "## Processing failures",
        "",
        *_table(("Error code", "Items"), _by_count(report.dlq_by_code)),
    ]
    if report.shadow:
        lines += [
            "",
            "## Shadow model evaluation",
            "",
            "A candidate model scored the same items without deciding anything. Flag rates are over the "
            "items it scored; live is the model in service; agreement is the share of items where both "
            "decided alike.",
            "",
            *_table(
                ("Shadow model", "Items", "Shadow flag rate", "Live flag rate", "Agreement"),
                [
                    (
                        name,
                        s.items,
                        _percent(s.shadow_flag_rate),
                        _percent(s.live_flag_rate),
                        _percent(s.agreement_rate),
                    )
                    for name, s in report.shadow.items()
                ],
            ),
        ]
    lines += [
        "",
        "## Records read",
        "",
        "Records read per topic and what became of them: duplicates are redeliveries of a record "
        "already counted; out of period: verdict time outside the period.",
        "",
        *_table(
            ("Topic", "Read", "Duplicates", "Out of period", "Undated", "Invalid", "Unreadable", "In period"),
            [
                (name, i.read, i.duplicates, i.out_of_period, i.undated, i.invalid, i.unreadable, i.in_period)
                for name, i in report.input.items()
            ],
        ),
    ]
    return "\n".join(lines) + "\n"
