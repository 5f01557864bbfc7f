"""Human review: reviewers' decisions on review records become referrals, verdicts and examples.

Items the model scores between a review threshold and the referral threshold go to the review
topic (see :class:`streams.agents.BatchProcessor`). A reviewer's tool reads them and writes
decisions to the decisions topic: ``{"review_id", "decision": "approve" | "reject",
"reviewer", "reason", "labels"?, "override_reason"?, "supersedes"?}``. :class:`DecisionProcessor`
turns each decision that applies into

- on approval, a referral (``decided_by: review``) that also joins the hash bank;
- on rejection, a cleared verdict (``decided_by: review``);
- in both cases, a labelled example on the examples topic (``propwatch evaluate --decisions``).

**Which decision applies** (:func:`in_force`). The decisions topic has one partition, so its log
orders every decision. The first valid decision on a review is in force; a later one applies
only when it names the decision in force in ``supersedes`` (a supervisor's correction, recorded
as such in its records); any other goes to the dead-letter topic as ``already_decided``. A
decision received again (the same ``decision_id``) writes nothing new. An approval confirms
labels among the review's candidates, unless it gives an ``override_reason``, which its referral
records. The rule is a function of the log, so every worker, before and after a restart, and a
redelivered decision, come to the same answer.

Every worker reads the review topic into a :class:`ReviewQueue` and the decisions topic into a
:class:`DecisionLog` (:mod:`streams.followers`), so any worker can decide; a review record that
this pipeline did not write (see :func:`streams.records.check_review`) is refused and
dead-lettered, never decided on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams import safejson
from streams.agents import (
    Message,
    Output,
    bank_output,
    bounded,
    count_delivered,
    dead_letter,
    internal_error,
    learned_entry,
)
from streams.followers import Followed, TopicFollower
from streams.hashbank import remove_record
from streams.metrics import Metrics
from streams.records import (
    SUBJECT_FIELDS,
    DecidedBy,
    Decision,
    ErrorCode,
    Rejection,
    Stage,
    check_review,
    cleared_record,
    custody_step,
    encode,
    epoch_to_rfc3339,
    example_record,
    parse_decision,
    referral_id,
    referral_record,
    utc_now,
)
from streams.topics import CLEARED, EXAMPLES, HASHBANK, REFERRALS

log = logging.getLogger(__name__)

CLOSE_EVERY_S = 60.0
"""Decided reviews past the retention are looked for at most this often."""
FOLLOW_WAIT_S = 10.0
"""How long a batch waits at a time for the review and decisions topics to be read far enough
(it waits again, logging, for as long as it takes: the stall metric shows the wait)."""


def default_decided_at(timestamp: float | None) -> str | None:
    """What a decision without ``decided_at`` was decided at: its message's timestamp."""
    return epoch_to_rfc3339(timestamp) if timestamp is not None else None


class ReviewQueue:
    """Valid review records by ``review_id``, as read from the review topic. A review whose
    decision is older than the retention is dropped, leaving only the decision in force."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.records: dict[str, dict[str, Any]] = {}
        self.closed: dict[str, Decision] = {}
        """Reviews dropped after their decision, with the decision in force when they were."""

    def apply(self, record: Followed) -> str | None:
        """Take one review topic message; why it is not a valid review record, or None."""
        data = safejson.parse_object(record.value if record.value is not None else b"null")
        if isinstance(data, safejson.NotJson):
            return f"record is {data.message}"
        problem = check_review(data, self.labels)
        if problem is not None:
            return f"not a review record of this pipeline: {problem}"
        if data["review_id"] not in self.closed:  # a redelivered item queues its review again
            self.records[data["review_id"]] = data
        return None

    def get(self, review_id: str) -> dict[str, Any] | None:
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


@dataclass(frozen=True)
class Logged:
    """A decision as read from the decisions topic, with its place in the log."""

    partition: int
    offset: int
    timestamp: float | None
    decision: Decision


class DecisionLog:
    """Every decision on the decisions topic, by review, in log order. Messages that are not
    decisions are left to the decide agent, which dead-letters them."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.by_review: dict[str, list[Logged]] = {}

    def apply(self, record: Followed) -> str | None:
        decision = parse_decision(
            record.value if record.value is not None else b"",
            labels=self.labels,
            default_decided_at=default_decided_at(record.timestamp),
        )
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


def check_decision(review: dict[str, Any], decision: Decision) -> str | None:
    """Why ``decision`` cannot apply to ``review`` whatever else was decided, or None."""
    if decision.decision == "approve" and decision.labels and not decision.override_reason:
        outside = [label for label in decision.labels if label not in review["labels"]]
        if outside:
            return (
                f"labels {outside} are not among the review's candidates {review['labels']}: "
                "an approval of other labels needs an override_reason"
            )
    return None


def in_force(review: dict[str, Any], decisions: Sequence[Decision]) -> Decision | None:
    """The decision in force after ``decisions`` (in log order): the first valid one, or the
    latest valid one that names the decision in force before it in ``supersedes``."""
    current: Decision | None = None
    for decision in decisions:
        if check_decision(review, decision) is not None:
            continue
        if decision.supersedes == (current.decision_id if current else None):
            current = decision
    return current


class DecisionProcessor:
    """Turns a batch of decision messages into referrals or verdicts, examples and bank updates,
    by the rule of :func:`in_force`."""

    def __init__(
        self,
        reviews: ReviewQueue,
        decision_log: DecisionLog,
        *,
        reviews_follower: TopicFollower | None,
        log_follower: TopicFollower | None,
        labels: tuple[str, ...],
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
        self.labels = labels
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
                decisions.append(
                    parse_decision(
                        message.value,
                        labels=self.labels,
                        default_decided_at=default_decided_at(message.timestamp),
                    )
                )
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

    def _decide(
        self, review: dict[str, Any], decision: Decision, superseded: Decision | None
    ) -> list[Output]:
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
        outputs = [example]
        if self.learn and superseded is not None and superseded.decision == "approve":
            # the superseded approval taught the bank; withdraw that entry
            old = referral_id(review["item_id"], review["content_sha256"], _basis(review, superseded))
            outputs.append(
                Output(HASHBANK, f"referral:{old}".encode(), encode(remove_record(f"referral:{old}")))
            )
        if decision.decision == "reject":
            record = cleared_record(
                content,
                scores=review["scores"],
                model=review["model"],
                classified_at=now,
                decided_by=DecidedBy.REVIEW,
                review=block,
                shadow=review.get("shadow"),
            )
            return [Output(CLEARED, key, encode(record)), *outputs]
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
                supersedes=decision.supersedes,
                override_reason=decision.override_reason,
            ),
            custody_step("referred", now, self.actor),
        ]
        referral = referral_record(
            content,
            labels=labels,
            decided_by=DecidedBy.REVIEW,
            basis=_basis(review, decision),
            scores=review["scores"],
            thresholds=review["thresholds"],
            model=review["model"],
            classified_at=now,
            evidence=evidence,
            review=block,
            shadow=review.get("shadow"),
        )
        outputs.insert(0, Output(REFERRALS, key, encode(referral), labels=tuple(labels)))
        entry = learned_entry(referral, None) if self.learn else None
        if entry is not None:
            outputs.append(bank_output(entry))
        return outputs


def _basis(review: dict[str, Any], decision: Decision) -> str:
    """What a review's referral id follows from: the review and the decision."""
    return f"review\n{review['review_id']}\n{decision.decision_id}"
