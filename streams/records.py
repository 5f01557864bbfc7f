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
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib.resources import files
from typing import Any

SCHEMA_VERSION = 1
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


class Stage(StrEnum):
    VALIDATE = "validate"
    CLASSIFY = "classify"


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


def utc_now() -> str:
    """The current time as RFC 3339 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def referral_id(item: ContentItem, model: ModelRef) -> str:
    """Deterministic: the same item classified by the same model revision gets the same id."""
    return str(
        uuid.uuid5(REFERRAL_NAMESPACE, f"{item.id}\n{item.content_sha256}\n{model.name}\n{model.revision}")
    )


def author_hash(author: str | None, key: bytes | None) -> str | None:
    """HMAC-SHA256 of the author handle; the handle itself never leaves the pipeline."""
    if author is None or key is None:
        return None
    return "hmac-sha256:" + hmac.new(key, author.encode("utf-8"), hashlib.sha256).hexdigest()


def referral_record(
    item: ContentItem,
    *,
    labels: list[str],
    scores: dict[str, float],
    thresholds: dict[str, float],
    model: ModelRef,
    classified_at: str,
    author_key: bytes | None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "referral_id": referral_id(item, model),
        "item_id": item.id,
        "url": item.url,
        "platform": item.platform,
        "lang": item.lang,
        "author_hash": author_hash(item.author, author_key),
        "text": item.text,
        "content_sha256": item.content_sha256,
        "labels": labels,
        "scores": scores,
        "thresholds": thresholds,
        "model": model.as_json(),
        "classified_at": classified_at,
        "observed_at": item.observed_at,
    }


def cleared_record(
    item: ContentItem, *, scores: dict[str, float], model: ModelRef, classified_at: str
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "item_id": item.id,
        "content_sha256": item.content_sha256,
        "scores": scores,
        "model": model.as_json(),
        "classified_at": classified_at,
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
