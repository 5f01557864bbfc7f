"""The decision log: every valid decision on the decisions topic, in the topic's order, by review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.kafka.follower import Followed
from streams.records import Decision, Rejection, parse_decision
from streams.records.times import epoch_to_rfc3339


def default_decided_at(timestamp: float | None) -> str | None:
    """What a decision without ``decided_at`` was decided at: its message's timestamp."""
    return epoch_to_rfc3339(timestamp) if timestamp is not None else None


@dataclass(frozen=True)
class Logged:
    """A decision as read from the decisions topic, with its place in the log."""

    partition: int
    offset: int
    timestamp: float | None
    decision: Decision


class DecisionLog:
    """Every decision on the decisions topic, by review, in log order. Messages that are not
    decisions are left to the decide agent, which dead-letters them.

    :meth:`read` is how the decide agent reads a decision too, so that the log and the agent
    agree on what is a decision: with ``keys`` (the decision keys, :meth:`Settings.decision_keys
    <streams.settings.Settings.decision_keys>`), an unsigned or forged decision is never logged,
    so it can never be the decision in force that blocks or pre-empts a signed one."""

    def __init__(self, labels: tuple[str, ...], keys: Sequence[bytes] = ()) -> None:
        self.labels = labels
        self.keys = tuple(keys)
        self.by_review: dict[str, list[Logged]] = {}

    def read(self, raw: bytes | None, timestamp: float | None) -> Decision | Rejection:
        """The decision in one message of the decisions topic (:func:`parse_decision`). Never raises."""
        return parse_decision(
            raw if raw is not None else b"",
            labels=self.labels,
            default_decided_at=default_decided_at(timestamp),
            keys=self.keys,
        )

    def apply(self, record: Followed) -> str | None:
        decision = self.read(record.value, record.timestamp)
        if isinstance(decision, Decision):
            entry = Logged(record.source.partition, record.source.offset, record.timestamp, decision)
            self.by_review.setdefault(decision.review_id, []).append(entry)
        return None

    def all(self, review_id: str) -> list[Logged]:
        return self.by_review.get(review_id, [])

    def before(self, review_id: str, partition: int, offset: int) -> list[Decision]:
        """The decisions on ``review_id`` earlier in the log than ``partition``/``offset``."""
        return [
            entry.decision
            for entry in self.all(review_id)
            if entry.partition == partition and entry.offset < offset
        ]
