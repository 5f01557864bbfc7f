"""Reviewers' decisions: as a reviewer's tool sends them (:class:`DecisionMessage`, the decisions
topic's ``schemas/decision.schema.json``) and as the pipeline reads them (:func:`parse_decision`,
which returns a :class:`Decision` with every field resolved, or a :class:`Rejection`; it never
raises). Given the decision keys, it also checks each decision's signature
(:mod:`streams.review.signing`) over the message's fields as sent."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Strict

from streams import safejson
from streams.records.base import Labels, Record
from streams.records.content import CONTROL, ErrorCode, Rejection, Stage, safe_id
from streams.records.names import DECISIONS, ROLES, DecisionName, Role
from streams.records.outputs import REFERRAL_NAMESPACE, ReviewBlock
from streams.records.times import parse_rfc3339
from streams.review import signing
from streams.safejson import NotJson

DECISION_LIMITS = {"review_id": 256, "decision_id": 256, "supersedes": 256, "reviewer": 256}
REASON_MAX_CHARS = 4096
"""Most characters of a decision's ``reason`` and ``override_reason``."""


class DecisionMessage(Record):
    """A decision as a reviewer's tool writes it; fields left None are left out."""

    review_id: str
    decision: DecisionName
    reviewer: str
    reason: str | None = None
    labels: Labels | None = None
    decided_at: str | None = None
    decision_id: str | None = None
    override_reason: str | None = None
    supersedes: str | None = None
    role: Role | None = None
    """The reviewer's role when the decision was made (``supervisor`` for a correction)."""
    signature: str | None = None
    """:func:`streams.review.signing.sign` of the other fields, when the tool holds the key."""

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Decision(Record):
    """A reviewer's verdict on a review record, as read from the decisions topic."""

    decision_id: str
    review_id: str
    decision: DecisionName
    reviewer: str
    reason: str | None
    labels: Annotated[tuple[str, ...], Strict(False)] | None
    """For an approval, the labels the reviewer confirms; None keeps the review's candidates."""
    decided_at: str
    supersedes: str | None = None
    """The decision_id of the decision in force that this one replaces (a supervisor's correction)."""
    override_reason: str | None = None
    """Why an approval confirms labels that are not among the review's candidates."""
    role: Role | None = None
    """The role the decision was sent with; vouched for by its signature when the worker holds
    the decision keys, as the tool claimed it otherwise."""

    @property
    def block(self) -> ReviewBlock:
        """The ``review`` block of the records a decision produces."""
        return ReviewBlock.model_validate(self.model_dump(exclude={"labels"}))


def _free_text(value: object) -> bool:
    """A reason: a string of at most :data:`REASON_MAX_CHARS` with no control characters but tab
    and line breaks."""
    return isinstance(value, str) and len(value) <= REASON_MAX_CHARS and not CONTROL.search(value)


def parse_decision(
    raw: bytes,
    *,
    labels: tuple[str, ...],
    default_decided_at: str | None,
    keys: Sequence[bytes] = (),
) -> Decision | Rejection:
    """Validate one message of the decisions topic. Never raises, whatever the bytes.

    ``default_decided_at`` stands in for a missing ``decided_at``: the message's own timestamp,
    so that a redelivered message parses to the same decision. A missing ``decision_id`` is a
    UUIDv5 of the review id and the message bytes: a message sent twice is one decision.

    With ``keys`` (the decision key and the previous ones), a decision counts only if its
    ``signature`` signs its fields as sent (:func:`streams.review.signing.verify`); any other
    JSON object is refused as ``unsigned_decision``, before its fields are read further. A
    signed decision that ``supersedes`` another must be signed with role ``supervisor``, or it is
    refused as ``invalid_decision``: its signature holds, so the decision is authentic, but it
    breaks a rule of what a reviewer may decide, like an approval of labels outside the
    candidates (``unsigned_decision`` says a decision is not authentic: forged or altered).
    """

    def reject(
        message: str, review_id: str | None = None, code: ErrorCode = ErrorCode.INVALID_DECISION
    ) -> Rejection:
        return Rejection(code, message, item_id=review_id, stage=Stage.REVIEW)

    data = safejson.parse_object(raw)
    if isinstance(data, NotJson):
        return reject(f"decision is {data.message}")
    review_id = safe_id(data.get("review_id"), DECISION_LIMITS["review_id"])
    if keys:
        unsigned = signing.verify(data, data.get("signature"), keys)
        if unsigned is not None:
            return reject(unsigned, review_id, ErrorCode.UNSIGNED_DECISION)
    if review_id is None:
        return reject(
            f"field 'review_id' must be a non-empty string of at most {DECISION_LIMITS['review_id']} "
            "characters without control characters"
        )
    decision = data.get("decision")
    if decision not in DECISIONS:
        return reject(f"field 'decision' must be one of {list(DECISIONS)}, got {decision!r}"[:300], review_id)
    reviewer = safe_id(data.get("reviewer"), DECISION_LIMITS["reviewer"])
    if reviewer is None:
        return reject("field 'reviewer' must be a non-empty string (who decided)", review_id)
    for name in ("reason", "override_reason"):
        if data.get(name) is not None and not _free_text(data[name]):
            return reject(
                f"field '{name}' must be a string of at most {REASON_MAX_CHARS} characters "
                "without control characters",
                review_id,
            )
    reason, override_reason = data.get("reason"), data.get("override_reason")
    chosen = data.get("labels")
    if chosen is not None:
        if not isinstance(chosen, list) or not chosen or any(label not in labels for label in chosen):
            return reject(f"field 'labels' must be a non-empty list of {list(labels)}", review_id)
        if decision == "reject":
            return reject("field 'labels' is only for approvals", review_id)
    if override_reason is not None and (decision == "reject" or not override_reason.strip()):
        return reject("field 'override_reason' is a non-blank reason, for approvals only", review_id)
    supersedes = data.get("supersedes")
    if supersedes is not None and safe_id(supersedes, DECISION_LIMITS["supersedes"]) is None:
        return reject("field 'supersedes' must be the decision_id of the decision it replaces", review_id)
    role = data.get("role")
    if role is not None and role not in ROLES:
        return reject(f"field 'role' must be one of {list(ROLES)} or null", review_id)
    if keys and supersedes is not None and role != "supervisor":
        return reject("a decision that supersedes another must be signed with role 'supervisor'", review_id)
    decided_at = data.get("decided_at", default_decided_at)
    if not isinstance(decided_at, str) or parse_rfc3339(decided_at) is None:
        return reject("field 'decided_at' must be an RFC 3339 timestamp", review_id)
    decision_id = data.get("decision_id")
    if decision_id is None:
        digest = hashlib.sha256(raw).hexdigest()
        decision_id = str(uuid.uuid5(REFERRAL_NAMESPACE, f"{review_id}\n{digest}"))
    elif safe_id(decision_id, DECISION_LIMITS["decision_id"]) is None:
        return reject("field 'decision_id' must be a non-empty string without control characters", review_id)
    return Decision(
        decision_id=decision_id,
        review_id=review_id,
        decision=decision,
        reviewer=reviewer,
        reason=reason,
        labels=tuple(dict.fromkeys(chosen)) if chosen else None,
        decided_at=decided_at,
        supersedes=supersedes,
        override_reason=override_reason,
        role=role,
    )
