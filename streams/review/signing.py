"""Signed decisions: an HMAC-SHA256 with ``PROPWATCH_DECISION_KEY`` over a decision as sent.

The review console signs each decision it writes; a worker with the key set applies only the
decisions whose signature holds, and dead-letters the rest as ``unsigned_decision``. Whoever can
write the decisions topic but does not hold the key can no longer cause a referral.

The signature binds every field that changes what a decision does or whom it is recorded
against (:data:`SIGNED_FIELDS`): the reviewer and role, the review, the decision and its labels,
reasons, supersedes and time. It is computed over the decision's JSON fields as sent (a missing
field and ``null`` are the same), canonically encoded, so that any client in any language can
produce it: see ``docs/operators.md`` (Signed decisions).

A signature reads ``v1:<key id>:<hex HMAC>``. The key id (the first 16 hex digits of the key's
SHA-256 under a fixed prefix) lets a worker hold the current key and earlier ones while the
key is rotated, and says in a dead letter which key a refused signature named.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence

VERSION = "v1"
SIGNED_FIELDS = (
    "decision_id",
    "review_id",
    "decision",
    "reviewer",
    "role",
    "labels",
    "reason",
    "override_reason",
    "supersedes",
    "decided_at",
)
"""The fields a signature covers. A signed decision must carry ``decision_id`` and
``decided_at``, so that the signature binds them too (the worker's defaults for them depend on
the message)."""
_DOMAIN = b"propwatch-decision-v1\n"
_KEY_ID_DOMAIN = b"propwatch-decision-key\n"


def payload(fields: Mapping[str, object]) -> bytes:
    """The bytes a signature is computed over: a fixed prefix, then a JSON object of exactly
    :data:`SIGNED_FIELDS` (absent ones as null), keys sorted, no spaces, non-ASCII escaped."""
    body = {name: fields.get(name) for name in SIGNED_FIELDS}
    return _DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(key: bytes) -> str:
    """The public name of a key: 16 hex digits of a SHA-256 of it."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:16]


def sign(fields: Mapping[str, object], key: bytes) -> str:
    """The signature of a decision's fields (as sent) with ``key``."""
    mac = hmac.new(key, payload(fields), hashlib.sha256).hexdigest()
    return f"{VERSION}:{key_id(key)}:{mac}"


def verify(fields: Mapping[str, object], signature: object, keys: Sequence[bytes]) -> str | None:
    """Why ``signature`` does not sign ``fields`` with one of ``keys``, or None when it does.
    Never raises, whatever ``signature`` is."""
    if not isinstance(signature, str) or not signature:
        return "the decision carries no signature"
    parts = signature.split(":")
    if len(parts) != 3 or parts[0] != VERSION:
        return f"the signature is not of the form {VERSION}:<key id>:<hex HMAC-SHA256>"
    by_id = {key_id(key): key for key in keys}
    key = by_id.get(parts[1])
    if key is None:
        return f"the signature names key {parts[1][:16]!r}, which this worker does not hold"
    for name in ("decision_id", "decided_at"):
        if fields.get(name) is None:
            return f"a signed decision must carry {name!r}"
    if not hmac.compare_digest(sign(fields, key), signature):
        return "the signature does not match the decision's fields"
    return None
