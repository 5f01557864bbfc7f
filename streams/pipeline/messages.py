"""What the pipeline takes in and gives out: consumed messages and records to send."""

from __future__ import annotations

from dataclasses import dataclass

from streams.kafka.topics import TopicSpec
from streams.records import SourcePosition

REQUEST_FRAMING_BYTES = 1024
"""What a produce request adds to one record's key and value (batch and record headers), at most."""


@dataclass(frozen=True)
class Message:
    """One consumed message: its bytes and where it came from."""

    value: bytes
    source: SourcePosition
    timestamp: float | None = None
    """When the broker got the message (produce or append time), epoch seconds; None when the
    message had none or one :mod:`datetime` cannot hold (see :func:`streams.records.plausible_timestamp`)."""
    key: bytes | None = None


@dataclass(frozen=True)
class Output:
    """One record to send: its topic, key and JSON value."""

    topic: TopicSpec
    key: bytes
    value: bytes
    produced_at: float | None = None
    observed_at: float | None = None
    labels: tuple[str, ...] = ()
    """Referral labels (referrals only), counted once the broker has the record."""
    code: str | None = None
    """Error code (dead letters only)."""
    match: str | None = None
    """Match type (referrals of known content only)."""
    decision: str | None = None
    """approve or reject (labelled examples only)."""

    @property
    def size(self) -> int:
        """Bytes this record takes in a produce request, at most."""
        return len(self.key) + len(self.value) + REQUEST_FRAMING_BYTES
