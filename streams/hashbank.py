"""The known-content hash bank: exact and near-duplicate matching of text against known propaganda.

Content that has been referred once should be recognised when it is posted again, reworded a
little, with other links or emoji. The bank holds, per entry, two signatures of the text and
never the text itself:

- the SHA-256 of the *normalised* text (:func:`normalise`): an exact match, and
- a MinHash of the normalised text's character 5-grams (``datasketch``, 128 permutations,
  scheme ``affine32``, SHA-1): a near-duplicate match by estimated Jaccard similarity, found
  with a :class:`datasketch.MinHashLSH` index.

Entries travel as records on the ``hashbank`` topic (:meth:`Entry.as_record`, described by
``schemas/hashbank.schema.json``) and in JSON Lines bank files (:func:`load_bank_file`), whose
lines may give the ``text`` instead of the hashes. Both signatures are stable across processes
and machines: the normalisation and the MinHash parameters are part of the record format, so
changing any of them means a new :data:`NORMALISATION` name and re-importing the bank.

Typical use in a worker, computing the signatures once per item::

    sig = signature(item.text)
    match = bank.match_signature(sig)   # exact first; the MinHash only when that misses
    ...
    entry = Entry.from_signature(sig, entry_id=..., labels=..., source=..., added_at=...)
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from datasketch import MinHash, MinHashLSH

from classifiers.base import LABELS
from streams import safejson
from streams.records import encode, parse_rfc3339, safe_id, utc_now

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
NORMALISATION = "propwatch-nfkc-casefold-v1"
"""Name of :func:`normalise` as it is now; recorded in evidence next to ``normalised_sha256``."""

NUM_PERM = 128
SHINGLE_CHARS = 5
MINHASH_MAX_CHARS = 10_000
"""The MinHash covers the first this many characters of the normalised text (part of the record
format, like the normalisation): a near duplicate of a long text shares its beginning, and
hashing a few hundred kilobytes would hold the event loop for seconds and take hundreds of MiB."""
MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"
MINHASH_MAX = (1 << 32) - 1
LSH_WEIGHTS = (0.05, 0.95)
"""False-positive and false-negative weights for the LSH band layout. Every LSH candidate is
checked against the threshold with its estimated Jaccard similarity, so a false positive of the
index costs one comparison, while a false negative is a missed match: at threshold 0.8 these
weights give 16 bands of 8 rows, which finds 95% of pairs at similarity 0.8 (datasketch's even
weights find 40%)."""
LSH_MAX_THRESHOLD = 0.95
"""The index is tuned for at most this similarity (above it datasketch cannot lay out two bands);
a higher bank threshold is still applied to the candidates."""

ENTRY_ID_MAX_CHARS = 256
SOURCE_TYPES = ("referral", "import")
OPS = ("add", "remove")
MATCH_TYPES = ("exact", "near")
"""How an item can match an entry: the same normalised text, or a near duplicate."""

Op = Literal["add", "remove"]
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"\b(?:https?://|www\.)\S*")
_SEPARATORS = re.compile(r"[\W_]+")
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
# Built once: creating the permutations costs more than hashing a short text.
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED, scheme=MINHASH_SCHEME).permutations


class BankError(ValueError):
    """Why a bank record or entry is invalid, naming the field: ``str()`` is ``"field: message"``.

    Raised by the :class:`Entry` constructors, returned (not raised) by :func:`parse_entry`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BankFileError(ValueError):
    """A bank file that cannot be read; ``str()`` is ``"path:line: reason"`` (or ``"path: reason"``)."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


# --- normalisation and signatures ------------------------------------------------------------


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _separator(match: re.Match[str]) -> str:
    """A run of non-word characters becomes one space, except that combining marks right after a
    letter or digit stay with it (Devanagari and Thai vowel signs, Arabic harakat, viramas)."""
    run = match.group()
    if match.start() == 0 or not _is_mark(run[0]):
        return " "
    end = 1
    while end < len(run) and _is_mark(run[end]):
        end += 1
    return run if end == len(run) else run[:end] + " "


def normalise(text: str) -> str:
    """The text as the bank compares it (:data:`NORMALISATION`).

    Unicode NFKC, case folding, URLs (``http://``, ``https://``, ``www.``) removed, and every run
    of characters that are not letters or digits (punctuation, symbols, emoji, whitespace, ``_``)
    replaced by one space; leading and trailing spaces removed. Combining marks that follow a
    letter or digit count as part of it. Text with no letters or digits normalises to ``""``.
    """
    folded = _URL.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    if folded.isascii():  # no combining marks: the fast path
        return _SEPARATORS.sub(" ", folded).strip()
    return _SEPARATORS.sub(_separator, folded).strip()


def normalised_sha256(text: str) -> str:
    """Hex SHA-256 of ``normalise(text)`` in UTF-8."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def _new_minhash(hashvalues: np.ndarray | None = None) -> MinHash:
    return MinHash(
        num_perm=NUM_PERM,
        seed=MINHASH_SEED,
        hashvalues=hashvalues,
        permutations=_PERMUTATIONS,
        scheme=MINHASH_SCHEME,
    )


def _shingles(normalised: str) -> set[bytes]:
    """Character 5-grams in UTF-8 of the first :data:`MINHASH_MAX_CHARS` characters; a shorter
    text is one shingle."""
    head = normalised[:MINHASH_MAX_CHARS]
    if len(head) <= SHINGLE_CHARS:
        return {head.encode("utf-8")}
    return {head[i : i + SHINGLE_CHARS].encode("utf-8") for i in range(len(head) - SHINGLE_CHARS + 1)}


@dataclass(frozen=True)
class Signature:
    """What the bank needs of one text, computed once per item and reused for matching and for
    making an :class:`Entry`. The MinHash is computed on first use only, so an exact match
    never pays for it. Build with :func:`signature`; the normalised text stays in memory only.
    """

    normalised: str = field(repr=False)
    normalised_sha256: str

    @property
    def empty(self) -> bool:
        """No letters or digits: such a text matches nothing and cannot be an entry."""
        return not self.normalised

    @cached_property
    def minhash_object(self) -> MinHash | None:
        """The ``datasketch`` MinHash of the normalised text; None when it is empty."""
        if self.empty:
            return None
        minhash = _new_minhash()
        minhash.update_batch(_shingles(self.normalised))
        return minhash

    @cached_property
    def minhash(self) -> tuple[int, ...] | None:
        """The MinHash's 128 hash values, as stored in records; None when the text is empty."""
        minhash = self.minhash_object
        return None if minhash is None else tuple(minhash.hashvalues.tolist())


def signature(text: str) -> Signature:
    """Normalise ``text`` and hash it; the MinHash follows lazily (:attr:`Signature.minhash`)."""
    normalised = normalise(text)
    return Signature(normalised, hashlib.sha256(normalised.encode("utf-8")).hexdigest())


# --- entries and records ----------------------------------------------------------------------


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


# --- the bank ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A bank hit: the ``match`` field of a referral."""

    type: Literal["exact", "near"]
    entry_id: str
    similarity: float
    """1.0 for an exact match, else the MinHash estimate of the Jaccard similarity (4 places)."""
    labels: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "entry_id": self.entry_id,
            "similarity": self.similarity,
            "labels": list(self.labels),
        }


