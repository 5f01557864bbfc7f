"""Reviewers' decisions become referrals, verdicts and labelled examples (the ``decide`` agent)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from streams.kafka.follower import TopicFollower
from streams.kafka.topics import CLEARED, EXAMPLES, HASHBANK, REFERRALS
from streams.known_content.entry import remove_record
from streams.metrics import Metrics
from streams.pipeline.delivery import bounded, count_delivered, dead_letter, internal_error
from streams.pipeline.learning import bank_output, learned_entry
from streams.pipeline.messages import Message, Output
from streams.records import (
    Cleared,
    DecidedBy,
    Decision,
    ErrorCode,
    Example,
    Referral,
    Rejection,
    Review,
    Stage,
    encode,
    utc_now,
)
from streams.records.outputs import ExampleReview, custody_step, referral_id
from streams.review.log import DecisionLog
from streams.review.queue import ReviewQueue
from streams.review.rules import check_decision, in_force

log = logging.getLogger(__name__)

CLOSE_EVERY_S = 60.0
"""Decided reviews past the retention are looked for at most this often."""
FOLLOW_WAIT_S = 10.0
"""How long a batch waits at a time for the review and decisions topics to be read far enough
(it waits again, logging, for as long as it takes: the stall metric shows the wait)."""


class DecisionProcessor:
    """Turns a batch of decision messages into referrals or verdicts, examples and bank updates,
    by the rule of :func:`in_force`. Each message is read by the decision log
    (:meth:`DecisionLog.read`), so that what the agent applies and what the log counts as decided
    are one and the same, signatures included."""

    def __init__(
        self,
        reviews: ReviewQueue,
        decision_log: DecisionLog,
        *,
        reviews_follower: TopicFollower | None,
        log_follower: TopicFollower | None,
        metrics: Metrics,
        actor: str,
        learn: bool,
        max_message_bytes: int,
        retention_s: float = 7 * 24 * 3600,
    ) -> None:
        self.reviews = reviews
        self.log = decision_log
        self.reviews_follower = reviews_follower
        self.log_follower = log_follower
        self.metrics = metrics
        self.actor = actor
        self.learn = learn
        self.max_message_bytes = max_message_bytes
        self.retention_s = retention_s
        self._closed_at = 0.0

    async def process(self, messages: Sequence[Message]) -> list[Output]:
        """The records of every decision message, in order. Never raises."""
        received_at = utc_now()
        decisions: list[Decision | Rejection] = []
        for message in messages:
            try:
                decisions.append(self.log.read(message.value, message.timestamp))
            except Exception as exc:
                decisions.append(internal_error(self.metrics, Stage.REVIEW, exc))
        await self._read_far_enough(messages, decisions)
        first: dict[int, int] = {}
        for message in messages:
            first.setdefault(message.source.partition, message.source.offset)
        self._close_decided(first)
        outputs: list[Output] = []
        for message, decision in zip(messages, decisions, strict=True):
            try:
                records = self._records(message, decision, received_at)
            except Exception as exc:
                records = [dead_letter(internal_error(self.metrics, Stage.REVIEW, exc), message, received_at)]
            outputs.extend(bounded(o, message, received_at, self.max_message_bytes) for o in records)
        return outputs

    async def _read_far_enough(
        self, messages: Sequence[Message], decisions: Sequence[Decision | Rejection]
    ) -> None:
        """Wait until the review topic holds every review these decisions name that exists, and
        the decision log every decision before them: a valid approval is never refused as
        ``unknown_review`` because this worker has just started."""
        unknown = any(
            isinstance(d, Decision)
            and self.reviews.get(d.review_id) is None
            and d.review_id not in self.reviews.closed
            for d in decisions
        )
        if self.reviews_follower is not None and unknown:
            while not await self.reviews_follower.caught_up(FOLLOW_WAIT_S):
                log.info("decisions wait for the review topic to be read")
        if self.log_follower is not None:
            ends: dict[int, int] = {}
            for message in messages:
                ends[message.source.partition] = max(
                    ends.get(message.source.partition, 0), message.source.offset
                )
            for partition, offset in ends.items():
                while not await self.log_follower.reached(partition, offset, FOLLOW_WAIT_S):
                    log.info("decisions wait for the decisions topic to be read to offset %d", offset)

    def _records(self, message: Message, decision: Decision | Rejection, received_at: str) -> list[Output]:
        if isinstance(decision, Rejection):
            return [dead_letter(decision, message, received_at)]
        review = self.reviews.get(decision.review_id)
        if review is None:
            closed = self.reviews.closed.get(decision.review_id)
            if closed is None:
                return self._refuse(
                    ErrorCode.UNKNOWN_REVIEW,
                    f"no review record with review_id {decision.review_id!r} on the review topic",
                    decision,
                    message,
                    received_at,
                )
            if closed.decision_id == decision.decision_id:
                self.metrics.decision_replays.inc()
                return []
            return self._refuse(
                ErrorCode.ALREADY_DECIDED,
                f"review {decision.review_id} was decided by {closed.decision_id} ({closed.decision}) "
                "and is closed: past the retention of decided reviews",
                decision,
                message,
                received_at,
            )
        problem = check_decision(review, decision)
        if problem is not None:
            return self._refuse(ErrorCode.INVALID_DECISION, problem, decision, message, received_at)
        current = in_force(
            review, self.log.before(decision.review_id, message.source.partition, message.source.offset)
        )
        if current is not None and current.decision_id == decision.decision_id:
            self.metrics.decision_replays.inc()
            return []
        if decision.supersedes != (current.decision_id if current else None):
            if current is None:
                reason = f"supersedes {decision.supersedes!r}, but no decision on the review is in force"
                return self._refuse(ErrorCode.INVALID_DECISION, reason, decision, message, received_at)
            reason = (
                f"review {decision.review_id} is decided: {current.decision} by decision "
                f"{current.decision_id}; a change must name it in supersedes"
            )
            return self._refuse(ErrorCode.ALREADY_DECIDED, reason, decision, message, received_at)
        return self._decide(review, decision, current)

    def _close_decided(self, before: Mapping[int, int]) -> None:
        """Drop decided reviews past the retention, at most once a minute, counting the decisions
        before this batch (already applied); before deciding, so that a worker that has just
        started refuses late changes as the one before it did."""
        now = time.time()
        if now - self._closed_at >= CLOSE_EVERY_S:
            self._closed_at = now
            dropped = self.reviews.close(self.log, now=now, retention_s=self.retention_s, before=before)
            if dropped:
                log.info("closed %d decided reviews past the retention", dropped)

    def _refuse(
        self, code: ErrorCode, reason: str, decision: Decision, message: Message, received_at: str
    ) -> list[Output]:
        rejection = Rejection(code, reason, item_id=decision.review_id, stage=Stage.REVIEW)
        return [dead_letter(rejection, message, received_at)]

    def delivered(self, outputs: Sequence[Output]) -> None:
        count_delivered(self.metrics, outputs)

    def _decide(self, review: Review, decision: Decision, superseded: Decision | None) -> list[Output]:
        now = utc_now()
        key = review.item_id.encode("utf-8")
        block = decision.block
        labels = (decision.labels or review.labels) if decision.decision == "approve" else ()
        example = Example(
            id=decision.decision_id,
            text=review.text,
            labels=labels,
            lang=review.lang,
            category="review_approved" if decision.decision == "approve" else "review_rejected",
            review=ExampleReview(**block.model_dump(), item_id=review.item_id),
            model=review.model,
            scores=review.scores,
        )
        outputs = [
            Output(
                EXAMPLES, decision.decision_id.encode("utf-8"), example.to_json(), decision=decision.decision
            )
        ]
        if self.learn and superseded is not None and superseded.decision == "approve":
            # the superseded approval taught the bank; withdraw that entry
            old = referral_id(review.item_id, review.content_sha256, _basis(review, superseded))
            outputs.append(
                Output(HASHBANK, f"referral:{old}".encode(), encode(remove_record(f"referral:{old}")))
            )
        if decision.decision == "reject":
            cleared = Cleared(
                item_id=review.item_id,
                platform=review.platform,
                lang=review.lang,
                content_sha256=review.content_sha256,
                scores=review.scores,
                model=review.model,
                decided_by=DecidedBy.REVIEW,
                review=block,
                shadow=review.shadow,
                classified_at=now,
                observed_at=review.observed_at,
            )
            return [Output(CLEARED, key, cleared.to_json()), *outputs]
        reviewed = custody_step(
            "reviewed",
            decision.decided_at,
            decision.reviewer,
            decision="approve",
            decision_id=decision.decision_id,
            labels=list(labels),
            supersedes=decision.supersedes,
            override_reason=decision.override_reason,
            role=decision.role,
        )
        custody = (*review.evidence.chain_of_custody, reviewed, custody_step("referred", now, self.actor))
        referral = Referral.of(
            review.subject,
            basis=_basis(review, decision),
            labels=labels,
            decided_by=DecidedBy.REVIEW,
            scores=review.scores,
            thresholds=review.thresholds,
            model=review.model,
            review=block,
            shadow=review.shadow,
            classified_at=now,
            evidence=review.evidence.model_copy(update={"chain_of_custody": custody}),
        )
        outputs.insert(0, Output(REFERRALS, key, referral.to_json(), labels=referral.labels))
        entry = learned_entry(referral, None) if self.learn else None
        if entry is not None:
            outputs.append(bank_output(entry))
        return outputs


def _basis(review: Review, decision: Decision) -> str:
    """What a review's referral id follows from: the review and the decision."""
    return f"review\n{review.review_id}\n{decision.decision_id}"
