"""The known-content hash bank: exact and near-duplicate matching of text against known propaganda.

Content that has been referred once should be recognised when it is posted again, reworded a
little, with other links or emoji. The bank holds, per entry, two signatures of the text and
never the text itself:

- the SHA-256 of the *normalised* text (:func:`~streams.known_content.signature.normalise`):
  an exact match, and
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
