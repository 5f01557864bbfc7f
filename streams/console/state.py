"""The console's view of the review and decisions topics, as their followers feed it.

It is the worker's view, reused: a :class:`~streams.review.queue.ReviewQueue` of valid review
records, a :class:`~streams.review.log.DecisionLog` of valid decisions in the topic's order, and
:func:`~streams.review.rules.in_force` for which decision applies. So **a review is pending** when
it is a valid review record with no decision in force, exactly when a worker would apply the first
valid decision on it. Besides, the console keeps every decision it read for the audit (with the
decider's role and whether its signature holds), the decisions it sent and has not read back yet
(their reviews leave the queue at once), and an index of decided reviews' texts for "earlier
decisions on near-duplicates".

With the decision key set (``PROPWATCH_DECISION_KEY``), a decision whose signature does not hold
counts for nothing here either, as for the worker, which dead-letters it (``unsigned_decision``):
someone who can write the decisions topic but holds no key cannot empty the queue. The audit
still lists it, as ``unsigned``.

Hostile records are skipped and counted by the followers; none raises here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.kafka.follower import Followed
from streams.known_content.entry import BankError, Entry
from streams.known_content.index import HashBank, Match
from streams.known_content.signature import signature
from streams.records import Decision, Review, parse_decision, parse_rfc3339
from streams.review.log import DecisionLog, Logged, default_decided_at
from streams.review.queue import ReviewQueue
from streams.review.rules import in_force_in_turn

from .priority import priority, urgency

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Read:
    """A valid decision as the console read it from the decisions topic."""

    logged: Logged
    signed: bool | None
    """Whether the worker would apply it with the decision keys (its signature holds, and a
    supersede is signed by a supervisor); None when no key is set."""

    @property
    def decision(self) -> Decision:
        return self.logged.decision

    @property
    def role(self) -> str | None:
        """The decider's role as the decision states it."""
        return self.logged.decision.role


@dataclass(frozen=True)
class Pending:
    """A row of the queue."""

    review: Review
    age_s: float
    priority: float
    label: str
    """The most urgent candidate label (:func:`~streams.console.priority.urgency`)."""


@dataclass(frozen=True)
class Succession:
    """The decisions in force in turn on one review, as of the ``count`` decisions logged on it."""

    review: Review
    count: int
    decisions: tuple[Decision, ...]
    ids: frozenset[str]


@dataclass(frozen=True)
class Earlier:
    """A decided review whose text is a near-duplicate of (or the same as) another's."""

    match: Match
    review: Review
    decision: Decision


