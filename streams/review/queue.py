"""The review queue: valid review records by ``review_id``, as read from the review topic."""

from __future__ import annotations

from collections.abc import Mapping

from streams.kafka.follower import Followed
from streams.records import Decision, RecordError, Review
from streams.review.log import DecisionLog
from streams.review.rules import in_force


class ReviewQueue:
    """Valid review records by ``review_id``, as read from the review topic. A review whose
    decision is older than the retention is dropped, leaving only the decision in force."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.records: dict[str, Review] = {}
        self.closed: dict[str, Decision] = {}
        """Reviews dropped after their decision, with the decision in force when they were."""

    def apply(self, record: Followed) -> str | None:
        """Take one review topic message; why it is not a valid review record, or None."""
        try:
            review = Review.from_json(record.value if record.value is not None else b"null")
        except RecordError as exc:
            return f"not a review record of this pipeline: {exc}"
        problem = review.check(self.labels)
        if problem is not None:
            return f"not a review record of this pipeline: {problem}"
        if review.review_id not in self.closed:  # a redelivered item queues its review again
            self.records[review.review_id] = review
        return None

    def get(self, review_id: str) -> Review | None:
        return self.records.get(review_id)

    def close(self, log_: DecisionLog, *, now: float, retention_s: float, before: Mapping[int, int]) -> int:
        """Drop the reviews whose decision in force is older than ``retention_s``; how many. Only
        decisions already applied count: those before ``before`` (partition: offset) in the log."""
        dropped = 0
        for review_id, review in list(self.records.items()):
            logged = [e for e in log_.all(review_id) if e.offset < before.get(e.partition, 0)]
            current = in_force(review, [entry.decision for entry in logged])
            latest = max((entry.timestamp or now for entry in logged), default=now)
            if current is not None and latest < now - retention_s:
                del self.records[review_id]
                self.closed[review_id] = current
                dropped += 1
        return dropped
