"""Every topic propwatch reads or writes, declared once (:mod:`streams.kafka.admin` creates them)."""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic, by its name after the prefix."""

    name: str
    description: str
    retention_ms: int
    """-1 keeps records for ever (the hash bank and the labelled examples)."""
    schema: str
    partitions: int | None = None
    """Fixed partition count; None: ``PROPWATCH_PARTITIONS``."""
    compact: bool = False
    """Compacted (``cleanup.policy=compact``): the broker may drop a record once a later one has
    the same key, so every record must have a key and the latest record of a key says it all."""

    def configs(self) -> dict[str, str]:
        """The topic configuration it is created with."""
        configs = {"retention.ms": str(self.retention_ms)}
        if self.compact:
            configs["cleanup.policy"] = "compact"
        return configs


CONTENT = TopicSpec("content", "content items to classify (input)", 7 * DAY_MS, "content")
REFERRALS = TopicSpec("referrals", "items the model flagged, for referral services", 90 * DAY_MS, "referral")
CLEARED = TopicSpec("cleared", "a verdict for every valid item not flagged", 30 * DAY_MS, "cleared")
DLQ = TopicSpec("dlq", "items that could not be processed, with the reason", 30 * DAY_MS, "dlq")
REVIEW = TopicSpec("review", "items scored between the review and referral thresholds", 30 * DAY_MS, "review")
DECISIONS = TopicSpec(
    "decisions", "reviewers' verdicts on review items (input)", 365 * DAY_MS, "decision", partitions=1
)
"""One partition: its log orders every decision, which is what decides which one is in force
(:func:`streams.review.rules.in_force`)."""
HASHBANK = TopicSpec(
    "hashbank", "known-content hash bank updates, read whole by every worker", -1, "hashbank", compact=True
)
"""Keyed by entry id, and an entry's latest record (an add, or a remove) is all a worker needs:
Apache Kafka compacts it, so a worker's start-up read no longer grows with every update ever
made. The embedded broker (Tansu 0.6) accepts the setting but does not compact (measured): there
a worker reads every record and applies them in order, to the same bank. A remove is a record
(``"op": "remove"``), not a tombstone: workers skip and dead-letter a tombstone, as any value that
is not a bank record."""
EXAMPLES = TopicSpec("examples", "reviewers' decisions as labelled examples", -1, "example")
TOPICS: tuple[TopicSpec, ...] = (CONTENT, REFERRALS, CLEARED, REVIEW, DLQ, DECISIONS, HASHBANK, EXAMPLES)
OUTPUTS: tuple[TopicSpec, ...] = (REFERRALS, CLEARED, REVIEW, DLQ)
"""Where every item that enters leaves its record (one per item, or more after a review)."""