class ConsoleState:
    """Everything the console knows, read from the topics, plus what it sent."""

    def __init__(
        self,
        labels: tuple[str, ...],
        *,
        keys: Sequence[bytes] = (),
        similarity: float = 0.75,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.labels = labels
        self.clock = clock
        self.queue = ReviewQueue(labels)
        self.log = DecisionLog(labels, keys)
        self.read: list[Read] = []
        """Every valid decision read (signed or not), in the topic's order."""
        self.sent: dict[str, str] = {}
        """Decision ids this console sent and has not read back yet, by review id."""
        self._near = HashBank(similarity)
        self._indexed: set[str] = set()
        self._successions: dict[str, Succession] = {}

    # --- reading the topics (the followers' ``apply``) --------------------------------------

    def apply_review(self, record: Followed) -> str | None:
        """Take a review topic message; why it is not a valid review record, or None."""
        return self.queue.apply(record)

    def apply_decision(self, record: Followed) -> str | None:
        """Take a decisions topic message; why it does not count, or None. Every decision is kept
        for the audit as sent; with the decision keys, only those the worker would apply (the
        log's own reading, :meth:`DecisionLog.read`) count."""
        raw = record.value if record.value is not None else b""
        decision = parse_decision(
            raw, labels=self.labels, default_decided_at=default_decided_at(record.timestamp)
        )
        if not isinstance(decision, Decision):
            return f"{decision.code}: {decision.message}"
        checked = self.log.read(raw, record.timestamp) if self.log.keys else decision
        logged = Logged(record.source.partition, record.source.offset, record.timestamp, decision)
        self.read.append(Read(logged, None if not self.log.keys else isinstance(checked, Decision)))
        if self.sent.get(decision.review_id) == decision.decision_id:
            del self.sent[decision.review_id]
        if not isinstance(checked, Decision):
            return f"{checked.code}: {checked.message}"
        self.log.add(logged)
        return None

    # --- what the pages show ----------------------------------------------------------------

    def review(self, review_id: str) -> Review | None:
        return self.queue.get(review_id)

    def current(self, review: Review) -> Decision | None:
        """The decision in force on ``review``."""
        decisions = self.succession(review).decisions
        return decisions[-1] if decisions else None

    def succession(self, review: Review) -> Succession:
        """The decisions that were in force on ``review`` in turn
        (:func:`~streams.review.rules.in_force_in_turn`), worked out once per decision logged on
        it: the queue, the item page and the audit ask for it for every row, and anyone who can
        write the decisions topic chooses how many decisions a review has."""
        logged = self.log.all(review.review_id)
        known = self._successions.get(review.review_id)
        if known is None or known.review is not review or known.count != len(logged):
            decisions = tuple(in_force_in_turn(review, [entry.decision for entry in logged]))
            known = Succession(review, len(logged), decisions, frozenset(d.decision_id for d in decisions))
            self._successions[review.review_id] = known
        return known

    def is_pending(self, review: Review) -> bool:
        """No decision in force, and none sent from here that is still on its way."""
        return review.review_id not in self.sent and self.current(review) is None

    def age_s(self, review: Review) -> float:
        """Seconds since the review was queued (its ``classified_at``); 0 for a time ahead."""
        queued = parse_rfc3339(review.classified_at)
        return max(0.0, self.clock() - queued.timestamp()) if queued else 0.0

    def pending(self) -> list[Pending]:
        """The pending reviews, by priority (:mod:`streams.console.priority`), then age, then id."""
        rows = []
        for review in self.queue.records.values():
            if self.is_pending(review):
                age = self.age_s(review)
                rows.append(Pending(review, age, priority(review, age), urgency(review)[1]))
        rows.sort(key=lambda row: (-row.priority, -row.age_s, row.review.review_id))
        return rows

    def status(self, read: Read) -> str:
        """What became of a decision: ``in force``, ``superseded`` (it was in force), ``not
        applied`` (the rules refused it), ``unsigned`` or ``unknown review``."""
        if read.signed is False:
            return "unsigned"
        review = self.queue.get(read.decision.review_id)
        if review is None:
            return "unknown review"
        succession = self.succession(review)
        if succession.decisions and succession.decisions[-1].decision_id == read.decision.decision_id:
            return "in force"
        return "superseded" if read.decision.decision_id in succession.ids else "not applied"

    def earlier_decisions(self, review: Review, limit: int = 5) -> list[Earlier]:
        """Decided reviews of other items whose text is the same as or a near duplicate of
        ``review``'s (the hash bank's MinHash match, ``PROPWATCH_HASHBANK_SIMILARITY``), best first."""
        self.index_decided()
        found = []
        for match in self._near.matches(signature(review.text), ignore_item=review.item_id, limit=limit):
            other = self.queue.get(match.entry_id)
            current = self.current(other) if other is not None else None
            if other is not None and current is not None:
                found.append(Earlier(match, other, current))
        return found

    def index_decided(self, limit: int | None = None) -> int:
        """Add the decided reviews not yet in the near-duplicate index (at most ``limit``); how many."""
        added = 0
        for review_id in list(self.log.by_review):
            if limit is not None and added >= limit:
                break
            review = self.queue.get(review_id)
            if review_id in self._indexed or review is None or self.current(review) is None:
                continue
            self._indexed.add(review_id)
            added += 1
            try:
                entry = Entry.from_signature(
                    signature(review.text),
                    entry_id=review_id,
                    labels=review.labels,
                    source={"type": "import", "item_id": review.item_id},
                    added_at=review.classified_at,
                )
            except BankError:  # a text without letters or digits: nothing is near it
                continue
            self._near.add(entry, always=True)
        return added
