"""Input validation and the records propwatch writes.

Every record that leaves the pipeline is plain JSON with a ``schema_version``, described by a
JSON Schema file in ``streams/records/schemas/``. Parsing never raises, whatever the bytes: a content
message becomes either a :class:`ContentItem` or a :class:`Rejection` with a stable error code
(untrusted JSON is read by :mod:`streams.safejson`). Every field that reaches an output is
bounded (:data:`FIELD_LIMITS`), so that every record fits the producer's request size by design.
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
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib.resources import files
from typing import Any

from streams import safejson
from streams.safejson import NotJson, json_type

SCHEMA_VERSION = 3
REFERRAL_NAMESPACE = uuid.UUID("8f7c1f4e-6d0a-4d65-9a52-2b1f0e7c9a11")
OPTIONAL_STRING_FIELDS = ("url", "platform", "lang", "author")
FIELD_LIMITS = {"id": 512, "url": 4096, "platform": 64, "lang": 35, "author": 512}
"""Most characters of each content field; a longer one is a dead letter (``invalid_id``,
``invalid_field``). With :data:`OUTPUT_OVERHEAD_BYTES` they bound every record but for its text."""
DECISION_LIMITS = {"review_id": 256, "decision_id": 256, "supersedes": 256, "reviewer": 256}
REASON_MAX_CHARS = 4096
"""Most characters of a decision's ``reason`` and ``override_reason``."""
OUTPUT_OVERHEAD_BYTES = 65_536
"""What an output record may need besides its text, at most: the bounded fields above (4 bytes a
character in UTF-8), evidence, scores, a decision. ``tests/unit/test_records.py`` builds the
largest record these limits allow and checks it."""
DLQ_PAYLOAD_MAX_BYTES = 65_536
"""A dead letter keeps at most this many bytes of the original message, with its length and SHA-256."""
MESSAGE_MAX_CHARS = 1000
"""Most characters of a dead letter's error message."""
LANG_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
"""``lang``: a language tag (BCP 47 form, e.g. ``en``, ``nl-BE``, ``ar-Latn``)."""
OBSERVED_AT_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
OBSERVED_AT_AHEAD = timedelta(days=1)
"""``observed_at`` must lie between :data:`OBSERVED_AT_EARLIEST` and now plus this (clock skew):
anything else is a broken capture clock, and would be wrong evidence."""
TIMESTAMP_RANGE_S = (0.0, 253_402_300_799.0)
"""Kafka message timestamps outside 1970-01-01 .. 9999-12-31 (a producer that sends microseconds
as milliseconds, say) are treated as absent."""
# C0 controls other than tab, newline and carriage return, DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same and tab, newline and carriage return: not in ids, names, languages or URLs.
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


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


def safe_id(value: object, max_chars: int = FIELD_LIMITS["id"]) -> str | None:
    """``value`` if it can key and name a record (a non-blank string of at most ``max_chars``
    characters, with no control characters or lone surrogates), else None."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
        return None
    if _CONTROL_OR_BREAK.search(value) or _SURROGATE.search(value):
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


def plausible_timestamp(seconds: float | None) -> float | None:
    """A Kafka message timestamp (epoch seconds) if it is a date :mod:`datetime` can hold, else None."""
    if seconds is None or not TIMESTAMP_RANGE_S[0] <= seconds <= TIMESTAMP_RANGE_S[1]:
        return None
    return seconds


def epoch_to_rfc3339(seconds: float) -> str:
    """Epoch seconds (a Kafka message timestamp) as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    """The current time as RFC 3339 UTC with milliseconds."""
    return epoch_to_rfc3339(time.time())


