"""Input validation and the records propwatch writes.

Every record that leaves the pipeline is plain JSON with a ``schema_version``, described by a
JSON Schema file in ``streams/schemas/``. Parsing never raises: a content message becomes either
a :class:`ContentItem` or a :class:`Rejection` with a stable error code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib.resources import files
from typing import Any

SCHEMA_VERSION = 2
REFERRAL_NAMESPACE = uuid.UUID("8f7c1f4e-6d0a-4d65-9a52-2b1f0e7c9a11")
OPTIONAL_STRING_FIELDS = ("url", "platform", "lang", "author")
# C0 controls other than tab, newline and carriage return, DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class ErrorCode(StrEnum):
    """Why an item went to the dead-letter topic. Stable: consumers and alerts key on these."""

    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_ID = "missing_id"
    INVALID_ID = "invalid_id"
    MISSING_TEXT = "missing_text"
    INVALID_TEXT = "invalid_text"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    CONTROL_CHARACTERS = "control_characters"
    INVALID_OBSERVED_AT = "invalid_observed_at"
    INVALID_FIELD = "invalid_field"
    UNPAIRED_SURROGATE = "unpaired_surrogate"
    CLASSIFIER_ERROR = "classifier_error"
    INVALID_DECISION = "invalid_decision"
    UNKNOWN_REVIEW = "unknown_review"


class Stage(StrEnum):
    VALIDATE = "validate"
    CLASSIFY = "classify"
    REVIEW = "review"


@dataclass(frozen=True)
class ContentItem:
    """A valid content item. Unknown fields are kept in ``extra`` (not an error)."""

    id: str
    text: str
    url: str | None = None
    platform: str | None = None
    lang: str | None = None
    author: str | None = None
    observed_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the whole text in UTF-8, however much of it the model saw."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rejection:
    """An item that cannot be processed, and why."""

    code: ErrorCode
    message: str
    item_id: str | None = None
    stage: Stage = Stage.VALIDATE


def epoch_to_rfc3339(seconds: float) -> str:
    """Epoch seconds (a Kafka message timestamp) as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    """The current time as RFC 3339 UTC with milliseconds."""
    return epoch_to_rfc3339(time.time())


def parse_rfc3339(value: str) -> datetime | None:
    """A timezone-aware datetime for an RFC 3339 timestamp, else None."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        return None
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None


def parse_item(raw: bytes, *, max_text_bytes: int) -> ContentItem | Rejection:
    """Validate one content message. Never raises."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(
            ErrorCode.INVALID_UTF8, f"payload is not valid UTF-8: {exc.reason} at byte {exc.start}"
        )
    try:
        data = json.loads(decoded)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        return Rejection(ErrorCode.INVALID_JSON, f"payload is not JSON: {detail}{where}")
    if not isinstance(data, dict):
        return Rejection(ErrorCode.NOT_AN_OBJECT, f"payload is a JSON {_json_type(data)}, expected an object")
    item = _item_from_object(data, max_text_bytes=max_text_bytes)
    if isinstance(item, ContentItem) and not _encodable(data):
        return Rejection(
            ErrorCode.UNPAIRED_SURROGATE,
            "payload escapes an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is not text",
            item_id=item.id if _encodable(item.id) else None,
        )
    return item


