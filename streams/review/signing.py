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
import re
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
_FORM = re.compile(rf"{VERSION}:(?P<key_id>[0-9a-f]{{16}}):[0-9a-f]{{64}}")
"""A signature: ASCII only (so that ``hmac.compare_digest`` can compare it), lower-case hex."""


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
    Never raises, whatever ``signature`` and ``fields`` hold (any value parsed from JSON)."""
    if signature is None or signature == "":
        return "the decision carries no signature"
    form = _FORM.fullmatch(signature) if isinstance(signature, str) else None
    if form is None:
        return f"the signature is not of the form {VERSION}:<16 hex key id>:<64 hex HMAC-SHA256>"
    key = next((key for key in keys if key_id(key) == form["key_id"]), None)
    if key is None:
        return f"the signature names key {form['key_id']}, which this worker does not hold"
    for name in ("decision_id", "decided_at"):
        if fields.get(name) is None:
            return f"a signed decision must carry {name!r}"
    if not hmac.compare_digest(sign(fields, key), signature):
        return "the signature does not match the decision's fields"
    return None
