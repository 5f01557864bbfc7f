"""What the worker does with a batch of content messages: validate, classify, route.

:class:`BatchProcessor` holds the logic and knows nothing of Faust, so it is tested directly;
:func:`install_agent` wires it to a Faust app with micro-batching and at-least-once sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Protocol

import faust

from classifiers.base import Classifier, Scores
from streams.hashbank import NORMALISATION, Entry, HashBank, Match, Signature, signature
from streams.metrics import Metrics
from streams.records import (
    ContentItem,
    DecidedBy,
    ErrorCode,
    ModelRef,
    Rejection,
    SourcePosition,
    Stage,
    cleared_record,
    custody_step,
    dlq_record,
    encode,
    epoch_to_rfc3339,
    model_basis,
    parse_item,
    parse_rfc3339,
    referral_record,
    review_record,
    subject,
    utc_now,
)
from streams.topics import CLEARED, DLQ, HASHBANK, REFERRALS, REVIEW, TopicSpec

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0
"""On SIGTERM the batch in hand gets this long to be classified, sent and acknowledged."""


@dataclass(frozen=True)
class Message:
    """One consumed content message: its bytes and where it came from."""

    value: bytes
    source: SourcePosition
    timestamp: float | None = None
    """When the broker got the message (produce or append time), epoch seconds."""


@dataclass(frozen=True)
class Output:
    """One record to send: its topic, key and JSON value."""

    topic: TopicSpec
    key: bytes
    value: bytes
    produced_at: float | None = None
    observed_at: float | None = None
    labels: tuple[str, ...] = ()
    """Referral labels (referrals only), counted once the broker has the record."""
    code: str | None = None
    """Error code (dead letters only)."""
    match: str | None = None
    """Match type (referrals of known content only)."""
    decision: str | None = None
    """approve or reject (labelled examples only)."""


class ClassifierContractError(RuntimeError):
    """The classifier returned something other than one score per label per text."""


def learned_entry(referral: dict[str, Any], known: Signature | None) -> Entry:
    """The hash bank entry for content the pipeline referred; ``known`` is the text's signature
    when it was already computed."""
    return Entry.from_signature(
        known or signature(referral["text"]),
        entry_id=f"referral:{referral['referral_id']}",
        labels=tuple(referral["labels"]),
        source={"type": "referral", "referral_id": referral["referral_id"], "item_id": referral["item_id"]},
        added_at=referral["classified_at"],
    )


def bank_output(entry: Entry) -> Output:
    """The record that publishes ``entry`` to every worker's bank through the hashbank topic."""
    return Output(HASHBANK, entry.entry_id.encode("utf-8"), encode(entry.as_record()))


@dataclass
class _Pending:
    """One valid item on its way through a batch."""

    item: ContentItem
    message: Message
    signature: Signature
    match: Match | None = None
    scores: Scores | Rejection | None = None
    shadow: dict[str, Any] | None = None