def _encodable(value: object) -> bool:
    """Whether ``value`` survives :func:`encode`: JSON escapes can smuggle in lone surrogates."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _item_from_object(data: dict[str, Any], *, max_text_bytes: int) -> ContentItem | Rejection:
    item_id = data.get("id")
    if "id" not in data:
        return Rejection(ErrorCode.MISSING_ID, "field 'id' is required")
    if not isinstance(item_id, str) or not item_id.strip():
        return Rejection(
            ErrorCode.INVALID_ID, f"field 'id' must be a non-empty string, got {_json_type(item_id)}"
        )
    if _CONTROL.search(item_id):
        return Rejection(ErrorCode.INVALID_ID, "field 'id' contains control characters")

    def reject(code: ErrorCode, message: str) -> Rejection:
        return Rejection(code, message, item_id=item_id)

    if "text" not in data:
        return reject(ErrorCode.MISSING_TEXT, "field 'text' is required")
    text = data["text"]
    if not isinstance(text, str):
        return reject(ErrorCode.INVALID_TEXT, f"field 'text' must be a string, got {_json_type(text)}")
    if not text.strip():
        return reject(ErrorCode.EMPTY_TEXT, "field 'text' is empty or whitespace only")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_text_bytes:
        return reject(ErrorCode.TEXT_TOO_LONG, f"field 'text' is {size} bytes, the limit is {max_text_bytes}")
    bad = _CONTROL.search(text)
    if bad:
        return reject(
            ErrorCode.CONTROL_CHARACTERS,
            f"field 'text' contains control character U+{ord(bad.group()):04X} at index {bad.start()}",
        )
    for name in OPTIONAL_STRING_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            return reject(
                ErrorCode.INVALID_FIELD, f"field '{name}' must be a string, got {_json_type(value)}"
            )
    observed_at = data.get("observed_at")
    if observed_at is not None and (not isinstance(observed_at, str) or parse_rfc3339(observed_at) is None):
        return reject(
            ErrorCode.INVALID_OBSERVED_AT,
            f"field 'observed_at' must be an RFC 3339 timestamp, got {observed_at!r}"[:300],
        )
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return reject(
            ErrorCode.INVALID_FIELD, f"field 'metadata' must be an object, got {_json_type(metadata)}"
        )
    known = {"id", "text", "observed_at", "metadata", *OPTIONAL_STRING_FIELDS}
    return ContentItem(
        id=item_id,
        text=text,
        url=data.get("url"),
        platform=data.get("platform"),
        lang=data.get("lang"),
        author=data.get("author"),
        observed_at=observed_at,
        metadata=metadata or {},
        extra={k: v for k, v in data.items() if k not in known},
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class ModelRef:
    name: str
    revision: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "revision": self.revision}


class DecidedBy(StrEnum):
    """What reached a verdict: the live model, the hash bank of known content, or a reviewer."""

    MODEL = "model"
    HASHBANK = "hashbank"
    REVIEW = "review"


def referral_id(item_id: str, content_sha256: str, basis: str) -> str:
    """Deterministic: the same item and content, referred on the same basis (a model revision, a bank
    entry or a review), always gets the same id, so a redelivered referral repeats its id."""
    return str(uuid.uuid5(REFERRAL_NAMESPACE, f"{item_id}\n{content_sha256}\n{basis}"))


def model_basis(model: ModelRef) -> str:
    return f"{model.name}\n{model.revision}"


def author_hash(author: str | None, key: bytes | None) -> str | None:
    """HMAC-SHA256 of the author handle; the handle itself never leaves the pipeline."""
    if author is None or key is None:
        return None
    return "hmac-sha256:" + hmac.new(key, author.encode("utf-8"), hashlib.sha256).hexdigest()


SUBJECT_FIELDS = (
    "item_id",
    "url",
    "platform",
    "lang",
    "author_hash",
    "text",
    "content_sha256",
    "observed_at",
)
"""The fields that describe the content itself in referral and review records."""


def subject(item: ContentItem, author_key: bytes | None) -> dict[str, Any]:
    """The content's own fields as referral and review records carry them (author only as HMAC)."""
    return {
        "item_id": item.id,
        "url": item.url,
        "platform": item.platform,
        "lang": item.lang,
        "author_hash": author_hash(item.author, author_key),
        "text": item.text,
        "content_sha256": item.content_sha256,
        "observed_at": item.observed_at,
    }


def custody_step(step: str, at: str, actor: str, **detail: Any) -> dict[str, Any]:
    """One entry of an evidence block's chain of custody."""
    return {"step": step, "at": at, "actor": actor, "detail": detail or None}


def referral_record(
    content: dict[str, Any],
    *,
    labels: list[str],
    decided_by: DecidedBy,
    basis: str,
    scores: dict[str, float],
    thresholds: dict[str, float],
    model: dict[str, str] | None,
    classified_at: str,
    evidence: dict[str, Any],
    match: dict[str, Any] | None = None,
    review: dict[str, Any] | None = None,
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A referral of ``content`` (:func:`subject` fields); ``basis`` makes its id (:func:`referral_id`)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "referral_id": referral_id(content["item_id"], content["content_sha256"], basis),
        **{name: content[name] for name in SUBJECT_FIELDS},
        "labels": labels,
        "decided_by": str(decided_by),
        "scores": scores,
        "thresholds": thresholds,
        "model": model,
        "match": match,
        "review": review,
        "shadow": shadow,
        "classified_at": classified_at,
        "evidence": evidence,
    }


def review_record(
    content: dict[str, Any],
    *,
    labels: list[str],
    scores: dict[str, float],
    thresholds: dict[str, float],
    review_thresholds: dict[str, float],
    model: ModelRef,
    classified_at: str,
    evidence: dict[str, Any],
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An item whose scores fall between the review and referral thresholds, for a reviewer."""
    return {
        "schema_version": SCHEMA_VERSION,
        "review_id": referral_id(
            content["item_id"], content["content_sha256"], "review\n" + model_basis(model)
        ),
        **{name: content[name] for name in SUBJECT_FIELDS},
        "labels": labels,
        "scores": scores,
        "thresholds": thresholds,
        "review_thresholds": review_thresholds,
        "model": model.as_json(),
        "shadow": shadow,
        "classified_at": classified_at,
        "evidence": evidence,
    }


def cleared_record(
    content: dict[str, Any],
    *,
    scores: dict[str, float],
    model: dict[str, str],
    classified_at: str,
    decided_by: DecidedBy = DecidedBy.MODEL,
    review: dict[str, Any] | None = None,
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "item_id": content["item_id"],
        "platform": content["platform"],
        "lang": content["lang"],
        "content_sha256": content["content_sha256"],
        "scores": scores,
        "model": model,
        "decided_by": str(decided_by),
        "review": review,
        "shadow": shadow,
        "classified_at": classified_at,
        "observed_at": content["observed_at"],
    }


DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class Decision:
    """A reviewer's verdict on a review record (the ``decisions`` topic)."""

    decision_id: str
    review_id: str
    decision: str
    reviewer: str
    reason: str | None
    labels: tuple[str, ...] | None
    """For an approval, the labels the reviewer confirms; None keeps the review's candidates."""
    decided_at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "review_id": self.review_id,
            "decision_id": self.decision_id,
            "decision": self.decision,
            "reviewer": self.reviewer,
            "reason": self.reason,
            "decided_at": self.decided_at,
        }


