"""What the worker does with a batch of content messages: validate, match, classify, route.

:class:`BatchProcessor` holds the logic and knows nothing of Faust, so it is tested directly;
:func:`install_agent` wires it to a Faust app with micro-batching and at-least-once sends.

No exception crosses the boundary of one message. A batch is a list of :class:`Slot`\\ s, one per
message; each step fills its part of every slot it can and records a failure in the slot it
cannot, so a failing step costs that one message a dead letter (``internal_error``, with the
exception's type, never its text) and the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import numbers
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import faust

from classifiers.base import Classifier, Scores
from streams.kafka.topics import CLEARED, DLQ, HASHBANK, REFERRALS, REVIEW, TopicSpec
from streams.known_content.entry import Entry
from streams.known_content.index import HashBank, Match
from streams.known_content.signature import NORMALISATION, Signature, signature
from streams.metrics import Metrics
from streams.records import (
    SCHEMA_VERSION,
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
    plausible_timestamp,
    referral_record,
    review_record,
    subject,
    utc_now,
)

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0
"""On SIGTERM the batch in hand gets this long to be classified, sent and acknowledged."""
REQUEST_FRAMING_BYTES = 1024
"""What a produce request adds to one record's key and value (batch and record headers), at most."""


@dataclass(frozen=True)
class Message:
    """One consumed message: its bytes and where it came from."""

    value: bytes
    source: SourcePosition
    timestamp: float | None = None
    """When the broker got the message (produce or append time), epoch seconds; None when the
    message had none or one :mod:`datetime` cannot hold (see :func:`streams.records.plausible_timestamp`)."""
    key: bytes | None = None


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

    @property
    def size(self) -> int:
        """Bytes this record takes in a produce request, at most."""
        return len(self.key) + len(self.value) + REQUEST_FRAMING_BYTES


class ClassifierContractError(RuntimeError):
    """The classifier returned something other than one finite score in [0, 1] per label per text."""


def internal_error(
    metrics: Metrics, stage: Stage, exc: BaseException, item_id: str | None = None
) -> Rejection:
    """The rejection of a message that a step failed on, logged and counted: the exception's type,
    never its text (which may quote the content)."""
    metrics.internal_errors.labels(stage=str(stage)).inc()
    log.error("internal error at %s: %s", stage, type(exc).__name__)
    log.debug("internal error at %s", stage, exc_info=exc)
    return Rejection(
        ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__} at {stage}", item_id=item_id, stage=stage
    )


def dead_letter(
    rejection: Rejection,
    message: Message,
    received_at: str,
    author_key: bytes | None = None,
) -> Output:
    """The dead letter of ``message``. Cannot fail: should building the full record fail, a
    record with the reason, source, length and SHA-256 but no payload takes its place."""
    key = (rejection.item_id or message.source.key).encode("utf-8")
    try:
        record = dlq_record(
            rejection, message.value, message.source, received_at=received_at, author_key=author_key
        )
        value = encode(record)
    except Exception as exc:  # the last record a message can get: it must not fail too
        log.error("could not build a dead letter (%s); sending it without its payload", type(exc).__name__)
        value = encode(
            {
                "schema_version": SCHEMA_VERSION,
                "item_id": rejection.item_id,
                "error": {"code": str(rejection.code), "message": rejection.message},
                "stage": str(rejection.stage),
                "payload": "",
                "payload_encoding": "utf-8",
                "payload_bytes": len(message.value),
                "payload_sha256": hashlib.sha256(message.value).hexdigest(),
                "payload_truncated": bool(message.value),
                "payload_redacted": False,
                "source": {
                    "topic": message.source.topic,
                    "partition": message.source.partition,
                    "offset": message.source.offset,
                },
                "received_at": received_at,
            }
        )
    return Output(DLQ, key, value, produced_at=message.timestamp, code=str(rejection.code))


def bounded(output: Output, message: Message, received_at: str, max_message_bytes: int) -> Output:
    """``output``, or a dead letter ``output_too_large`` when it would not fit one produce request
    (the limits on every field make this a safeguard, not a path records take)."""
    if output.size <= max_message_bytes:
        return output
    item_id = output.key.decode("utf-8", errors="replace") if output.topic is not DLQ else None
    rejection = Rejection(
        ErrorCode.OUTPUT_TOO_LARGE,
        f"its {output.topic.name} record is {output.size} bytes, over the {max_message_bytes} "
        "a request takes",
        item_id=item_id,
        stage=Stage.ROUTE,
    )
    return dead_letter(rejection, message, received_at)


