"""Normalisation and the two signatures of a text: the SHA-256 of its normalised form (an exact match)
and a MinHash of its character :data:`SHINGLE_CHARS`-grams (a near-duplicate match).

Every constant here is part of the record format: changing one means a new :data:`NORMALISATION`
name and re-importing the bank.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from datasketch import MinHash

NORMALISATION = "propwatch-nfkc-casefold-v1"
"""Name of :func:`normalise` as it is now; recorded in evidence next to ``normalised_sha256``."""

NUM_PERM = 128
"""MinHash permutations: hash values per signature."""
SHINGLE_CHARS = 5
"""Length of the character n-grams (shingles) the MinHash is taken over."""
MINHASH_MAX_CHARS = 10_000
"""The MinHash covers the first this many characters of the normalised text (part of the record
format, like the normalisation): a near duplicate of a long text shares its beginning, and
hashing a few hundred kilobytes would hold the event loop for seconds and take hundreds of MiB."""
MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"
MINHASH_MAX = (1 << 32) - 1
"""Largest MinHash value (the ``affine32`` scheme's values are 32-bit)."""
_URL = re.compile(r"\b(?:https?://|www\.)\S*")
_SEPARATORS = re.compile(r"[\W_]+")
# Built once: creating the permutations costs more than hashing a short text.
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED, scheme=MINHASH_SCHEME).permutations


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


def new_minhash(hashvalues: np.ndarray | None = None) -> MinHash:
    """A ``datasketch`` MinHash with the bank's parameters: empty, or holding ``hashvalues``
    (an entry's stored :attr:`Signature.minhash`, as ``uint32``)."""
    return MinHash(
        num_perm=NUM_PERM,
        seed=MINHASH_SEED,
        hashvalues=hashvalues,
        permutations=_PERMUTATIONS,
        scheme=MINHASH_SCHEME,
    )


def _shingles(normalised: str) -> set[bytes]:
    """Character :data:`SHINGLE_CHARS`-grams in UTF-8 of the first :data:`MINHASH_MAX_CHARS`
    characters; a text that short or shorter is one shingle."""
    head = normalised[:MINHASH_MAX_CHARS]
    if len(head) <= SHINGLE_CHARS:
        return {head.encode("utf-8")}
    return {head[i : i + SHINGLE_CHARS].encode("utf-8") for i in range(len(head) - (SHINGLE_CHARS - 1))}


@dataclass(frozen=True)
class Signature:
    """What the bank needs of one text, computed once per item and reused for matching and for
    making an :class:`~streams.known_content.entry.Entry`. The MinHash is computed on first use
    only, so an exact match never pays for it. Build with :func:`signature`; the normalised text
    stays in memory only.
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
        minhash = new_minhash()
        minhash.update_batch(_shingles(self.normalised))
        return minhash

    @cached_property
    def minhash(self) -> tuple[int, ...] | None:
        """The MinHash's :data:`NUM_PERM` hash values, as stored in records; None when the text is empty."""
        minhash = self.minhash_object
        return None if minhash is None else tuple(minhash.hashvalues.tolist())


def signature(text: str) -> Signature:
    """Normalise ``text`` and hash it; the MinHash follows lazily (:attr:`Signature.minhash`)."""
    normalised = normalise(text)
    return Signature(normalised, hashlib.sha256(normalised.encode("utf-8")).hexdigest())
