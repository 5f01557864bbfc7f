"""The transparency report's figures: :class:`Report` and the dataclasses it is made of, their JSON
form (:meth:`Report.as_json`), and the times they are given in (RFC 3339, UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.records import DecidedBy, parse_rfc3339

REPORT_VERSION = 1
"""Version of :meth:`Report.as_json`'s layout; bumped when a key changes meaning or goes away."""
DECIDED_BY: tuple[str, ...] = tuple(str(route) for route in DecidedBy)
"""The routes to a verdict, always present as keys of the figures per route."""
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_when(value: str) -> datetime:
    """A report boundary: a date ``2026-11-01`` (midnight UTC) or an RFC 3339 timestamp with an
    offset (``2026-11-01T08:30:00Z``). Raises :class:`ValueError` with the accepted forms."""
    text = value.strip()
    if _DATE.fullmatch(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid date: {exc}") from None
    parsed = utc_time(text)
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


def utc_time(value: object) -> datetime | None:
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
        return ratio(self.referrals, self.verdicts)


@dataclass(frozen=True)
class Latency:
    """Seconds from ``observed_at`` to ``classified_at`` over referrals that carry both, where
    ``observed_at`` is a plausible capture time: not before
    :data:`streams.records.OBSERVED_AT_EARLIEST` and not after the referral."""

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
        return ratio(self.shadow_flagged, self.items)

    @property
    def live_flag_rate(self) -> float | None:
        return ratio(self.live_flagged, self.items)

    @property
    def agreement_rate(self) -> float | None:
        return ratio(self.agreed, self.items)


@dataclass(frozen=True)
class TopicInput:
    """What happened to one topic's records: ``read`` = ``invalid`` + ``undated`` +
    ``out_of_period`` + ``duplicates`` + ``in_period``; ``unreadable`` (what
    :func:`streams.reporting.read.parse_record` refuses) comes from the reader and is not part of
    ``read``. ``implausible_observed_at`` (referrals only) is the part of ``in_period`` that has
    an ``observed_at`` but not a plausible one (not a timestamp, before
    :data:`streams.records.OBSERVED_AT_EARLIEST`, or after the referral): counted everywhere but
    left out of the time to referral."""

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


def ratio(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 4 places, as every rate in the report; None when ``whole`` is 0."""
    return round(part / whole, 4) if whole else None


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolating linearly between the closest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)