def learned_entry(referral: dict[str, Any], known: Signature | None) -> Entry | None:
    """The hash bank entry for content the pipeline referred (``known``: the text's signature when
    it was already computed); None for a text with no letters or digits, which cannot be one."""
    sig = known or signature(referral["text"])
    if sig.empty:
        return None
    return Entry.from_signature(
        sig,
        entry_id=f"referral:{referral['referral_id']}",
        labels=tuple(referral["labels"]),
        source={"type": "referral", "referral_id": referral["referral_id"], "item_id": referral["item_id"]},
        added_at=referral["classified_at"],
    )


def bank_output(entry: Entry) -> Output:
    """The record that publishes ``entry`` to every worker's bank through the hashbank topic."""
    return Output(HASHBANK, entry.entry_id.encode("utf-8"), encode(entry.as_record()))


def check_scores(scores: Sequence[object], texts: int, labels: Sequence[str]) -> list[Scores]:
    """``scores`` if they are one map per text of every label to a finite number in [0, 1], else
    :class:`ClassifierContractError`: a NaN must never clear an item or reach a record."""
    if len(scores) != texts:
        raise ClassifierContractError(f"expected {texts} score maps, got {len(scores)}")
    for one in scores:
        if not isinstance(one, Mapping) or set(one) != set(labels):
            keys = sorted(map(str, one)) if isinstance(one, Mapping) else type(one).__name__
            raise ClassifierContractError(f"expected scores for {sorted(labels)}, got {keys}")
        for label in labels:
            value = one[label]
            # NaN and the infinities fail the range check too.
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
                raise ClassifierContractError(f"score of {label} is {value!r}, not a number in [0, 1]")
    return list(scores)  # type: ignore[arg-type]


@dataclass
class Slot:
    """One message on its way through a batch; each step fills its part."""

    message: Message
    item: ContentItem | None = None
    signature: Signature | None = None
    match: Match | None = None
    scores: Scores | None = None
    shadow: dict[str, Any] | None = None
    failure: Rejection | None = None
    referral: dict[str, Any] | None = field(default=None, repr=False)
    """The referral record the model made for it, for the bank to learn."""

    @property
    def live(self) -> bool:
        return self.failure is None