def parse_decision(raw: bytes, *, labels: tuple[str, ...], received_at: str) -> Decision | Rejection:
    """Validate one message of the decisions topic. Never raises."""

    def reject(message: str, review_id: str | None = None) -> Rejection:
        return Rejection(ErrorCode.INVALID_DECISION, message, item_id=review_id, stage=Stage.REVIEW)

    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return reject(f"decision is not UTF-8 JSON: {exc}"[:300])
    if not isinstance(data, dict):
        return reject(f"decision is a JSON {_json_type(data)}, expected an object")
    review_id = data.get("review_id")
    if not isinstance(review_id, str) or not review_id.strip() or not _encodable(review_id):
        return reject("field 'review_id' must be a non-empty string")
    decision = data.get("decision")
    if decision not in DECISIONS:
        return reject(f"field 'decision' must be one of {list(DECISIONS)}, got {decision!r}"[:300], review_id)
    reviewer = data.get("reviewer")
    if not isinstance(reviewer, str) or not reviewer.strip() or _CONTROL.search(reviewer):
        return reject("field 'reviewer' must be a non-empty string (who decided)", review_id)
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        return reject(f"field 'reason' must be a string, got {_json_type(reason)}", review_id)
    chosen = data.get("labels")
    if chosen is not None:
        if not isinstance(chosen, list) or not chosen or any(label not in labels for label in chosen):
            return reject(f"field 'labels' must be a non-empty list of {list(labels)}", review_id)
        if decision == "reject":
            return reject("field 'labels' is only for approvals", review_id)
    decided_at = data.get("decided_at", received_at)
    if not isinstance(decided_at, str) or parse_rfc3339(decided_at) is None:
        return reject("field 'decided_at' must be an RFC 3339 timestamp", review_id)
    if not all(_encodable(v) for v in (reviewer, reason)):
        return reject("decision escapes an unpaired UTF-16 surrogate", review_id)
    decision_id = data.get("decision_id")
    if decision_id is None:
        decision_id = str(
            uuid.uuid5(REFERRAL_NAMESPACE, f"{review_id}\n{reviewer}\n{decision}\n{decided_at}")
        )
    elif not isinstance(decision_id, str) or not decision_id.strip():
        return reject("field 'decision_id' must be a non-empty string", review_id)
    return Decision(
        decision_id=decision_id,
        review_id=review_id,
        decision=decision,
        reviewer=reviewer,
        reason=reason,
        labels=tuple(dict.fromkeys(chosen)) if chosen else None,
        decided_at=decided_at,
    )


def example_record(review: dict[str, Any], decision: Decision, labels: list[str]) -> dict[str, Any]:
    """A reviewer's decision as a labelled example, in the corpus format ``propwatch evaluate`` reads."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": decision.decision_id,
        "text": review["text"],
        "labels": labels,
        "lang": review["lang"],
        "category": "review_approved" if decision.decision == "approve" else "review_rejected",
        "split": "review",
        "review": {**decision.as_json(), "item_id": review["item_id"]},
        "model": review["model"],
        "scores": review["scores"],
    }


@dataclass(frozen=True)
class SourcePosition:
    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def dlq_record(
    rejection: Rejection, raw: bytes, source: SourcePosition, *, received_at: str
) -> dict[str, Any]:
    try:
        payload, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return {
        "schema_version": SCHEMA_VERSION,
        "item_id": rejection.item_id,
        "error": {"code": str(rejection.code), "message": rejection.message},
        "stage": str(rejection.stage),
        "payload": payload,
        "payload_encoding": encoding,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        "received_at": received_at,
    }


def encode(record: dict[str, Any]) -> bytes:
    """The wire form of an output record: compact UTF-8 JSON."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """One of the shipped JSON Schemas: ``content``, ``referral``, ``cleared`` or ``dlq``."""
    schema: dict[str, Any] = json.loads(files("streams").joinpath(f"schemas/{name}.schema.json").read_text())
    return schema
