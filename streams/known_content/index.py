"""The bank itself (:class:`HashBank`): entries by normalised SHA-256 and a MinHash LSH index, and
how an item matches them (:class:`Match`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import MinHashLSH

from streams import safejson
from streams.known_content.entry import BankError, Entry, Update, parse_entry
from streams.known_content.signature import NUM_PERM, Signature, new_minhash, signature
from streams.records.names import MatchType

log = logging.getLogger(__name__)
LSH_WEIGHTS = (0.05, 0.95)
"""False-positive and false-negative weights for the LSH band layout. Every LSH candidate is
checked against the threshold with its estimated Jaccard similarity, so a false positive of the
index costs one comparison, while a false negative is a missed match: at threshold 0.8 these
weights give 16 bands of 8 rows, which finds 95% of pairs at similarity 0.8 (datasketch's even
weights find 40%)."""
LSH_MAX_THRESHOLD = 0.95
"""The index is tuned for at most this similarity (above it datasketch cannot lay out two bands);
a higher bank threshold is still applied to the candidates."""


@dataclass(frozen=True)
class Match:
    """A bank hit: the ``match`` field of a referral."""

    type: MatchType
    entry_id: str
    similarity: float
    """1.0 for an exact match, else the MinHash estimate of the Jaccard similarity (4 places)."""
    labels: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The referral's ``match`` object (``schemas/referral.schema.json``)."""
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
            minhash = new_minhash(np.array(entry.minhash, dtype=np.uint32))
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
        found = self.matches(sig, ignore_item=ignore_item, as_of=as_of, limit=1)
        return found[0] if found else None

    def matches(
        self,
        sig: Signature,
        *,
        ignore_item: str | None = None,
        as_of: float | None = None,
        limit: int | None = None,
    ) -> list[Match]:
        """Every match, best first, at most ``limit``: the exact ones in the order they were added,
        then the near duplicates at or above the threshold by estimated similarity (ties: the
        smallest entry id). ``ignore_item`` and ``as_of`` as in :meth:`match_signature`; the
        MinHash is computed only when the exact matches do not reach ``limit``."""
        if sig.empty:
            return []
        found = [
            Match("exact", entry_id, 1.0, self._entries[entry_id].labels)
            for entry_id in self._by_hash.get(sig.normalised_sha256, ())
            if self._eligible(entry_id, ignore_item, as_of)
        ][:limit]
        if (limit is not None and len(found) >= limit) or not self._minhashes:
            return found  # enough, or nothing to be near to: no MinHash needed
        query = sig.minhash_object
        if query is None:
            return found
        exact = {match.entry_id for match in found}
        near = []
        for entry_id in self._lsh.query(query):
            if entry_id in exact or not self._eligible(entry_id, ignore_item, as_of):
                continue
            similarity = np.count_nonzero(query.hashvalues == self._minhashes[entry_id]) / NUM_PERM
            if similarity >= self.threshold:
                near.append((-similarity, entry_id))
        near.sort()
        found += [
            Match("near", entry_id, round(float(-negative), 4), self._entries[entry_id].labels)
            for negative, entry_id in near
        ]
        return found[:limit]
