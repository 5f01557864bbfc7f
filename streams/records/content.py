"""Content messages: validation that returns a value, never raises (a :class:`ContentItem` or a
:class:`Rejection` with a stable :class:`ErrorCode`), and the limits that bound every field that
reaches an output, so that every record fits the producer's request size by design."""

from __future__ import annotations

import hashlib
import re
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import Field

from streams import safejson
from streams.records.base import Record, RecordError
from streams.records.times import parse_rfc3339, plausible_observed_at
from streams.safejson import NotJson, json_type

OPTIONAL_STRING_FIELDS = ("url", "platform", "lang", "author")
FIELD_LIMITS = {"id": 512, "url": 4096, "platform": 64, "lang": 35, "author": 512}
"""Most characters of each content field; a longer one is a dead letter (``invalid_id``,
``invalid_field``). With :data:`OUTPUT_OVERHEAD_BYTES` they bound every record but for its text."""
OUTPUT_OVERHEAD_BYTES = 65_536
"""What an output record may need besides its text, at most: the bounded fields above (4 bytes a
character in UTF-8), evidence, scores, a decision. ``tests/unit/test_records.py`` builds the
largest record these limits allow and checks it."""
MESSAGE_MAX_CHARS = 1000
"""Most characters of a dead letter's error message."""
LANG_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
"""``lang``: a language tag (BCP 47 form, e.g. ``en``, ``nl-BE``, ``ar-Latn``)."""
# C0 controls other than tab, newline and carriage return, DEL, and C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same and tab, newline and carriage return: not in ids, names, languages or URLs.
CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")


class ErrorCode(StrEnum):
    """Why a message went to the dead-letter topic. Stable: consumers and alerts key on these."""

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
    INTERNAL_ERROR = "internal_error"
    OUTPUT_TOO_LARGE = "output_too_large"
    INVALID_DECISION = "invalid_decision"
    UNKNOWN_REVIEW = "unknown_review"
    ALREADY_DECIDED = "already_decided"
    UNSIGNED_DECISION = "unsigned_decision"
    INVALID_REVIEW_RECORD = "invalid_review_record"
    INVALID_HASHBANK_RECORD = "invalid_hashbank_record"


class Stage(StrEnum):
    """Where a message failed: validating it, matching it against the hash bank, classifying it,
    routing it (deciding and building its record), applying a decision, or reading a followed topic."""

    VALIDATE = "validate"
    MATCH = "match"
    CLASSIFY = "classify"
    ROUTE = "route"
    REVIEW = "review"
    FOLLOW = "follow"


class ContentItem(Record):
    """A valid content item (``schemas/content.schema.json``), as :func:`parse_item` reads it.
    Unknown fields are kept in ``extra`` (not an error)."""

    id: str
    text: str
    url: str | None = None
    platform: str | None = None
    lang: str | None = None
    author: str | None = None
    observed_at: str | None = None
    published_at: str | None = None
    """When the source says the content was published (RFC 3339), when it says; carried, not used."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the whole text in UTF-8, however much of it the model saw."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def as_json(self) -> dict[str, Any]:
        """The content message: its fields, then the unknown ones as they came."""
        fields = self.model_dump(mode="json", exclude={"metadata", "extra"}, exclude_none=True)
        return {**fields, **({"metadata": self.metadata} if self.metadata else {}), **self.extra}

    @classmethod
    def from_json(
        cls, raw: bytes, *, max_text_bytes: int = sys.maxsize, now: float | None = None
    ) -> ContentItem:
        """The item in ``raw`` (:func:`parse_item`); :class:`RecordError` with the rejection's
        message if it is not one."""
        result = parse_item(raw, max_text_bytes=max_text_bytes, now=now)
        if isinstance(result, Rejection):
            raise RecordError(f"{result.code}: {result.message}")
        return result


def safe_id(value: object, max_chars: int = FIELD_LIMITS["id"]) -> str | None:
    """``value`` if it can key and name a record (a non-blank string of at most ``max_chars``
    characters, with no control characters or lone surrogates), else None."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
        return None
    if CONTROL_OR_BREAK.search(value) or SURROGATE.search(value):
        return None
    return value


@dataclass(frozen=True)
class Rejection:
    """A message that cannot be processed, and why. Whatever it is given, ``item_id`` ends up
    usable as a key or None, and ``message`` bounded and printable: a dead letter always encodes."""

    code: ErrorCode
    message: str
    item_id: str | None = None
    stage: Stage = Stage.VALIDATE

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_id", safe_id(self.item_id))
        message = safejson.for_terminal(str(self.message))
        if len(message) > MESSAGE_MAX_CHARS:
            message = message[: MESSAGE_MAX_CHARS - 3] + "..."
        object.__setattr__(self, "message", message)


