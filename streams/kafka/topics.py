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

    def configs(self) -> dict[str, str]:
        """The topic configuration it is created with."""
        return {"retention.ms": str(self.retention_ms)}


CONTENT = TopicSpec("content", "content items to classify (input)", 7 * DAY_MS, "content")
REFERRALS = TopicSpec("referrals", "items the model flagged, for referral services", 90 * DAY_MS, "referral")
CLEARED = TopicSpec("cleared", "a verdict for every valid item not flagged", 30 * DAY_MS, "cleared")
DLQ = TopicSpec("dlq", "items that could not be processed, with the reason", 30 * DAY_MS, "dlq")
REVIEW = TopicSpec("review", "items scored between the review and referral thresholds", 30 * DAY_MS, "review")
DECISIONS = TopicSpec(
    "decisions", "reviewers' verdicts on review items (input)", 365 * DAY_MS, "decision", partitions=1
)
"""One partition: its log orders every decision, which is what decides which one is in force
(:func:`streams.review.in_force`)."""
HASHBANK = TopicSpec(
    "hashbank", "known-content hash bank updates, read whole by every worker", -1, "hashbank"
)
EXAMPLES = TopicSpec("examples", "reviewers' decisions as labelled examples", -1, "example")
TOPICS: tuple[TopicSpec, ...] = (CONTENT, REFERRALS, CLEARED, REVIEW, DLQ, DECISIONS, HASHBANK, EXAMPLES)
OUTPUTS: tuple[TopicSpec, ...] = (REFERRALS, CLEARED, REVIEW, DLQ)
"""Where every item that enters leaves its record (one per item, or more after a review)."""
