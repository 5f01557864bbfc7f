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

import faust

from classifiers.base import Classifier, Scores
from streams.metrics import Metrics
from streams.records import (
    ContentItem,
    ErrorCode,
    ModelRef,
    Rejection,
    SourcePosition,
    Stage,
    cleared_record,
    dlq_record,
    encode,
    parse_item,
    parse_rfc3339,
    referral_record,
    utc_now,
)
from streams.topics import CLEARED, CONTENT, DLQ, REFERRALS, TopicSpec

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


class ClassifierContractError(RuntimeError):
    """The classifier returned something other than one score per label per text."""


class BatchProcessor:
    """Turns a batch of content messages into exactly one output record each."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        thresholds: Mapping[str, float],
        max_text_bytes: int,
        metrics: Metrics,
        executor: Executor,
        author_key: bytes | None = None,
    ) -> None:
        self.classifier = classifier
        self.model = ModelRef(classifier.name, classifier.revision)
        self.thresholds = {label: thresholds[label] for label in classifier.labels}
        self.max_text_bytes = max_text_bytes
        self.metrics = metrics
        self.executor = executor
        self.author_key = author_key

    async def process(self, messages: Sequence[Message]) -> list[Output]:
        """One output per message, in input order. Never raises for bad input or a bad model."""
        received_at = utc_now()
        self.metrics.items_consumed.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        parsed = [parse_item(m.value, max_text_bytes=self.max_text_bytes) for m in messages]
        items = [p for p in parsed if isinstance(p, ContentItem)]
        scores = iter(await self._classify(items))
        classified_at = utc_now()
        outputs = []
        for message, result in zip(messages, parsed, strict=True):
            if isinstance(result, Rejection):
                output = self._dead_letter(result, message, received_at)
            else:
                verdict = next(scores)
                if isinstance(verdict, Rejection):
                    output = self._dead_letter(verdict, message, received_at)
                else:
                    output = self._route(result, verdict, classified_at)
                observed = parse_rfc3339(result.observed_at) if result.observed_at else None
                output = replace(output, observed_at=observed.timestamp() if observed else None)
            outputs.append(replace(output, produced_at=message.timestamp))
        return outputs

    def delivered(self, outputs: Sequence[Output]) -> None:
        """Count ``outputs`` and their end-to-end latency once the broker has acknowledged them."""
        now = time.time()
        for output in outputs:
            if output.topic is REFERRALS:
                self.metrics.referrals.inc()
                for label in output.labels:
                    self.metrics.referred.labels(label=label).inc()
            elif output.topic is CLEARED:
                self.metrics.cleared.inc()
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

    def _route(self, item: ContentItem, scores: Scores, classified_at: str) -> Output:
        scores = {label: round(float(scores[label]), 6) for label in self.thresholds}
        for label, score in scores.items():
            self.metrics.score.labels(label=label).observe(score)
        labels = [label for label, score in scores.items() if score >= self.thresholds[label]]
        key = item.id.encode("utf-8")
        if labels:
            record = referral_record(
                item,
                labels=labels,
                scores=scores,
                thresholds=self.thresholds,
                model=self.model,
                classified_at=classified_at,
                author_key=self.author_key,
            )
            return Output(REFERRALS, key, encode(record), labels=tuple(labels))
        record = cleared_record(item, scores=scores, model=self.model, classified_at=classified_at)
        return Output(CLEARED, key, encode(record))

    def _dead_letter(self, rejection: Rejection, message: Message, received_at: str) -> Output:
        key = (rejection.item_id or message.source.key).encode("utf-8")
        record = dlq_record(rejection, message.value, message.source, received_at=received_at)
        return Output(DLQ, key, encode(record), code=str(rejection.code))


def install_agent(
    app: faust.App,
    topics: Mapping[TopicSpec, faust.TopicT],
    processor: BatchProcessor,
    *,
    batch_size: int,
    batch_wait_s: float,
) -> faust.types.AgentT:
    """The ``classify`` agent: micro-batches, processes off the event loop, sends, then acks.

    ``noack_take`` batches like ``take`` but leaves acking to us: a batch's offsets become
    committable only after the broker has acknowledged every one of its outputs. A crash, a
    SIGTERM or a rebalance before that leaves them uncommitted, so the batch is redelivered
    (at-least-once); deterministic keys and ids make the repeat idempotent. While one batch's
    outputs are being sent, the next batch is already classified; deliveries stay in order.
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

    async def classify(stream: faust.StreamT) -> None:
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

    return app.agent(topics[CONTENT], name="classify")(classify)


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
