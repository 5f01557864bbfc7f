"""A decide form becomes a (signed) decision on the decisions topic.

The form's fields: ``decision`` (``approve`` or ``reject``); for an approval, ``labels`` (one or
more taxonomy labels; any outside the review's candidates needs ``override_reason``, which the
referral records); for a rejection, ``reason`` (required); ``note`` (optional, either way); and,
for a supervisor's correction, ``supersedes`` (the decision in force, as the page showed it).

What the console writes (``schemas/decision.schema.json``):

- ``decision_id``: a fresh UUIDv4 per decision. A form sent twice is refused the second time (the
  review has left the queue), and the producer's own retries resend the same bytes, which the
  worker takes as a replay.
- ``decided_at``: the console's clock when the form arrived; ``reviewer`` and ``role``: the
  logged-in user's name and role (``supervisor`` on a correction).
- ``reason``: a rejection's reason; the note follows it after a blank line as ``Note: …`` (an
  approval's note is its whole ``reason``). The schema has no other free-text field.
- ``signature``: with ``PROPWATCH_DECISION_KEY`` set, :func:`streams.review.signing.sign` of the
  rest.

Before sending, the message is read back as a worker reads it (:func:`parse_decision`) and checked
with the worker's rule (:func:`check_decision`), so the console writes only decisions a worker
applies. It is keyed by the review's ``item_id``, as the schema says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from streams.kafka.producer import Producer
from streams.kafka.topics import DECISIONS
from streams.records import Decision, DecisionMessage, Review, parse_decision
from streams.review.rules import check_decision
from streams.review.signing import sign
from streams.settings import Settings

from .users import User

log = logging.getLogger(__name__)

NOTE_PREFIX = "Note: "
SEND_TIMEOUT_S = 30.0
"""How long a reviewer waits for the brokers to acknowledge a decision before being told it may
not have been written (it stays pending; if it was written after all, it leaves the queue when
read back)."""


class FormError(ValueError):
    """Why a form does not make a valid decision, in words for the reviewer."""


@dataclass(frozen=True)
class DecideForm:
    decision: str
    labels: tuple[str, ...]
    reason: str
    override_reason: str
    note: str
    supersedes: str

    @classmethod
    def read(cls, form: Mapping[str, str], labels: list[str]) -> DecideForm:
        """The fields of a posted form (``labels``: every ``labels`` field); line breaks as ``\\n``."""

        def text(name: str) -> str:
            value = form.get(name, "")
            return value.replace("\r\n", "\n").replace("\r", "\n").strip() if isinstance(value, str) else ""

        return cls(
            decision=text("decision"),
            labels=tuple(dict.fromkeys(label for label in labels if isinstance(label, str))),
            reason=text("reason"),
            override_reason=text("override_reason"),
            note=text("note"),
            supersedes=text("supersedes"),
        )


def build_decision(
    form: DecideForm,
    review: Review,
    user: User,
    *,
    labels: tuple[str, ...],
    decision_id: str,
    decided_at: str,
    supersedes: Decision | None,
    key: bytes | None,
) -> DecisionMessage:
    """The message for ``form`` on ``review`` by ``user``, replacing ``supersedes`` (the decision in
    force, for a supervisor's correction), signed with ``key`` when given. Raises :class:`FormError`."""
    if form.decision not in ("approve", "reject"):
        raise FormError("Choose approve or reject.")
    if form.decision == "approve":
        unknown = [label for label in form.labels if label not in labels]
        if not form.labels or unknown:
            raise FormError(f"Choose one or more labels among {', '.join(labels)}.")
        outside = [label for label in form.labels if label not in review.labels]
        if outside and not form.override_reason:
            raise FormError(
                f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not among the candidate "
                "labels: give an override reason."
            )
        reason = f"{NOTE_PREFIX}{form.note}" if form.note else None
    else:
        if not form.reason:
            raise FormError("A rejection needs a reason.")
        reason = f"{form.reason}\n\n{NOTE_PREFIX}{form.note}" if form.note else form.reason
    fields = DecisionMessage(
        review_id=review.review_id,
        decision=form.decision,  # checked above
        reviewer=user.name,
        reason=reason,
        labels=form.labels if form.decision == "approve" else None,
        decided_at=decided_at,
        decision_id=decision_id,
        override_reason=(form.override_reason or None) if form.decision == "approve" else None,
        supersedes=supersedes.decision_id if supersedes else None,
        role=user.role,  # an auditor never gets here
    ).as_json()
    # As a worker will read it: the console writes only decisions that apply.
    read = parse_decision(DecisionMessage(**fields).to_json(), labels=labels, default_decided_at=decided_at)
    if not isinstance(read, Decision):
        raise FormError(read.message)
    problem = check_decision(review, read)
    if problem is not None:
        raise FormError(problem)
    if key is not None:
        fields["signature"] = sign(fields, key)
    return DecisionMessage(**fields)


class DecisionSender(Protocol):
    """Writes a decision to the decisions topic and returns once the brokers acknowledged it;
    raises when they did not."""

    async def send(self, message: DecisionMessage, key: bytes) -> None: ...


class KafkaDecisionSender:
    """Sends decisions through the tools' :class:`~streams.kafka.producer.Producer` (which waits
    for every in-sync replica), in one thread beside the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(DECISIONS.name)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="propwatch-console-send")
        self._producer: Producer | None = None

    async def send(self, message: DecisionMessage, key: bytes) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._send, message.to_json(), key)
        await asyncio.wait_for(future, SEND_TIMEOUT_S)

    def _send(self, value: bytes, key: bytes) -> None:
        try:
            if self._producer is None:
                self._producer = Producer(self.settings)
            self._producer.send(self.topic, value, key=key)
            self._producer.flush()
        except Exception:
            self._reset()  # the next decision starts with a new connection
            raise

    def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._reset()
