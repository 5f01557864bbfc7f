"""Hash bank entries and their records on the hashbank topic and in bank files: validated on the way
in, never raising on bad input (:func:`parse_entry` returns a :class:`BankError`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from classifiers.base import LABELS
from streams.known_content.signature import MINHASH_MAX, NUM_PERM, Signature, signature
from streams.records import parse_rfc3339, safe_id, utc_now

SCHEMA_VERSION = 2
"""``schema_version`` of the ``hashbank`` record (``schemas/hashbank.schema.json``)."""
ENTRY_ID_MAX_CHARS = 256
SOURCE_TYPES = ("referral", "import")
"""``source.type``: learned from a referral by the worker, or imported from a bank file."""
OPS = ("add", "remove")
Op = Literal["add", "remove"]
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_RECORD_FIELDS = (
    "schema_version",
    "op",
    "entry_id",
    "normalised_sha256",
    "minhash",
    "labels",
    "source",
    "added_at",
)
_TEXT_FIELDS = ("schema_version", "op", "entry_id", "text", "labels", "source", "added_at")


class BankError(ValueError):
    """Why a bank record or entry is invalid, naming the field: ``str()`` is ``"field: message"``.

    Raised by the :class:`Entry` constructors, returned (not raised) by :func:`parse_entry`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_entry_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BankError("entry_id", "must be a non-empty string")
    if value != value.strip():
        raise BankError("entry_id", "must not start or end with whitespace")
    if len(value) > ENTRY_ID_MAX_CHARS:
        raise BankError("entry_id", f"must be at most {ENTRY_ID_MAX_CHARS} characters")
    if safe_id(value, ENTRY_ID_MAX_CHARS) is None:
        raise BankError("entry_id", "must not hold control characters or unpaired surrogates")
    return value


def _check_labels(value: object, *, required: bool) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(label, str) for label in value):
        raise BankError("labels", "must be a list of label names")
    unknown = sorted({label for label in value if label not in LABELS})
    if unknown:
        raise BankError(
            "labels", f"unknown label(s) {', '.join(unknown)}; the taxonomy is {', '.join(LABELS)}"
        )
    if required and not value:
        raise BankError("labels", f"needs at least one of {', '.join(LABELS)}")
    return tuple(label for label in LABELS if label in value)


def _check_source(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BankError("source", 'must be an object such as {"type": "import"}')
    if value.get("type") not in SOURCE_TYPES:
        raise BankError("source", f"type must be one of {', '.join(SOURCE_TYPES)}, not {value.get('type')!r}")
    return dict(value)


def _check_added_at(value: object) -> str:
    if not isinstance(value, str) or parse_rfc3339(value) is None:
        raise BankError("added_at", f"must be an RFC 3339 time with a time zone, not {value!r}")
    return value


def _check_sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise BankError("normalised_sha256", "must be 64 lowercase hexadecimal digits")
    if value == _EMPTY_SHA256:
        raise BankError("normalised_sha256", "is the hash of empty text (no letters or digits)")
    return value


def _check_minhash(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != NUM_PERM:
        raise BankError("minhash", f"must be null or a list of {NUM_PERM} integers")
    if not all(type(v) is int and 0 <= v <= MINHASH_MAX for v in value):
        raise BankError("minhash", f"values must be integers from 0 to {MINHASH_MAX}")
    return tuple(value)


@dataclass(frozen=True)
class Entry:
    """One known item: its signatures, taxonomy labels, where it came from, and when it was added."""

    entry_id: str
    normalised_sha256: str
    minhash: tuple[int, ...] | None
    """None: the entry matches exactly only."""
    labels: tuple[str, ...]
    source: dict[str, Any] = field(hash=False)
    """``{"type": "referral" | "import", ...}``."""
    added_at: str
    """RFC 3339."""

    @property
    def added_epoch(self) -> float:
        """``added_at`` in epoch seconds (validated on construction, so it parses)."""
        moment = parse_rfc3339(self.added_at)
        assert moment is not None
        return moment.timestamp()

    @classmethod
    def from_signature(
        cls,
        sig: Signature,
        *,
        entry_id: str,
        labels: Iterable[str],
        source: Mapping[str, Any],
        added_at: str,
    ) -> Entry:
        """An entry for a text already signed with :func:`signature`. Raises :class:`BankError`."""
        if sig.empty:
            raise BankError("text", "has no letters or digits once normalised")
        return cls(
            entry_id=_check_entry_id(entry_id),
            normalised_sha256=sig.normalised_sha256,
            minhash=sig.minhash,
            labels=_check_labels(list(labels), required=True),
            source=_check_source(source),
            added_at=_check_added_at(added_at),
        )

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        entry_id: str,
        labels: Iterable[str],
        source: Mapping[str, Any],
        added_at: str,
    ) -> Entry:
        """An entry for ``text``, which is hashed and not kept. Raises :class:`BankError`."""
        if not isinstance(text, str):
            raise BankError("text", "must be a string")
        return cls.from_signature(
            signature(text), entry_id=entry_id, labels=labels, source=source, added_at=added_at
        )

    def as_record(self, op: Op = "add") -> dict[str, Any]:
        """The ``hashbank`` topic record (``schemas/hashbank.schema.json``): hashes, never text."""
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}")
        return {
            "schema_version": SCHEMA_VERSION,
            "op": op,
            "entry_id": self.entry_id,
            "normalised_sha256": self.normalised_sha256,
            "minhash": None if self.minhash is None else list(self.minhash),
            "labels": list(self.labels),
            "source": dict(self.source),
            "added_at": self.added_at,
        }


