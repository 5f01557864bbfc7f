"""The classify agent's batch: validate → match known content → score → decide → build records →
learn. Each step fills its part of every live slot (:class:`~streams.pipeline.slot.Slot`) and
returns; a step that raises on a message costs that message a dead letter (``internal_error``,
with the exception's type, never its text) and the rest of the batch goes on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from classifiers.policy import Policy
from streams.kafka.topics import DLQ
from streams.known_content.index import HashBank
from streams.known_content.signature import signature
from streams.metrics import Metrics
from streams.pipeline.builder import RecordBuilder, Times
from streams.pipeline.delivery import bounded, count_delivered, dead_letter, internal_error
from streams.pipeline.learning import learn
from streams.pipeline.messages import Message, Output
from streams.pipeline.scoring import Scorer
from streams.pipeline.slot import Slot
from streams.records import DecidedBy, Referral, Rejection, Stage, parse_item, utc_now
from streams.records.outputs import ShadowBlock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """The largest text accepted, and the largest record a produce request takes."""

    max_text_bytes: int
    max_message_bytes: int


class ContentProcessor:
    """Turns a batch of content messages into exactly one output record each (plus the bank
    entries of what it referred): known content first, then the model, then the policy."""

    def __init__(
        self,
        scorer: Scorer,
        policy: Policy,
        builder: RecordBuilder,
        bank: HashBank,
        metrics: Metrics,
        limits: Limits,
        *,
        learn: bool = True,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.scorer = scorer
        self.policy = policy
        self.shadow_policy = (
            Policy.for_labels(scorer.shadow.labels, policy.thresholds) if scorer.shadow else None
        )
        self.builder = builder
        self.bank = bank
        self.metrics = metrics
        self.limits = limits
        self.learn = learn
        self.ready = ready
        """Set once the bank holds the hashbank topic's entries; no item is matched before."""

    async def process(self, messages: Sequence[Message]) -> list[Output]:
        """One output per message, in input order, then bank entries. Never raises."""
        if self.ready is not None and not self.ready.is_set():
            log.info("waiting for the hash bank to load from the hashbank topic")
            await self.ready.wait()
        received_at, now = utc_now(), time.time()
        self.metrics.items_consumed.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        slots = [Slot(message) for message in messages]
        self._each(slots, Stage.VALIDATE, lambda s: self._validate(s, now))
        self._each(slots, Stage.MATCH, self._match)
        checked_at = utc_now()
        await self._score([s for s in slots if s.live and s.match is None])
        self._each([s for s in slots if s.scores is not None], Stage.ROUTE, self._decide)
        times = Times(received_at, checked_at, utc_now())
        built = [self._build(slot, times) for slot in slots]
        outputs = [output for output, _ in built]
        if not self.learn:
            return outputs
        referrals = [
            (record, slot.signature)
            for slot, (output, record) in zip(slots, built, strict=True)
            if record is not None and record.decided_by is DecidedBy.MODEL
        ]
        return outputs + learn(self.bank, referrals, self.metrics)

    def delivered(self, outputs: Sequence[Output]) -> None:
        """Count ``outputs`` and their end-to-end latency once the broker has acknowledged them."""
        count_delivered(self.metrics, outputs)

    def _each(self, slots: Sequence[Slot], stage: Stage, step: Callable[[Slot], None]) -> None:
        """Run ``step`` on every live slot; a slot it raises on fails with ``internal_error``."""
        for slot in slots:
            if slot.live:
                try:
                    step(slot)
                except Exception as exc:
                    slot.failure = internal_error(self.metrics, stage, exc, slot.item_id)

    def _validate(self, slot: Slot, now: float) -> None:
        result = parse_item(slot.message.value, max_text_bytes=self.limits.max_text_bytes, now=now)
        if isinstance(result, Rejection):
            slot.failure = result
        else:
            slot.item = result

    def _match(self, slot: Slot) -> None:
        assert slot.item is not None
        slot.signature = signature(slot.item.text)
        slot.match = self.bank.match_signature(
            slot.signature, ignore_item=slot.item.id, as_of=slot.message.timestamp
        )

    async def _score(self, slots: list[Slot]) -> None:
        texts = [s.item.text for s in slots if s.item is not None]
        for slot, result in zip(slots, await self.scorer.score(texts), strict=True):
            if isinstance(result, Rejection):
                slot.failure = replace(result, item_id=slot.item_id)
            else:
                slot.scores = result
        scored = [s for s in slots if s.scores is not None]
        shadow = await self.scorer.score_shadow([s.item.text for s in scored if s.item is not None])
        if shadow is not None:
            for slot, scores in zip(scored, shadow, strict=True):
                slot.shadow_scores = scores

    def _decide(self, slot: Slot) -> None:
        """The slot's verdict by the policy, and the shadow model's by the same rule."""
        assert slot.scores is not None
        slot.verdict = verdict = self.policy.decide(slot.scores)
        for label, score in verdict.scores.items():
            self.metrics.score.labels(label=label).observe(score)
        self.metrics.model_scored.labels(role="live").inc()
        if verdict.flagged:
            self.metrics.model_flagged.labels(role="live").inc()
        if slot.shadow_scores is None or self.scorer.shadow_model is None or self.shadow_policy is None:
            return
        shadow = self.shadow_policy.decide(slot.shadow_scores)
        slot.shadow = ShadowBlock(
            model=self.scorer.shadow_model,
            scores=shadow.scores,
            labels=shadow.labels,
            flagged=shadow.flagged,
            agrees=shadow.flagged == verdict.flagged,
        )
        self.metrics.model_scored.labels(role="shadow").inc()
        if shadow.flagged:
            self.metrics.model_flagged.labels(role="shadow").inc()
        if slot.shadow.agrees:
            self.metrics.shadow_agreed.inc()

    def _build(self, slot: Slot, times: Times) -> tuple[Output, Referral | None]:
        """The slot's one output (its record, or its dead letter), and the referral to learn."""
        if slot.live:
            try:
                record = self.builder.record(slot, times, len(self.bank))
                output = bounded(
                    self.builder.output(slot, record),
                    slot.message,
                    times.received_at,
                    self.limits.max_message_bytes,
                )
            except Exception as exc:
                slot.failure = internal_error(self.metrics, Stage.ROUTE, exc, slot.item_id)
            else:
                referred = isinstance(record, Referral) and output.topic is not DLQ
                return output, record if referred else None  # type: ignore[return-value]
        assert slot.failure is not None
        return dead_letter(slot.failure, slot.message, times.received_at, self.builder.author_key), None