class BatchProcessor:
    """Turns a batch of content messages into exactly one output record each (plus the bank
    entries of what it referred): known content first, then the model, then the thresholds."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        thresholds: Mapping[str, float],
        max_text_bytes: int,
        metrics: Metrics,
        executor: Executor,
        author_key: bytes | None = None,
        review_thresholds: Mapping[str, float] | None = None,
        bank: HashBank | None = None,
        learn: bool = True,
        shadow: Classifier | None = None,
        backend: str = "transformers",
        actor: str = "propwatch-worker",
        ready: asyncio.Event | None = None,
    ) -> None:
        self.classifier = classifier
        self.model = ModelRef(classifier.name, classifier.revision)
        self.thresholds = {label: thresholds[label] for label in classifier.labels}
        self.review_thresholds = {
            label: value for label, value in (review_thresholds or {}).items() if label in self.thresholds
        }
        self.max_text_bytes = max_text_bytes
        self.metrics = metrics
        self.executor = executor
        self.author_key = author_key
        self.bank = bank if bank is not None else HashBank()
        self.learn = learn
        self.shadow = shadow
        self.shadow_thresholds = {label: thresholds[label] for label in shadow.labels} if shadow else {}
        self.backend = backend
        self.actor = actor
        self.ready = ready
        """Set once the bank holds the hashbank topic's entries; no item is matched before."""

    async def process(self, messages: Sequence[Message]) -> list[Output]:
        """One output per message, in input order, then bank entries. Never raises for bad input or
        a bad model."""
        if self.ready is not None and not self.ready.is_set():
            log.info("waiting for the hash bank to load from the hashbank topic")
            await self.ready.wait()
        received_at = utc_now()
        self.metrics.items_consumed.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        parsed = [parse_item(m.value, max_text_bytes=self.max_text_bytes) for m in messages]
        pending = [
            _Pending(result, message, signature(result.text))
            for message, result in zip(messages, parsed, strict=True)
            if isinstance(result, ContentItem)
        ]
        for p in pending:
            p.match = self.bank.match_signature(p.signature, ignore_item=p.item.id)
        checked_at = utc_now()
        unknown = [p for p in pending if p.match is None]
        for p, scores in zip(unknown, await self._classify([p.item for p in unknown]), strict=True):
            p.scores = scores
        scored = [p for p in unknown if not isinstance(p.scores, Rejection)]
        await self._shadow(scored)
        classified_at = utc_now()
        by_message = {id(p.message): p for p in pending}
        outputs, learned = [], []
        for message, result in zip(messages, parsed, strict=True):
            p = by_message.get(id(message))
            if isinstance(result, Rejection):
                output = self._dead_letter(result, message, received_at)
            elif isinstance(p.scores, Rejection):
                output = self._dead_letter(p.scores, message, received_at)
            else:
                custody = self._custody(p, received_at, checked_at, classified_at)
                if p.match is not None:
                    output = self._known(p, custody, checked_at)
                else:
                    output = self._route(p, custody, classified_at, learned)
                observed = parse_rfc3339(p.item.observed_at) if p.item.observed_at else None
                output = replace(output, observed_at=observed.timestamp() if observed else None)
            outputs.append(replace(output, produced_at=message.timestamp))
        return outputs + learned

    def delivered(self, outputs: Sequence[Output]) -> None:
        """Count ``outputs`` and their end-to-end latency once the broker has acknowledged them."""
        now = time.time()
        for output in outputs:
            if output.topic is HASHBANK:
                continue
            if output.topic is REFERRALS:
                self.metrics.referrals.inc()
                for label in output.labels:
                    self.metrics.referred.labels(label=label).inc()
                if output.match:
                    self.metrics.hashbank_matches.labels(type=output.match).inc()
            elif output.topic is CLEARED:
                self.metrics.cleared.inc()
            elif output.topic is REVIEW:
                self.metrics.review_queued.inc()
            else:
                self.metrics.dead_lettered.labels(code=output.code).inc()
            if output.produced_at is not None:
                self.metrics.end_to_end_seconds.labels(start="produced").observe(
                    max(0.0, now - output.produced_at)
                )
            if output.observed_at is not None:
                self.metrics.end_to_end_seconds.labels(start="observed").observe(
                    max(0.0, now - output.observed_at)
                )

    async def _classify(self, items: list[ContentItem]) -> list[Scores | Rejection]:
        """Scores for every item; on a failing batch, retry item by item."""
        if not items:
            return []
        try:
            return list(await self._predict([item.text for item in items]))
        except Exception as exc:  # the model's failure must not take the batch down
            log.warning("classifier failed on a batch of %d (%s); retrying item by item", len(items), exc)
        results: list[Scores | Rejection] = []
        for item in items:
            try:
                results.extend(await self._predict([item.text]))
            except Exception as exc:
                results.append(
                    Rejection(
                        ErrorCode.CLASSIFIER_ERROR,
                        f"{type(exc).__name__}: {exc}"[:1000],
                        item_id=item.id,
                        stage=Stage.CLASSIFY,
                    )
                )
        return results

    async def _predict(self, texts: list[str]) -> list[Scores]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        scores = await loop.run_in_executor(self.executor, self.classifier.predict, texts)
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        if len(scores) != len(texts) or any(set(s) != set(self.thresholds) for s in scores):
            raise ClassifierContractError(
                f"expected {len(texts)} score maps over {sorted(self.thresholds)}, got "
                f"{len(scores)} over {sorted({k for s in scores for k in s})}"
            )
        return scores

    async def _shadow(self, scored: list[_Pending]) -> None:
        """Score the same items with the shadow model; it routes nothing and its failure is only
        counted."""
        if self.shadow is None or not scored:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self.executor, self.shadow.predict, [p.item.text for p in scored]
            )
            if len(results) != len(scored):
                raise ClassifierContractError(f"{len(results)} score maps for {len(scored)} texts")
        except Exception as exc:  # a candidate model must never disturb the live pipeline
            log.warning("shadow model failed on a batch of %d: %s", len(scored), exc)
            self.metrics.shadow_errors.inc()
            return
        model = ModelRef(self.shadow.name, self.shadow.revision).as_json()
        for p, shadow_scores in zip(scored, results, strict=True):
            assert not isinstance(p.scores, Rejection) and p.scores is not None
            scores = {label: round(float(shadow_scores[label]), 6) for label in self.shadow_thresholds}
            labels = [label for label, score in scores.items() if score >= self.shadow_thresholds[label]]
            live = any(p.scores[label] >= threshold for label, threshold in self.thresholds.items())
            agrees = bool(labels) == live
            p.shadow = {
                "model": model,
                "scores": scores,
                "labels": labels,
                "flagged": bool(labels),
                "agrees": agrees,
            }
            self.metrics.model_scored.labels(role="shadow").inc()
            if labels:
                self.metrics.model_flagged.labels(role="shadow").inc()
            if agrees:
                self.metrics.shadow_agreed.inc()

    def _custody(
        self, p: _Pending, received_at: str, checked_at: str, classified_at: str
    ) -> list[dict[str, Any]]:
        steps = []
        if p.item.observed_at:
            steps.append(custody_step("captured", p.item.observed_at, p.item.platform or "source"))
        if p.message.timestamp is not None:
            steps.append(
                custody_step(
                    "ingested",
                    epoch_to_rfc3339(p.message.timestamp),
                    "kafka",
                    topic=p.message.source.topic,
                    partition=p.message.source.partition,
                    offset=p.message.source.offset,
                )
            )
        steps.append(custody_step("received", received_at, self.actor))
        match = p.match.as_json() if p.match else None
        steps.append(
            custody_step("hash_checked", checked_at, self.actor, match=match, bank_entries=len(self.bank))
        )
        if p.match is None:
            steps.append(
                custody_step(
                    "classified", classified_at, self.actor, model=self.model.as_json(), backend=self.backend
                )
            )
        return steps

    def _evidence(
        self, p: _Pending, custody: list[dict[str, Any]], scores: dict[str, float]
    ) -> dict[str, Any]:
        captured = p.item.observed_at or (
            epoch_to_rfc3339(p.message.timestamp) if p.message.timestamp is not None else None
        )
        return {
            "captured_at": captured,
            "content_sha256": p.item.content_sha256,
            "normalised_sha256": p.signature.normalised_sha256,
            "normalisation": NORMALISATION,
            "model": None if p.match else {**self.model.as_json(), "backend": self.backend},
            "thresholds": {"referral": self.thresholds, "review": self.review_thresholds},
            "scores": scores,
            "match": p.match.as_json() if p.match else None,
            "source": {
                "topic": p.message.source.topic,
                "partition": p.message.source.partition,
                "offset": p.message.source.offset,
            },
            "chain_of_custody": custody,
        }

    def _known(self, p: _Pending, custody: list[dict[str, Any]], checked_at: str) -> Output:
        assert p.match is not None
        custody.append(custody_step("referred", checked_at, self.actor))
        record = referral_record(
            subject(p.item, self.author_key),
            labels=list(p.match.labels),
            decided_by=DecidedBy.HASHBANK,
            basis=f"hashbank\n{p.match.entry_id}",
            scores={},
            thresholds=self.thresholds,
            model=None,
            classified_at=checked_at,
            evidence=self._evidence(p, custody, {}),
            match=p.match.as_json(),
        )
        return Output(
            REFERRALS, p.item.id.encode("utf-8"), encode(record), labels=p.match.labels, match=p.match.type
        )

    def _route(
        self, p: _Pending, custody: list[dict[str, Any]], classified_at: str, learned: list[Output]
    ) -> Output:
        """Referral, review or cleared by the thresholds; what is referred is ``learned`` by the bank."""
        assert p.scores is not None and not isinstance(p.scores, Rejection)
        scores = {label: round(float(p.scores[label]), 6) for label in self.thresholds}
        for label, score in scores.items():
            self.metrics.score.labels(label=label).observe(score)
        self.metrics.model_scored.labels(role="live").inc()
        labels = [label for label, score in scores.items() if score >= self.thresholds[label]]
        key = p.item.id.encode("utf-8")
        content = subject(p.item, self.author_key)
        if labels:
            self.metrics.model_flagged.labels(role="live").inc()
            custody.append(custody_step("referred", classified_at, self.actor))
            record = referral_record(
                content,
                labels=labels,
                decided_by=DecidedBy.MODEL,
                basis=model_basis(self.model),
                scores=scores,
                thresholds=self.thresholds,
                model=self.model.as_json(),
                classified_at=classified_at,
                evidence=self._evidence(p, custody, scores),
                shadow=p.shadow,
            )
            if self.learn:
                entry = learned_entry(record, p.signature)
                self.bank.add(entry)  # at once: the next batches here match it before the topic does
                learned.append(bank_output(entry))
            return Output(REFERRALS, key, encode(record), labels=tuple(labels))
        candidates = [
            label for label, threshold in self.review_thresholds.items() if scores[label] >= threshold
        ]
        if candidates:
            custody.append(custody_step("queued_for_review", classified_at, self.actor))
            record = review_record(
                content,
                labels=candidates,
                scores=scores,
                thresholds=self.thresholds,
                review_thresholds=self.review_thresholds,
                model=self.model,
                classified_at=classified_at,
                evidence=self._evidence(p, custody, scores),
                shadow=p.shadow,
            )
            return Output(REVIEW, key, encode(record))
        record = cleared_record(
            content, scores=scores, model=self.model.as_json(), classified_at=classified_at, shadow=p.shadow
        )
        return Output(CLEARED, key, encode(record))

    def _dead_letter(self, rejection: Rejection, message: Message, received_at: str) -> Output:
        key = (rejection.item_id or message.source.key).encode("utf-8")
        record = dlq_record(rejection, message.value, message.source, received_at=received_at)
        return Output(DLQ, key, encode(record), code=str(rejection.code))