class BatchProcessor:
    """Turns a batch of content messages into exactly one output record each (plus the bank
    entries of what it referred): known content first, then the model, then the thresholds."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        thresholds: Mapping[str, float],
        max_text_bytes: int,
        max_message_bytes: int,
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
        self.max_message_bytes = max_message_bytes
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
        await self._shadow([s for s in slots if s.live and s.scores is not None])
        classified_at = utc_now()
        outputs = [self._output(s, received_at, checked_at, classified_at) for s in slots]
        return outputs + self._learn(slots)

    def _each(self, slots: Sequence[Slot], stage: Stage, step: Callable[[Slot], None]) -> None:
        """Run ``step`` on every live slot; a slot it raises on fails with ``internal_error``."""
        for slot in slots:
            if slot.live:
                try:
                    step(slot)
                except Exception as exc:
                    slot.failure = internal_error(
                        self.metrics, stage, exc, slot.item.id if slot.item else None
                    )

    def _validate(self, slot: Slot, now: float) -> None:
        result = parse_item(slot.message.value, max_text_bytes=self.max_text_bytes, now=now)
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
        """Scores for every slot; on a failing batch, retry item by item."""
        if not slots:
            return
        try:
            for slot, scores in zip(slots, await self._predict([s.item.text for s in slots]), strict=True):  # type: ignore[union-attr]
                slot.scores = scores
            return
        except Exception as exc:  # the model's failure must not take the batch down
            log.warning("classifier failed on a batch of %d (%s); retrying item by item", len(slots), exc)
        for slot in slots:
            assert slot.item is not None
            try:
                (slot.scores,) = await self._predict([slot.item.text])
            except Exception as exc:
                slot.failure = Rejection(
                    ErrorCode.CLASSIFIER_ERROR,
                    f"{type(exc).__name__}: {exc}"[:300],
                    item_id=slot.item.id,
                    stage=Stage.CLASSIFY,
                )

    async def _predict(self, texts: list[str]) -> list[Scores]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        scores = await loop.run_in_executor(self.executor, self.classifier.predict, texts)
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        return check_scores(scores, len(texts), list(self.thresholds))

    async def _shadow(self, slots: list[Slot]) -> None:
        """Score the same items with the shadow model; it routes nothing, and whatever goes wrong
        with it (an exception, a missing label, a NaN) is only counted."""
        if self.shadow is None or not slots:
            return
        loop = asyncio.get_running_loop()
        try:
            texts = [s.item.text for s in slots]  # type: ignore[union-attr]
            results = await loop.run_in_executor(self.executor, self.shadow.predict, texts)
            results = check_scores(results, len(slots), list(self.shadow_thresholds))
            model = ModelRef(self.shadow.name, self.shadow.revision).as_json()
            blocks = []
            for slot, shadow_scores in zip(slots, results, strict=True):
                assert slot.scores is not None
                scores = {label: round(float(shadow_scores[label]), 6) for label in self.shadow_thresholds}
                labels = [label for label, score in scores.items() if score >= self.shadow_thresholds[label]]
                live = any(slot.scores[label] >= threshold for label, threshold in self.thresholds.items())
                blocks.append(
                    {
                        "model": model,
                        "scores": scores,
                        "labels": labels,
                        "flagged": bool(labels),
                        "agrees": bool(labels) == live,
                    }
                )
        except Exception as exc:  # a candidate model must never disturb the live pipeline
            log.warning("shadow model failed on a batch of %d: %s", len(slots), type(exc).__name__)
            self.metrics.shadow_errors.inc()
            return
        for slot, block in zip(slots, blocks, strict=True):
            slot.shadow = block
            self.metrics.model_scored.labels(role="shadow").inc()
            if block["flagged"]:
                self.metrics.model_flagged.labels(role="shadow").inc()
            if block["agrees"]:
                self.metrics.shadow_agreed.inc()

    def _output(self, slot: Slot, received_at: str, checked_at: str, classified_at: str) -> Output:
        """The slot's one record: its verdict, or its dead letter."""
        if slot.live:
            try:
                output = self._verdict(slot, received_at, checked_at, classified_at)
            except Exception as exc:
                slot.referral = None
                slot.failure = internal_error(
                    self.metrics, Stage.ROUTE, exc, slot.item.id if slot.item else None
                )
            else:
                output = bounded(output, slot.message, received_at, self.max_message_bytes)
                if output.topic is DLQ:
                    slot.referral = None
                return output
        assert slot.failure is not None
        return dead_letter(slot.failure, slot.message, received_at, self.author_key)

    def _verdict(self, slot: Slot, received_at: str, checked_at: str, classified_at: str) -> Output:
        assert slot.item is not None
        custody = self._custody(slot, received_at, checked_at, classified_at)
        if slot.match is not None:
            output = self._known(slot, custody, checked_at)
        else:
            output = self._route(slot, custody, classified_at)
        observed = parse_rfc3339(slot.item.observed_at) if slot.item.observed_at else None
        return replace(
            output,
            produced_at=slot.message.timestamp,
            observed_at=observed.timestamp() if observed else None,
        )

    def _learn(self, slots: Sequence[Slot]) -> list[Output]:
        """What the model referred joins the bank: here at once (the next batches match it before
        the topic brings it back), and every other worker's through the hashbank topic. A text
        with no letters or digits cannot be an entry and is not learned."""
        if not self.learn:
            return []
        learned = []
        for slot in slots:
            if slot.referral is None:
                continue
            try:
                entry = learned_entry(slot.referral, slot.signature)
                if entry is None:
                    continue
                self.bank.add(entry)
                learned.append(bank_output(entry))
            except Exception as exc:  # the referral stands; only the bank misses it
                internal_error(self.metrics, Stage.MATCH, exc)
        return learned

    def delivered(self, outputs: Sequence[Output]) -> None:
        """Count ``outputs`` and their end-to-end latency once the broker has acknowledged them."""
        count_delivered(self.metrics, outputs)

    def _custody(
        self, slot: Slot, received_at: str, checked_at: str, classified_at: str
    ) -> list[dict[str, Any]]:
        assert slot.item is not None
        steps = []
        if slot.item.observed_at:
            steps.append(custody_step("captured", slot.item.observed_at, slot.item.platform or "source"))
        if slot.message.timestamp is not None:
            steps.append(
                custody_step(
                    "ingested",
                    epoch_to_rfc3339(slot.message.timestamp),
                    "kafka",
                    topic=slot.message.source.topic,
                    partition=slot.message.source.partition,
                    offset=slot.message.source.offset,
                )
            )
        steps.append(custody_step("received", received_at, self.actor))
        match = slot.match.as_json() if slot.match else None
        steps.append(
            custody_step("hash_checked", checked_at, self.actor, match=match, bank_entries=len(self.bank))
        )
        if slot.match is None:
            steps.append(
                custody_step(
                    "classified", classified_at, self.actor, model=self.model.as_json(), backend=self.backend
                )
            )
        return steps

    def _evidence(
        self, slot: Slot, custody: list[dict[str, Any]], scores: dict[str, float]
    ) -> dict[str, Any]:
        assert slot.item is not None and slot.signature is not None
        message = slot.message
        captured = slot.item.observed_at or (
            epoch_to_rfc3339(message.timestamp) if message.timestamp is not None else None
        )
        return {
            "captured_at": captured,
            "content_sha256": slot.item.content_sha256,
            "normalised_sha256": slot.signature.normalised_sha256,
            "normalisation": NORMALISATION,
            "model": None if slot.match else {**self.model.as_json(), "backend": self.backend},
            "thresholds": {"referral": self.thresholds, "review": self.review_thresholds},
            "scores": scores,
            "match": slot.match.as_json() if slot.match else None,
            "source": {
                "topic": message.source.topic,
                "partition": message.source.partition,
                "offset": message.source.offset,
            },
            "chain_of_custody": custody,
        }

    def _known(self, slot: Slot, custody: list[dict[str, Any]], checked_at: str) -> Output:
        assert slot.item is not None and slot.match is not None
        custody.append(custody_step("referred", checked_at, self.actor))
        record = referral_record(
            subject(slot.item, self.author_key),
            labels=list(slot.match.labels),
            decided_by=DecidedBy.HASHBANK,
            basis=f"hashbank\n{slot.match.entry_id}",
            scores={},
            thresholds=self.thresholds,
            model=None,
            classified_at=checked_at,
            evidence=self._evidence(slot, custody, {}),
            match=slot.match.as_json(),
        )
        return Output(
            REFERRALS,
            slot.item.id.encode("utf-8"),
            encode(record),
            labels=slot.match.labels,
            match=slot.match.type,
        )

    def _route(self, slot: Slot, custody: list[dict[str, Any]], classified_at: str) -> Output:
        """Referral, review or cleared by the thresholds; a referral is kept for the bank to learn."""
        assert slot.item is not None and slot.scores is not None
        scores = {label: round(float(slot.scores[label]), 6) for label in self.thresholds}
        for label, score in scores.items():
            self.metrics.score.labels(label=label).observe(score)
        self.metrics.model_scored.labels(role="live").inc()
        labels = [label for label, score in scores.items() if score >= self.thresholds[label]]
        key = slot.item.id.encode("utf-8")
        content = subject(slot.item, self.author_key)
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
                evidence=self._evidence(slot, custody, scores),
                shadow=slot.shadow,
            )
            slot.referral = record
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
                evidence=self._evidence(slot, custody, scores),
                shadow=slot.shadow,
            )
            return Output(REVIEW, key, encode(record))
        record = cleared_record(
            content,
            scores=scores,
            model=self.model.as_json(),
            classified_at=classified_at,
            shadow=slot.shadow,
        )
        return Output(CLEARED, key, encode(record))


