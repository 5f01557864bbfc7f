"""Records from verdicts: referral, review or cleared, with their evidence and chain of custody.

Pure: everything a record holds comes from the slot, the times and the builder's fixed
settings; nothing here scores, decides, counts or learns.
"""

from __future__ import annotations

from dataclasses import dataclass

from classifiers.policy import Policy
from streams.kafka.topics import CLEARED, REFERRALS, REVIEW
from streams.known_content.signature import NORMALISATION
from streams.pipeline.messages import Output
from streams.pipeline.slot import Slot
from streams.records import Cleared, DecidedBy, ModelRef, Referral, Review, Subject, parse_rfc3339
from streams.records.outputs import (
    CustodyStep,
    Evidence,
    EvidenceModel,
    MatchBlock,
    Thresholds,
    custody_step,
)
from streams.records.times import epoch_to_rfc3339

OutputRecord = Referral | Review | Cleared


@dataclass(frozen=True)
class Times:
    """When the batch was received, checked against the hash bank, and classified."""

    received_at: str
    checked_at: str
    classified_at: str


@dataclass(frozen=True)
class RecordBuilder:
    """Builds a slot's record by its verdict (or its match), and the output that carries it."""

    model: ModelRef
    policy: Policy
    backend: str
    actor: str
    author_key: bytes | None = None

    def record(self, slot: Slot, times: Times, bank_entries: int) -> OutputRecord:
        """Known content is referred by its match; anything else by its verdict."""
        assert slot.item is not None
        subject = Subject.of(slot.item, self.author_key)
        custody = self._custody(slot, times, bank_entries)
        if slot.match is not None:
            match = MatchBlock.model_validate(slot.match.as_json())
            custody.append(custody_step("referred", times.checked_at, self.actor))
            return Referral.of(
                subject,
                basis=f"hashbank\n{slot.match.entry_id}",
                labels=slot.match.labels,
                decided_by=DecidedBy.HASHBANK,
                scores={},
                thresholds=dict(self.policy.thresholds),
                model=None,
                match=match,
                classified_at=times.checked_at,
                evidence=self._evidence(slot, custody, {}, match),
            )
        verdict = slot.verdict
        assert verdict is not None
        if verdict.outcome == "refer":
            custody.append(custody_step("referred", times.classified_at, self.actor))
            return Referral.of(
                subject,
                basis=self.model.basis,
                labels=verdict.labels,
                decided_by=DecidedBy.MODEL,
                scores=verdict.scores,
                thresholds=dict(self.policy.thresholds),
                model=self.model,
                shadow=slot.shadow,
                classified_at=times.classified_at,
                evidence=self._evidence(slot, custody, verdict.scores, None),
            )
        if verdict.outcome == "review":
            custody.append(custody_step("queued_for_review", times.classified_at, self.actor))
            return Review.of(
                subject,
                model=self.model,
                labels=verdict.candidates,
                scores=verdict.scores,
                thresholds=dict(self.policy.thresholds),
                review_thresholds=dict(self.policy.review_thresholds),
                shadow=slot.shadow,
                classified_at=times.classified_at,
                evidence=self._evidence(slot, custody, verdict.scores, None),
            )
        return Cleared(
            item_id=subject.item_id,
            platform=subject.platform,
            lang=subject.lang,
            content_sha256=subject.content_sha256,
            scores=verdict.scores,
            model=self.model,
            shadow=slot.shadow,
            classified_at=times.classified_at,
            observed_at=subject.observed_at,
        )

    def output(self, slot: Slot, record: OutputRecord) -> Output:
        """The output that sends ``record``, keyed by the item id, with what its metrics count."""
        assert slot.item is not None
        observed = parse_rfc3339(slot.item.observed_at) if slot.item.observed_at else None
        topic = (
            REFERRALS if isinstance(record, Referral) else REVIEW if isinstance(record, Review) else CLEARED
        )
        return Output(
            topic,
            slot.item.id.encode("utf-8"),
            record.to_json(),
            produced_at=slot.message.timestamp,
            observed_at=observed.timestamp() if observed else None,
            labels=record.labels if isinstance(record, Referral) else (),
            match=record.match.type if isinstance(record, Referral) and record.match else None,
        )

    def _custody(self, slot: Slot, times: Times, bank_entries: int) -> list[CustodyStep]:
        assert slot.item is not None
        message = slot.message
        steps = []
        if slot.item.observed_at:
            steps.append(custody_step("captured", slot.item.observed_at, slot.item.platform or "source"))
        if message.timestamp is not None:
            steps.append(
                custody_step(
                    "ingested",
                    epoch_to_rfc3339(message.timestamp),
                    "kafka",
                    topic=message.source.topic,
                    partition=message.source.partition,
                    offset=message.source.offset,
                )
            )
        steps.append(custody_step("received", times.received_at, self.actor))
        match = slot.match.as_json() if slot.match else None
        steps.append(
            custody_step("hash_checked", times.checked_at, self.actor, match=match, bank_entries=bank_entries)
        )
        if slot.match is None:
            steps.append(
                custody_step(
                    "classified",
                    times.classified_at,
                    self.actor,
                    model=self.model.as_json(),
                    backend=self.backend,
                )
            )
        return steps

    def _evidence(
        self, slot: Slot, custody: list[CustodyStep], scores: dict[str, float], match: MatchBlock | None
    ) -> Evidence:
        assert slot.item is not None and slot.signature is not None
        message = slot.message
        captured = slot.item.observed_at or (
            epoch_to_rfc3339(message.timestamp) if message.timestamp is not None else None
        )
        model = None if match else EvidenceModel(**self.model.model_dump(), backend=self.backend)
        return Evidence(
            captured_at=captured,
            content_sha256=slot.item.content_sha256,
            normalised_sha256=slot.signature.normalised_sha256,
            normalisation=NORMALISATION,
            model=model,
            thresholds=Thresholds(
                referral=dict(self.policy.thresholds), review=dict(self.policy.review_thresholds)
            ),
            scores=scores,
            match=match,
            source=message.source.block,
            chain_of_custody=tuple(custody),
        )