class Processor(Protocol):
    """What an agent installed by :func:`install_agent` runs on each batch."""

    async def process(self, messages: Sequence[Message]) -> list[Output]: ...

    def delivered(self, outputs: Sequence[Output]) -> None: ...


def install_agent(
    app: faust.App,
    source: faust.TopicT,
    topics: Mapping[TopicSpec, faust.TopicT],
    processor: Processor,
    *,
    name: str,
    batch_size: int,
    batch_wait_s: float,
) -> faust.types.AgentT:
    """An agent on ``source``: micro-batches, processes off the event loop, sends, then acks.

    ``noack_take`` batches like ``take`` but leaves acking to us: a batch's offsets become
    committable only after the broker has acknowledged every one of its outputs. A crash, a
    SIGTERM or a rebalance before that leaves them uncommitted, so the batch is redelivered
    (at-least-once); deterministic keys and ids make the repeat idempotent. While one batch's
    outputs are being sent, the next batch is already processed; deliveries stay in order.
    """

    async def handle(
        stream: faust.StreamT,
        events: Sequence[faust.EventT],
        processed: asyncio.Event,
        previous: asyncio.Future[None] | None,
    ) -> None:
        messages = [
            Message(
                event.message.value,
                SourcePosition(event.message.topic, event.message.partition, event.message.offset),
                event.message.timestamp,
            )
            for event in events
        ]
        started = time.perf_counter()
        outputs = await processor.process(messages)
        processed.set()  # the next batch may be classified while this one is sent
        classified = time.perf_counter()
        if previous is not None:
            await previous  # deliveries, and so acks, stay in order
        await send_all(topics, outputs)
        processor.delivered(outputs)
        log.debug(
            "batch of %d: processed in %.1f ms, delivered %.1f ms later",
            len(events),
            (classified - started) * 1000,
            (time.perf_counter() - classified) * 1000,
        )
        for event in events:
            await stream.ack(event)

    async def consume(stream: faust.StreamT) -> None:
        latest: asyncio.Future[None] | None = None
        try:
            async for events in stream.noack_take(batch_size, within=batch_wait_s):
                processed = asyncio.Event()
                latest = asyncio.ensure_future(handle(stream, events, processed, latest))
                waiter = asyncio.ensure_future(processed.wait())
                try:
                    await asyncio.wait({waiter, latest}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        except asyncio.CancelledError:
            # The worker is stopping: finish the batches in hand (bounded) so that their offsets
            # are committed and a restart repeats nothing; past the bound they are redelivered.
            if latest is not None and not latest.done():
                log.info("stopping: finishing the batches in hand (at most %.0f s)", DRAIN_TIMEOUT_S)
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(latest), DRAIN_TIMEOUT_S)
            raise

    return app.agent(source, name=name)(consume)


async def send_all(
    topics: Mapping[TopicSpec, faust.TopicT], outputs: Sequence[Output], retry_s: float = 1.0
) -> None:
    """Send every output and wait for the broker's acknowledgements, retrying what failed.

    Never gives up while the worker runs: an output that cannot be sent must not let its input's
    offset be committed. Cancellation (the worker stopping) leaves the batch unacknowledged.
    """
    pending = list(outputs)
    while pending:
        futures = [await topics[o.topic].send(key=o.key, value=o.value) for o in pending]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [o for o, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = next(r for r in results if isinstance(r, BaseException))
            log.warning(
                "%d of %d sends failed (%r); retrying in %.0f s", len(failed), len(pending), first, retry_s
            )
            await asyncio.sleep(retry_s)
        pending = failed