def count_delivered(metrics: Metrics, outputs: Sequence[Output]) -> None:
    """Count delivered outputs, and their end-to-end latency: the one place where records become
    metrics (the content and the decide agent both use it)."""
    now = time.time()
    for output in outputs:
        if output.topic is HASHBANK:
            continue
        if output.topic is REFERRALS:
            metrics.referrals.inc()
            for label in output.labels:
                metrics.referred.labels(label=label).inc()
            if output.match:
                metrics.hashbank_matches.labels(type=output.match).inc()
        elif output.topic is CLEARED:
            metrics.cleared.inc()
        elif output.topic is REVIEW:
            metrics.review_queued.inc()
        elif output.topic is DLQ:
            metrics.dead_lettered.labels(code=output.code).inc()
        elif output.decision is not None:
            metrics.decisions.labels(decision=output.decision).inc()
        if output.produced_at is not None:
            metrics.end_to_end_seconds.labels(start="produced").observe(max(0.0, now - output.produced_at))
        if output.observed_at is not None:
            metrics.end_to_end_seconds.labels(start="observed").observe(max(0.0, now - output.observed_at))


class Processor(Protocol):
    """What an agent installed by :func:`install_agent` runs on each batch."""

    async def process(self, messages: Sequence[Message]) -> list[Output]: ...

    def delivered(self, outputs: Sequence[Output]) -> None: ...


class Fatal:
    """Whether the worker hit a failure it cannot go on from; set once, then it stops and exits
    non-zero (``propwatch worker`` turns it into exit code :data:`EXIT_FATAL`)."""

    EXIT_FATAL = 70  # EX_SOFTWARE

    def __init__(self, stop: Callable[[], None] | None = None) -> None:
        self.reason: str | None = None
        self._stop = stop or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        """Faust's own graceful stop by default: it commits what was acknowledged."""

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.critical("cannot go on: %s; stopping so that the worker is restarted", reason)
            self._stop()