def parse_rfc3339(value: str) -> datetime | None:
    """A timezone-aware datetime for an RFC 3339 timestamp that also exists in UTC, else None."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        moment.astimezone(UTC)  # 0001-01-01T00:00+01:00 has no UTC time
    except (ValueError, OverflowError):
        return None
    return moment


def plausible_observed_at(value: str, now: float) -> datetime | None:
    """``observed_at`` as a datetime if it is RFC 3339 and a possible capture time: from
    :data:`OBSERVED_AT_EARLIEST` to ``now`` plus :data:`OBSERVED_AT_AHEAD`."""
    moment = parse_rfc3339(value)
    if moment is None:
        return None
    latest = datetime.fromtimestamp(now, UTC) + OBSERVED_AT_AHEAD
    return moment if OBSERVED_AT_EARLIEST <= moment <= latest else None


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
    if _CONTROL_OR_BREAK.search(item_id):
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
    bad = _CONTROL.search(text)
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
        if _CONTROL_OR_BREAK.search(value):
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
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return reject(
            ErrorCode.INVALID_FIELD, f"field 'metadata' must be an object, got {json_type(metadata)}"
        )
    known = {"id", "text", "observed_at", "metadata", *OPTIONAL_STRING_FIELDS}
    return ContentItem(
        id=item_id,
        text=text,
        url=data.get("url"),
        platform=data.get("platform"),
        lang=lang,
        author=data.get("author"),
        observed_at=observed_at,
        metadata=metadata or {},
        extra={k: v for k, v in data.items() if k not in known},
    )


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


REVIEW_SCHEMA_VERSIONS = (2, SCHEMA_VERSION)
"""Review records a worker still decides: version 2 ones may wait on the topic across an upgrade."""


def _finite_unit(value: object) -> bool:
    return type(value) in (int, float) and 0.0 <= value <= 1.0  # type: ignore[operator]


def check_review(record: dict[str, Any], labels: tuple[str, ...]) -> str | None:
    """Why ``record`` is not a review record this pipeline wrote, or None. Besides the types of
    every field a decision uses, the hashes must agree: ``content_sha256`` is the text's, and
    ``review_id`` follows from the item id, that hash and the model (:func:`review_record`).
    A record that fails is forged or corrupt, and no decision on it refers anything."""
    if record.get("schema_version") not in REVIEW_SCHEMA_VERSIONS:
        return f"schema_version must be one of {list(REVIEW_SCHEMA_VERSIONS)}"
    for name in ("review_id", "item_id"):
        if safe_id(record.get(name)) is None:
            return f"{name} must be an id"
    text = record.get("text")
    if not isinstance(text, str) or not text.strip() or _CONTROL.search(text):
        return "text must be a non-blank string without control characters"
    if record.get("content_sha256") != hashlib.sha256(text.encode("utf-8")).hexdigest():
        return "content_sha256 is not the SHA-256 of the text"
    model = record.get("model")
    if not (isinstance(model, dict) and all(isinstance(model.get(k), str) for k in ("name", "revision"))):
        return "model must hold a name and a revision"
    basis = "review\n" + model_basis(ModelRef(model["name"], model["revision"]))
    if record["review_id"] != referral_id(record["item_id"], record["content_sha256"], basis):
        return "review_id does not follow from item_id, content_sha256 and model"
    candidates = record.get("labels")
    if not isinstance(candidates, list) or not candidates or not all(c in labels for c in candidates):
        return f"labels must be a non-empty list of {list(labels)}"
    for name in ("scores", "thresholds", "review_thresholds"):
        values = record.get(name)
        if not isinstance(values, dict) or not all(
            k in labels and _finite_unit(v) for k, v in values.items()
        ):
            return f"{name} must map taxonomy labels to numbers from 0 to 1"
    for name in OPTIONAL_STRING_FIELDS[:3]:
        value = record.get(name)
        if value is not None and not (
            isinstance(value, str)
            and len(value) <= FIELD_LIMITS[name]
            and not _CONTROL_OR_BREAK.search(value)
        ):
            return f"{name} must be null or a short string without control characters"
    if record.get("author_hash") is not None and not isinstance(record["author_hash"], str):
        return "author_hash must be null or a string"
    for name in ("observed_at", "classified_at"):
        value = record.get(name)
        if (value is not None or name == "classified_at") and (
            not isinstance(value, str) or parse_rfc3339(value) is None
        ):
            return f"{name} must be an RFC 3339 timestamp"
    evidence = record.get("evidence")
    custody = evidence.get("chain_of_custody") if isinstance(evidence, dict) else None
    if not isinstance(custody, list) or not all(isinstance(step, dict) for step in custody):
        return "evidence must hold a chain_of_custody list"
    if record.get("shadow") is not None and not isinstance(record["shadow"], dict):
        return "shadow must be null or an object"
    return None


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
    supersedes: str | None = None
    """The decision_id of the decision in force that this one replaces (a supervisor's correction)."""
    override_reason: str | None = None
    """Why an approval confirms labels that are not among the review's candidates."""

    def as_json(self) -> dict[str, Any]:
        """The ``review`` block of the records a decision produces."""
        return {
            "review_id": self.review_id,
            "decision_id": self.decision_id,
            "decision": self.decision,
            "reviewer": self.reviewer,
            "reason": self.reason,
            "decided_at": self.decided_at,
            "supersedes": self.supersedes,
            "override_reason": self.override_reason,
        }


def _free_text(value: object) -> bool:
    """A reason: a string of at most :data:`REASON_MAX_CHARS` with no control characters but tab
    and line breaks."""
    return isinstance(value, str) and len(value) <= REASON_MAX_CHARS and not _CONTROL.search(value)


def parse_decision(raw: bytes, *, labels: tuple[str, ...], default_decided_at: str) -> Decision | Rejection:
    """Validate one message of the decisions topic. Never raises, whatever the bytes.

    ``default_decided_at`` stands in for a missing ``decided_at``: the message's own timestamp,
    so that a redelivered message parses to the same decision. A missing ``decision_id`` is a
    UUIDv5 of the review id and the message bytes: a message sent twice is one decision.
    """

    def reject(message: str, review_id: str | None = None) -> Rejection:
        return Rejection(ErrorCode.INVALID_DECISION, message, item_id=review_id, stage=Stage.REVIEW)

    data = safejson.parse_object(raw)
    if isinstance(data, NotJson):
        return reject(f"decision is {data.message}")
    review_id = safe_id(data.get("review_id"), DECISION_LIMITS["review_id"])
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


_AUTHOR_FIELD = re.compile(rb'"author"\s*:\s*"(?:[^"\\]|\\.)*"')


def redact_author(raw: bytes, key: bytes | None) -> tuple[bytes, bool]:
    """``raw`` with its ``author`` replaced by the HMAC that referrals carry (or null without a
    key), and whether anything changed. A JSON object is rewritten; bytes that are not one get
    every ``"author": "..."`` pair blanked as it stands."""
    value = safejson.parse(raw)
    if isinstance(value, dict):
        if "author" not in value:
            return raw, False
        author = value["author"]
        replaced = author_hash(author, key) if isinstance(author, str) and safe_id(author) else None
        rewritten = {**value, "author": replaced}
        try:
            return json.dumps(rewritten, ensure_ascii=False).encode("utf-8"), True
        except UnicodeEncodeError:  # lone surrogates elsewhere: keep them as escapes
            return json.dumps(rewritten).encode("utf-8"), True
    blanked = _AUTHOR_FIELD.sub(b'"author":null', raw)
    return blanked, blanked != raw


def dlq_record(
    rejection: Rejection,
    raw: bytes,
    source: SourcePosition,
    *,
    received_at: str,
    author_key: bytes | None = None,
) -> dict[str, Any]:
    """The dead letter of ``raw``: at most :data:`DLQ_PAYLOAD_MAX_BYTES` of it (its author
    replaced, see :func:`redact_author`), as text or base64, with the original's length and SHA-256."""
    redacted, changed = redact_author(raw, author_key)
    kept = redacted[:DLQ_PAYLOAD_MAX_BYTES]
    try:
        redacted.decode("utf-8")
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    else:  # valid UTF-8: cut at a character boundary
        payload, encoding = kept.decode("utf-8", errors="ignore"), "utf-8"
    return {
        "schema_version": SCHEMA_VERSION,
        "item_id": rejection.item_id,
        "error": {"code": str(rejection.code), "message": rejection.message},
        "stage": str(rejection.stage),
        "payload": payload,
        "payload_encoding": encoding,
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_truncated": len(redacted) > len(kept),
        "payload_redacted": changed,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        "received_at": received_at,
    }


def encode(record: dict[str, Any]) -> bytes:
    """The wire form of an output record (:func:`streams.safejson.encode`)."""
    return safejson.encode(record)


def load_schema(name: str) -> dict[str, Any]:
    """One of the shipped JSON Schemas: ``content``, ``referral``, ``cleared`` or ``dlq``."""
    schema: dict[str, Any] = json.loads(
        files("streams.records").joinpath(f"schemas/{name}.schema.json").read_text()
    )
    return schema
