"""Known content: exact and near-duplicate matching of text against propaganda already referred.

Content that has been referred once should be recognised when it is posted again, reworded a
little, with other links or emoji. The bank holds, per entry, two signatures of the text and
never the text itself:

- the SHA-256 of the *normalised* text: an exact match, and
- a MinHash of the normalised text's character 5-grams (``datasketch``, 128 permutations,
  scheme ``affine32``, SHA-1): a near-duplicate match by estimated Jaccard similarity, found
  with a :class:`datasketch.MinHashLSH` index.

The modules, each depending only on those above it:

- :mod:`~streams.known_content.signature`: :func:`normalise` and :func:`signature`, the
  :class:`Signature` of a text. The normalisation and the MinHash parameters are part of the
  record format, so changing any of them means a new ``NORMALISATION`` name and re-importing
  the bank.
- :mod:`~streams.known_content.entry`: an :class:`Entry`, its ``hashbank`` topic record
  (:meth:`Entry.as_record`, ``schemas/hashbank.schema.json``) and :func:`parse_entry`, which
  validates a record or a bank file line and returns a :class:`BankError` instead of raising.
- :mod:`~streams.known_content.index`: the :class:`HashBank` in memory and the :class:`Match`
  it finds.
- :mod:`~streams.known_content.files`: JSON Lines bank files (:func:`load_bank_file`), whose
  lines may give the ``text`` instead of the hashes, validated whole before any line is applied.

Typical use in a worker, computing the signatures once per item::

    sig = signature(item.text)
    match = bank.match_signature(sig)   # exact first; the MinHash only when that misses
    ...
    entry = Entry.from_signature(sig, entry_id=..., labels=..., source=..., added_at=...)
"""

from streams.known_content.entry import BankError, Entry, parse_entry
from streams.known_content.files import BankFileError, load_bank_file
from streams.known_content.index import HashBank, Match
from streams.known_content.signature import Signature, normalise, signature

__all__ = [
    "BankError",
    "BankFileError",
    "Entry",
    "HashBank",
    "Match",
    "Signature",
    "load_bank_file",
    "normalise",
    "parse_entry",
    "signature",
]