class InFlight:
    """Batches taken from a topic and not yet acknowledged, for the stall metric: the age of the
    oldest one is what grows when a worker is stuck, whatever the reason."""

    def __init__(self) -> None:
        self._started: dict[int, float] = {}
        self._next = 0

    def begin(self) -> int:
        self._next += 1
        self._started[self._next] = time.monotonic()
        return self._next

    def end(self, token: int) -> None:
        self._started.pop(token, None)

    def oldest_age(self) -> float:
        return time.monotonic() - min(self._started.values()) if self._started else 0.0


def install_agent(
    app: faust.App,
    source: faust.TopicT,
    topics: Mapping[TopicSpec, faust.TopicT],
    processor: Processor,
    *,
    name: str,
    batch_size: int,
    batch_wait_s: float,
    fatal: Fatal,
    inflight: InFlight,
) -> faust.types.AgentT:
    """An agent on ``source``: micro-batches, processes off the event loop, sends, then acks.

    ``noack_take`` batches like ``take`` but leaves acking to us: a batch's offsets become
    committable only after the broker has acknowledged every one of its outputs. A crash, a
    SIGTERM or a rebalance before that leaves them uncommitted, so the batch is redelivered
    (at-least-once); deterministic keys and ids make the repeat idempotent. While one batch's
    outputs are being sent, the next batch is already processed; deliveries stay in order.

    ``processor.process`` does not raise (it turns every failure into a dead letter). Should it
    raise all the same, the batch can never be acknowledged: rather than wedge silently, the
    worker trips ``fatal`` and stops, to be restarted.
    """

    async def handle(
        stream: faust.StreamT,
        events: Sequence[faust.EventT],
        processed: asyncio.Event,
        previous: asyncio.Future[None] | None,
        token: int,
    ) -> None:
        try:
            messages = [
                Message(
                    event.message.value if event.message.value is not None else b"",
                    SourcePosition(event.message.topic, event.message.partition, event.message.offset),
                    plausible_timestamp(event.message.timestamp),
                    event.message.key,
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
            inflight.end(token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the batch can never be acknowledged
            processed.set()
            log.debug("the %s agent failed", name, exc_info=exc)
            fatal.trip(f"the {name} agent failed on a batch ({type(exc).__name__})")

    async def consume(stream: faust.StreamT) -> None:
        latest: asyncio.Future[None] | None = None
        try:
            async for events in stream.noack_take(batch_size, within=batch_wait_s):
                processed = asyncio.Event()
                latest = asyncio.ensure_future(handle(stream, events, processed, latest, inflight.begin()))
                waiter = asyncio.ensure_future(processed.wait())
                try:
                    await asyncio.wait({waiter, latest}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if fatal.reason is not None:
                    break
        except asyncio.CancelledError:
            # The worker is stopping: finish the batches in hand (bounded) so that their offsets
            # are committed and a restart repeats nothing; past the bound they are redelivered.
            if latest is not None and not latest.done():
                log.info("stopping: finishing the batches in hand (at most %.0f s)", DRAIN_TIMEOUT_S)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(latest), DRAIN_TIMEOUT_S)
            raise
        if fatal.reason is not None:
            await asyncio.Event().wait()  # the worker is stopping; take nothing more

    return app.agent(source, name=name)(consume)


async def send_all(
    topics: Mapping[TopicSpec, faust.TopicT], outputs: Sequence[Output], retry_s: float = 1.0
) -> None:
    """Send every output and wait for the broker's acknowledgements, retrying what failed.

    Never gives up while the worker runs: an output that cannot be sent must not let its input's
    offset be committed (the stall metric shows a worker stuck here). A send that raises at once,
    before any future, fails like one whose future failed. Cancellation (the worker stopping)
    leaves the batch unacknowledged.
    """
    pending = list(outputs)
    while pending:
        results: list[object] = []
        for output in pending:
            try:
                results.append(await topics[output.topic].send(key=output.key, value=output.value))
            except Exception as exc:
                results.append(exc)
        waiting = [r for r in results if inspect.isawaitable(r)]
        outcomes = iter(await asyncio.gather(*waiting, return_exceptions=True))
        results = [next(outcomes) if inspect.isawaitable(r) else r for r in results]
        failed = [o for o, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = next(r for r in results if isinstance(r, BaseException))
            log.warning(
                "%d of %d sends failed (%r); retrying in %.0f s", len(failed), len(pending), first, retry_s
            )
            await asyncio.sleep(retry_s)
        pending = failed