def parse_item(raw: bytes, *, max_text_bytes: int, now: float | None = None) -> ContentItem | Rejection:
    """Validate one content message. Never raises, whatever the bytes; ``now`` (epoch seconds,
    default the current time) bounds ``observed_at``."""
    data = safejson.parse(raw)
    if isinstance(data, NotJson):
        code = ErrorCode.INVALID_UTF8 if data.kind == "utf8" else ErrorCode.INVALID_JSON
        return Rejection(code, f"payload is {data.message}")
    if not isinstance(data, dict):
        return Rejection(ErrorCode.NOT_AN_OBJECT, f"payload is a JSON {json_type(data)}, expected an object")
    item = _item_from_object(data, max_text_bytes=max_text_bytes, now=time.time() if now is None else now)
    if isinstance(item, ContentItem) and safejson.lone_surrogate(data):
        return Rejection(
            ErrorCode.UNPAIRED_SURROGATE,
            "payload escapes an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is not text",
            item_id=item.id,
        )
    return item


def _item_from_object(data: dict[str, Any], *, max_text_bytes: int, now: float) -> ContentItem | Rejection:
    item_id = data.get("id")
    if "id" not in data:
        return Rejection(ErrorCode.MISSING_ID, "field 'id' is required")
    if not isinstance(item_id, str) or not item_id.strip():
        return Rejection(
            ErrorCode.INVALID_ID, f"field 'id' must be a non-empty string, got {json_type(item_id)}"
        )
    if CONTROL_OR_BREAK.search(item_id):
        return Rejection(ErrorCode.INVALID_ID, "field 'id' contains control characters or line breaks")
    if len(item_id) > FIELD_LIMITS["id"]:
        return Rejection(ErrorCode.INVALID_ID, f"field 'id' is longer than {FIELD_LIMITS['id']} characters")

    def reject(code: ErrorCode, message: str) -> Rejection:
        return Rejection(code, message, item_id=item_id)

    if "text" not in data:
        return reject(ErrorCode.MISSING_TEXT, "field 'text' is required")
    text = data["text"]
    if not isinstance(text, str):
        return reject(ErrorCode.INVALID_TEXT, f"field 'text' must be a string, got {json_type(text)}")
    if not text.strip():
        return reject(ErrorCode.EMPTY_TEXT, "field 'text' is empty or whitespace only")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_text_bytes:
        return reject(ErrorCode.TEXT_TOO_LONG, f"field 'text' is {size} bytes, the limit is {max_text_bytes}")
    bad = CONTROL.search(text)
    if bad:
        return reject(
            ErrorCode.CONTROL_CHARACTERS,
            f"field 'text' contains control character U+{ord(bad.group()):04X} at index {bad.start()}",
        )
    for name in OPTIONAL_STRING_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return reject(ErrorCode.INVALID_FIELD, f"field '{name}' must be a string, got {json_type(value)}")
        if CONTROL_OR_BREAK.search(value):
            return reject(
                ErrorCode.INVALID_FIELD, f"field '{name}' contains control characters or line breaks"
            )
        if len(value) > FIELD_LIMITS[name]:
            return reject(
                ErrorCode.INVALID_FIELD, f"field '{name}' is longer than {FIELD_LIMITS[name]} characters"
            )
    lang = data.get("lang")
    if lang is not None and not LANG_TAG.fullmatch(lang):
        return reject(ErrorCode.INVALID_FIELD, "field 'lang' must be a language tag such as en or nl-BE")
    observed_at = data.get("observed_at")
    if observed_at is not None and (
        not isinstance(observed_at, str) or plausible_observed_at(observed_at, now) is None
    ):
        return reject(
            ErrorCode.INVALID_OBSERVED_AT,
            f"field 'observed_at' must be an RFC 3339 timestamp from 1990 to now, got {observed_at!r}"[:300],
        )
    published_at = data.get("published_at")
    if published_at is not None and (
        not isinstance(published_at, str) or parse_rfc3339(published_at) is None
    ):
        return reject(
            ErrorCode.INVALID_FIELD,
            f"field 'published_at' must be an RFC 3339 timestamp, got {published_at!r}"[:300],
        )
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return reject(
            ErrorCode.INVALID_FIELD, f"field 'metadata' must be an object, got {json_type(metadata)}"
        )
    known = {"id", "text", "observed_at", "published_at", "metadata", *OPTIONAL_STRING_FIELDS}
    return ContentItem(
        id=item_id,
        text=text,
        url=data.get("url"),
        platform=data.get("platform"),
        lang=lang,
        author=data.get("author"),
        observed_at=observed_at,
        published_at=published_at,
        metadata=metadata or {},
        extra={k: v for k, v in data.items() if k not in known},
    )