class HashBank:
    """Known content in memory: exact matches by normalised SHA-256, near duplicates by MinHash.

    ``threshold`` is the lowest estimated Jaccard similarity of the character 5-gram sets that
    counts as a near duplicate (1.0: all 128 MinHash values equal). Not thread-safe: use it from
    one thread (the event loop).
    """

    def __init__(self, threshold: float = 0.8) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be above 0 and at most 1, not {threshold}")
        self.threshold = threshold
        self._entries: dict[str, Entry] = {}
        self._since: dict[str, float | None] = {}  # matches items from this time on (None: all)
        self._by_hash: dict[str, list[str]] = {}  # entry ids in the order they were added
        self._minhashes: dict[str, np.ndarray] = {}
        self._lsh = MinHashLSH(
            threshold=min(threshold, LSH_MAX_THRESHOLD), num_perm=NUM_PERM, weights=LSH_WEIGHTS
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def add(self, entry: Entry, *, always: bool = False) -> None:
        """Add ``entry``, replacing an entry with the same ``entry_id``. It matches items that
        reached Kafka from its ``added_at`` on, or any item when ``always`` (the bank file's
        entries, which are configuration): see :meth:`match_signature`."""
        self.remove(entry.entry_id)
        self._entries[entry.entry_id] = entry
        self._since[entry.entry_id] = None if always else entry.added_epoch
        self._by_hash.setdefault(entry.normalised_sha256, []).append(entry.entry_id)
        if entry.minhash is not None:
            minhash = _new_minhash(np.array(entry.minhash, dtype=np.uint32))
            self._lsh.insert(entry.entry_id, minhash)
            self._minhashes[entry.entry_id] = minhash.hashvalues

    def remove(self, entry_id: str) -> bool:
        """Remove an entry; False when there was none with that id."""
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return False
        del self._since[entry_id]
        same_hash = self._by_hash[entry.normalised_sha256]
        same_hash.remove(entry_id)
        if not same_hash:
            del self._by_hash[entry.normalised_sha256]
        if self._minhashes.pop(entry_id, None) is not None:
            self._lsh.remove(entry_id)
        return True

    def apply(self, update: Update, *, always: bool = False) -> None:
        """Apply a record parsed by :func:`parse_entry`."""
        if update[0] == "add":
            self.add(update[1], always=always)
        else:
            self.remove(update[1])

    def apply_record(self, value: bytes | None) -> str | None:
        """Apply one ``hashbank`` topic message's value; why it is not a valid record, or None.
        Never raises, whatever the bytes."""
        record = safejson.parse_object(value if value is not None else b"null")
        if isinstance(record, safejson.NotJson):
            return f"record is {record.message}"
        parsed = parse_entry(record)  # the surrogates are out: parse_object refuses them
        if isinstance(parsed, BankError):
            return str(parsed)
        self.apply(parsed)
        return None

    def match(self, text: str, *, ignore_item: str | None = None, as_of: float | None = None) -> Match | None:
        """The best match for ``text``, or None. See :meth:`match_signature`."""
        return self.match_signature(signature(text), ignore_item=ignore_item, as_of=as_of)

    def _eligible(self, entry_id: str, ignore_item: str | None, as_of: float | None) -> bool:
        since = self._since[entry_id]
        if as_of is not None and since is not None and since > as_of:
            return False
        return ignore_item is None or self._entries[entry_id].source.get("item_id") != ignore_item

    def match_signature(
        self, sig: Signature, *, ignore_item: str | None = None, as_of: float | None = None
    ) -> Match | None:
        """Exact match first (the earliest added entry with the same normalised hash), then the
        near duplicate with the highest estimated similarity at or above the threshold (ties:
        the smallest entry id). The MinHash is computed only when there is no exact match.

        So that a redelivered item gets the records it got the first time, whatever the bank
        learned in between, only entries added at or before ``as_of`` (the item's Kafka timestamp,
        epoch seconds) count, besides the bank file's; and entries learned from the item
        ``ignore_item`` (``source.item_id``) never do.
        """
        if sig.empty:
            return None
        for entry_id in self._by_hash.get(sig.normalised_sha256, ()):
            if self._eligible(entry_id, ignore_item, as_of):
                entry = self._entries[entry_id]
                return Match("exact", entry.entry_id, 1.0, entry.labels)
        if not self._minhashes:
            return None  # nothing to be near to: no MinHash needed
        query = sig.minhash_object
        if query is None:
            return None
        best_id, best = None, -1.0
        for entry_id in sorted(self._lsh.query(query)):
            if not self._eligible(entry_id, ignore_item, as_of):
                continue
            similarity = np.count_nonzero(query.hashvalues == self._minhashes[entry_id]) / NUM_PERM
            if similarity > best:
                best_id, best = entry_id, similarity
        if best_id is None or best < self.threshold:
            return None
        return Match("near", best_id, round(float(best), 4), self._entries[best_id].labels)


# --- bank files and the hashbank topic -------------------------------------------------------


def read_bank_file(
    path: str | Path,
    *,
    default_source: Mapping[str, Any] | None = None,
    ops: Collection[str] = OPS,
    now: str | None = None,
) -> list[Update]:
    """Every line of a JSON Lines bank file (record or text form, see :func:`parse_entry`),
    validated before any is returned. Blank lines are skipped. Lines of text form without a
    source get ``default_source`` (else ``{"type": "import", "name": <file name>}``); all share
    one ``added_at`` when they give none. Raises :class:`BankFileError` on the first bad line.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BankFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    source = default_source or {"type": "import", "name": Path(path).name}
    now = now or utc_now()
    updates: list[Update] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        data = safejson.parse(line)
        if isinstance(data, safejson.NotJson):
            raise BankFileError(path, number, data.message)
        if safejson.lone_surrogate(data):
            raise BankFileError(path, number, "escapes an unpaired UTF-16 surrogate, which is not text")
        parsed = parse_entry(data, default_source=source, now=now)
        if isinstance(parsed, BankError):
            raise BankFileError(path, number, str(parsed))
        if parsed[0] not in ops:
            raise BankFileError(path, number, f"op: {parsed[0]!r} is not accepted here")
        updates.append(parsed)
    return updates


def load_bank_file(path: str | Path, bank: HashBank) -> int:
    """Apply a bank file to ``bank``, all or nothing, and return how many lines were applied.
    Raises :class:`BankFileError` with ``path:line: reason`` on the first bad line."""
    updates = read_bank_file(path)
    for update in updates:
        bank.apply(update, always=True)
    return len(updates)


def bank_file_records(path: str | Path, *, source_name: str | None = None) -> list[dict[str, Any]]:
    """The ``hashbank`` topic records for a bank file's entries (adds only, hashes only), for
    ``propwatch hashbank add``. Text-form lines without a source get
    ``{"type": "import", "name": source_name or <file name>}``. Raises :class:`BankFileError`."""
    source = {"type": "import", "name": source_name or Path(path).name}
    updates = read_bank_file(path, default_source=source, ops=("add",))
    return [update[1].as_record() for update in updates if update[0] == "add"]


def publish_records(settings: Settings, records: Iterable[dict[str, Any]]) -> int:
    """Send ``hashbank`` records to the hashbank topic, keyed by entry id; wait until every one is
    acknowledged by all in-sync replicas and return how many were sent."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", **settings.kafka_python_producer_config())
    topic = settings.topic("hashbank")
    try:
        futures = [
            producer.send(topic, key=record["entry_id"].encode("utf-8"), value=encode(record))
            for record in records
        ]
        producer.flush()
        for future in futures:
            future.get()  # raises the send's error, if it failed
    finally:
        producer.close()
    return len(futures)