Update = tuple[Literal["add"], Entry] | tuple[Literal["remove"], str]
"""A parsed bank record: ``("add", entry)`` or ``("remove", entry_id)``."""


def remove_record(entry_id: str) -> dict[str, Any]:
    """The smallest ``hashbank`` record that removes an entry."""
    return {"schema_version": SCHEMA_VERSION, "op": "remove", "entry_id": _check_entry_id(entry_id)}


def _parse(data: object, *, default_source: Mapping[str, Any] | None, now: str | None) -> Update:
    if not isinstance(data, dict):
        raise BankError("record", "must be a JSON object")
    text_form = "text" in data
    if text_form and ("normalised_sha256" in data or "minhash" in data):
        raise BankError("text", "give either text or the hashes (normalised_sha256, minhash), not both")
    allowed = _TEXT_FIELDS if text_form else _RECORD_FIELDS
    unknown = [key for key in data if key not in allowed]
    if unknown:
        raise BankError(str(unknown[0]), f"unknown field (allowed: {', '.join(allowed)})")
    if "schema_version" in data or not text_form:
        version = data.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise BankError("schema_version", f"must be {SCHEMA_VERSION}, not {version!r}")
    op = data.get("op", "add") if text_form else data.get("op")
    if op not in OPS:
        raise BankError("op", f"must be one of {', '.join(OPS)}, not {op!r}")
    if text_form and op != "add":
        raise BankError("op", "a line with text can only add an entry")
    for name in ("entry_id", "labels") if op == "add" else ("entry_id",):
        if name not in data:
            raise BankError(name, "is required")
    entry_id = _check_entry_id(data["entry_id"])

    if op == "remove":  # only entry_id is needed; whatever else is given must still be well-formed
        checks = {
            "normalised_sha256": _check_sha256,
            "minhash": _check_minhash,
            "source": _check_source,
            "added_at": _check_added_at,
        }
        for name, check in checks.items():
            if name in data:
                check(data[name])
        if "labels" in data:
            _check_labels(data["labels"], required=False)
        return ("remove", entry_id)

    if text_form:
        source = data.get("source", default_source or {"type": "import"})
        return (
            "add",
            Entry.from_text(
                data["text"],
                entry_id=entry_id,
                labels=_check_labels(data["labels"], required=True),
                source=_check_source(source),
                added_at=_check_added_at(data.get("added_at", now or utc_now())),
            ),
        )
    missing = [name for name in _RECORD_FIELDS if name not in data]
    if missing:
        raise BankError(missing[0], "is required (give text instead of the hashes to have them computed)")
    return (
        "add",
        Entry(
            entry_id=entry_id,
            normalised_sha256=_check_sha256(data["normalised_sha256"]),
            minhash=_check_minhash(data["minhash"]),
            labels=_check_labels(data["labels"], required=True),
            source=_check_source(data["source"]),
            added_at=_check_added_at(data["added_at"]),
        ),
    )


def parse_entry(
    data: object,
    *,
    default_source: Mapping[str, Any] | None = None,
    now: str | None = None,
) -> Update | BankError:
    """Validate one bank record or bank file line. Never raises: returns the error instead.

    Two forms are accepted. The *record* form is the ``hashbank`` topic record, every field
    required (a remove needs only ``schema_version``, ``op`` and ``entry_id``). The *text* form,
    for bank files, gives ``text`` instead of ``normalised_sha256`` and ``minhash``: the hashes
    are computed and the text is dropped; ``schema_version`` and ``op`` may be left out (it can
    only add), ``source`` defaults to ``default_source`` (else ``{"type": "import"}``) and
    ``added_at`` to ``now`` (else the current time).
    """
    try:
        return _parse(data, default_source=default_source, now=now)
    except BankError as error:
        return error
