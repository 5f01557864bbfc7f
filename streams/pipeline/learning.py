"""Learning into the hash bank: a step after the decision, the only one that changes shared state.

What the model (or a reviewer) referred joins the bank: this worker's at once (the next batches
match it before the topic brings it back), and every other worker's through the hashbank topic.
A text with no letters or digits cannot be an entry and is not learned.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.kafka.topics import HASHBANK
from streams.known_content.entry import Entry
from streams.known_content.index import HashBank
from streams.known_content.signature import Signature, signature
from streams.metrics import Metrics
from streams.pipeline.delivery import internal_error
from streams.pipeline.messages import Output
from streams.records import Referral, Stage, encode


def learned_entry(referral: Referral, known: Signature | None) -> Entry | None:
    """The hash bank entry for content the pipeline referred (``known``: the text's signature when
    it was already computed); None for a text with no letters or digits, which cannot be one."""
    sig = known or signature(referral.text)
    if sig.empty:
        return None
    return Entry.from_signature(
        sig,
        entry_id=f"referral:{referral.referral_id}",
        labels=referral.labels,
        source={"type": "referral", "referral_id": referral.referral_id, "item_id": referral.item_id},
        added_at=referral.classified_at,
    )


def bank_output(entry: Entry) -> Output:
    """The record that publishes ``entry`` to every worker's bank through the hashbank topic."""
    return Output(HASHBANK, entry.entry_id.encode("utf-8"), encode(entry.as_record()))


def learn(
    bank: HashBank, referrals: Sequence[tuple[Referral, Signature | None]], metrics: Metrics
) -> list[Output]:
    """Add each referral's entry to ``bank``; the outputs that publish them. A failure costs only
    the bank that entry (the referral stands), and is counted."""
    learned = []
    for referral, known in referrals:
        try:
            entry = learned_entry(referral, known)
            if entry is None:
                continue
            bank.add(entry)
            learned.append(bank_output(entry))
        except Exception as exc:
            internal_error(metrics, Stage.MATCH, exc)
    return learned
