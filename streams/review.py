"""Human review: reviewers' decisions on review records become referrals, verdicts and examples.

Items the model scores between a review threshold and the referral threshold go to the review
topic (see :class:`streams.agents.BatchProcessor`). A reviewer's tool reads them and writes one
decision per item to the decisions topic: ``{"review_id", "decision": "approve" | "reject",
"reviewer", "reason", "labels"?}``. :class:`DecisionProcessor` turns each decision into

- on approval, a referral (``decided_by: review``) that also joins the hash bank;
- on rejection, a cleared verdict (``decided_by: review``);
- in both cases, a labelled example on the examples topic (``propwatch evaluate --decisions``).

Every worker reads the whole review topic into a :class:`ReviewQueue`, so any worker can decide.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streams.agents import Message, Output, bank_output, learned_entry
from streams.followers import TopicFollower
from streams.metrics import Metrics
from streams.records import (
    SUBJECT_FIELDS,
    DecidedBy,
    Decision,
    ErrorCode,
    Rejection,
    Stage,
    cleared_record,
    custody_step,
    dlq_record,
    encode,
    example_record,
    parse_decision,
    referral_record,
    utc_now,
)
from streams.topics import CLEARED, DLQ, EXAMPLES, REFERRALS

log = logging.getLogger(__name__)

REVIEW_WAIT_S = 10.0
"""How long a batch with decisions on reviews this worker has not read yet waits for the review
topic to be read to its end (once per batch)."""


class ReviewQueue:
    """Review records by ``review_id``, as read from the review topic."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def apply(self, key: bytes | None, record: dict[str, Any]) -> None:
        missing = [
            name for name in ("review_id", "labels", "evidence", *SUBJECT_FIELDS) if name not in record
        ]
        if missing:
            raise ValueError(f"not a review record: missing {missing}")
        self.records[record["review_id"]] = record


class DecisionProcessor:
    """Turns a batch of decision messages into referrals or verdicts, examples and bank entries."""

    def __init__(
        self,
        reviews: ReviewQueue,
        follower: TopicFollower | None,
        *,
        labels: tuple[str, ...],
        metrics: Metrics,
        actor: str,
        learn: bool,
    ) -> None:
        self.reviews = reviews
        self.follower = follower
        self.labels = labels
        self.metrics = metrics
        self.actor = actor
        self.learn = learn

    async def process(self, messages: Sequence[Message]) -> list[Output]:
        received_at = utc_now()
        decisions = [parse_decision(m.value, labels=self.labels, received_at=received_at) for m in messages]
        unknown = any(isinstance(d, Decision) and d.review_id not in self.reviews.records for d in decisions)
        if unknown and self.follower is not None:
            await self.follower.caught_up(REVIEW_WAIT_S)  # they may be on the topic, not read yet
        outputs: list[Output] = []
        for message, decision in zip(messages, decisions, strict=True):
            if isinstance(decision, Decision):
                review = self.reviews.records.get(decision.review_id)
                if review is not None:
                    outputs.extend(self._decide(review, decision))
                    continue
                decision = Rejection(
                    ErrorCode.UNKNOWN_REVIEW,
                    f"no review record with review_id {decision.review_id!r} on the review topic",
                    item_id=decision.review_id,
                    stage=Stage.REVIEW,
                )
            record = dlq_record(decision, message.value, message.source, received_at=received_at)
            key = (decision.item_id or message.source.key).encode("utf-8")
            outputs.append(Output(DLQ, key, encode(record), code=str(decision.code)))
        return outputs

    def delivered(self, outputs: Sequence[Output]) -> None:
        for output in outputs:
            if output.topic is EXAMPLES:
                self.metrics.decisions.labels(decision=output.decision).inc()
            elif output.topic is DLQ:
                self.metrics.dead_lettered.labels(code=output.code).inc()
            elif output.topic is REFERRALS:
                self.metrics.referrals.inc()
                for label in output.labels:
                    self.metrics.referred.labels(label=label).inc()
            elif output.topic is CLEARED:
                self.metrics.cleared.inc()

    def _decide(self, review: dict[str, Any], decision: Decision) -> list[Output]:
        now = utc_now()
        key = review["item_id"].encode("utf-8")
        block = decision.as_json()
        labels = list(decision.labels or review["labels"]) if decision.decision == "approve" else []
        example = Output(
            EXAMPLES,
            decision.decision_id.encode("utf-8"),
            encode(example_record(review, decision, labels)),
            decision=decision.decision,
        )
        content = {name: review[name] for name in SUBJECT_FIELDS}
        if decision.decision == "reject":
            record = cleared_record(
                content,
                scores=review["scores"],
                model=review["model"],
                classified_at=now,
                decided_by=DecidedBy.REVIEW,
                review=block,
                shadow=review["shadow"],
            )
            return [Output(CLEARED, key, encode(record)), example]
        evidence = dict(review["evidence"])
        evidence["chain_of_custody"] = [
            *evidence["chain_of_custody"],
            custody_step(
                "reviewed",
                decision.decided_at,
                decision.reviewer,
                decision="approve",
                decision_id=decision.decision_id,
                labels=labels,
            ),
            custody_step("referred", now, self.actor),
        ]
        referral = referral_record(
            content,
            labels=labels,
            decided_by=DecidedBy.REVIEW,
            basis=f"review\n{review['review_id']}",
            scores=review["scores"],
            thresholds=review["thresholds"],
            model=review["model"],
            classified_at=now,
            evidence=evidence,
            review=block,
            shadow=review["shadow"],
        )
        outputs = [Output(REFERRALS, key, encode(referral), labels=tuple(labels)), example]
        if self.learn:
            outputs.append(bank_output(learned_entry(referral, None)))
        return outputs
