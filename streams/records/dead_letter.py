"""The dead letter of a message that could not be processed: why, where it came from, and at
most :data:`DLQ_PAYLOAD_MAX_BYTES` of it (its author redacted), with its length and SHA-256."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Strict

from streams import safejson
from streams.records.base import Record
from streams.records.content import ErrorCode, Rejection, Stage, safe_id
from streams.records.outputs import Source, Version, author_hash

DLQ_PAYLOAD_MAX_BYTES = 65_536
"""A dead letter keeps at most this many bytes of the original message, with its length and SHA-256."""
_AUTHOR_FIELD = re.compile(rb'"author"\s*:\s*"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class SourcePosition:
    """Where a consumed message sits: topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def block(self) -> Source:
        """The ``source`` block of a record."""
        return Source(topic=self.topic, partition=self.partition, offset=self.offset)


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


class Error(Record):
    code: Annotated[ErrorCode, Strict(False)]
    message: str


class DeadLetter(Record):
    """A message that went to the dead-letter topic, and why."""

    schema_version: Version
    item_id: str | None
    error: Error
    stage: Annotated[Stage, Strict(False)]
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int
    payload_sha256: str
    payload_truncated: bool
    payload_redacted: bool
    source: Source
    received_at: str

    @classmethod
    def of(
        cls,
        rejection: Rejection,
        raw: bytes,
        source: SourcePosition,
        *,
        received_at: str,
        author_key: bytes | None = None,
    ) -> DeadLetter:
        """The dead letter of ``raw``: at most :data:`DLQ_PAYLOAD_MAX_BYTES` of it (its author
        replaced, see :func:`redact_author`), as text or base64."""
        redacted, changed = redact_author(raw, author_key)
        kept = redacted[:DLQ_PAYLOAD_MAX_BYTES]
        try:
            redacted.decode("utf-8")
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(kept).decode("ascii"), "base64"
        else:  # valid UTF-8: cut at a character boundary
            payload, encoding = kept.decode("utf-8", errors="ignore"), "utf-8"
        return cls.without_payload(rejection, raw, source, received_at=received_at).model_copy(
            update={
                "payload": payload,
                "payload_encoding": encoding,
                "payload_truncated": len(redacted) > len(kept),
                "payload_redacted": changed,
            }
        )

    @classmethod
    def without_payload(
        cls, rejection: Rejection, raw: bytes, source: SourcePosition, *, received_at: str
    ) -> DeadLetter:
        """The reason, source, length and SHA-256 of ``raw``, and none of it: what takes the
        place of a dead letter whose payload could not be kept."""
        return cls(
            item_id=rejection.item_id,
            error=Error(code=rejection.code, message=rejection.message),
            stage=rejection.stage,
            payload="",
            payload_encoding="utf-8",
            payload_bytes=len(raw),
            payload_sha256=hashlib.sha256(raw).hexdigest(),
            payload_truncated=bool(raw),
            payload_redacted=False,
            source=source.block,
            received_at=received_at,
        )
