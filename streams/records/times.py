"""Timestamps in records: RFC 3339 UTC with milliseconds, and the bounds of a plausible one."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

OBSERVED_AT_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
OBSERVED_AT_AHEAD = timedelta(days=1)
"""``observed_at`` must lie between :data:`OBSERVED_AT_EARLIEST` and now plus this (clock skew):
anything else is a broken capture clock, and would be wrong evidence."""
TIMESTAMP_RANGE_S = (0.0, 253_402_300_799.0)
"""Kafka message timestamps outside 1970-01-01 .. 9999-12-31 (a producer that sends microseconds
as milliseconds, say) are treated as absent."""
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def plausible_timestamp(seconds: float | None) -> float | None:
    """A Kafka message timestamp (epoch seconds) if it is a date :mod:`datetime` can hold, else None."""
    if seconds is None or not TIMESTAMP_RANGE_S[0] <= seconds <= TIMESTAMP_RANGE_S[1]:
        return None
    return seconds


def epoch_to_rfc3339(seconds: float) -> str:
    """Epoch seconds (a Kafka message timestamp) as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    """The current time as RFC 3339 UTC with milliseconds."""
    return epoch_to_rfc3339(time.time())


def parse_rfc3339(value: str) -> datetime | None:
    """A timezone-aware datetime for an RFC 3339 timestamp that also exists in UTC, else None."""
    if not _RFC3339.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        moment.astimezone(UTC)  # 0001-01-01T00:00+01:00 has no UTC time
    except (ValueError, OverflowError):
        return None
    return moment


def plausible_observed_at(value: str, now: float) -> datetime | None:
    """``observed_at`` as a datetime if it is RFC 3339 and a possible capture time: from
    :data:`OBSERVED_AT_EARLIEST` to ``now`` plus :data:`OBSERVED_AT_AHEAD`."""
    moment = parse_rfc3339(value)
    if moment is None:
        return None
    latest = datetime.fromtimestamp(now, UTC) + OBSERVED_AT_AHEAD
    return moment if OBSERVED_AT_EARLIEST <= moment <= latest else None
