"""Whole-topic readers: every worker keeps its own hash bank, review queue and decision log.

A consumer group splits partitions between workers, but each worker must know every bank entry
(to match any item), every review record and every decision (to apply any reviewer's decision).
So each worker reads these topics whole, from the beginning and then as they grow, with its own
group-less aiokafka consumer, and applies each record to a local view.

Other systems write these topics, so a record can be anything. A view's ``apply`` says why a
record is invalid instead of raising (and should it raise, that counts the same): the record is
skipped, counted, and kept (bounded) for :class:`Warden` to dead-letter. A bad record never
stops or restarts the reading; after a broker error, reading resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge

from streams.kafka.config import client_config
from streams.kafka.end import at_end
from streams.pipeline.delivery import dead_letter
from streams.pipeline.messages import Message, Output
from streams.records import ErrorCode, Rejection, SourcePosition, Stage, plausible_timestamp
from streams.settings import Settings

log = logging.getLogger(__name__)

RETRY_S = 2.0
FETCH_MAX_WAIT_MS = 500
"""These topics change rarely and a short delay does not matter: long fetches keep an idle
worker's reading cheap (the content consumer waits 100 ms, :mod:`streams.kafka.transport`)."""
INVALID_KEPT = 10_000
"""Invalid records kept for the warden, at most (the oldest go first)."""


class FollowerMetrics(Protocol):
    """What a follower counts: the worker's :class:`~streams.metrics.Metrics` and the console's
    :class:`~streams.metrics.ConsoleMetrics` both have these, labelled by ``topic``."""

    followed_invalid: Counter
    follower_ready: Gauge


@dataclass(frozen=True)
class Followed:
    """One record read from a followed topic."""

    key: bytes | None
    value: bytes | None
    source: SourcePosition
    timestamp: float | None
    """The message's timestamp in epoch seconds, None when absent or implausible."""


@dataclass(frozen=True)
class Invalid:
    """A followed record a view refused, for a dead letter."""

    rejection: Rejection
    value: bytes
    source: SourcePosition
    timestamp: float | None


class TopicFollower:
    """Reads one topic from the beginning for as long as the worker runs; ``apply`` gets each
    record and returns why it is invalid, or None."""

    def __init__(
        self,
        settings: Settings,
        short_name: str,
        apply: Callable[[Followed], str | None],
        *,
        invalid_code: ErrorCode,
        metrics: FollowerMetrics,
        partitions: int | None = None,
        keep_invalid: bool = True,
    ) -> None:
        self.settings = settings
        self.short_name = short_name
        self.topic = settings.topic(short_name)
        self.apply = apply
        self.invalid_code = invalid_code
        self.metrics = metrics
        self.partitions = partitions
        """The partition count the topic must have (the decisions topic: one); else an error is logged."""
        self.ready = asyncio.Event()
        """Set once everything the topic held when the worker started has been applied."""
        self.invalid: deque[Invalid] = deque(maxlen=INVALID_KEPT if keep_invalid else 0)
        """The invalid records kept for :class:`Warden` (none when ``keep_invalid`` is false: a
        reader that dead-letters nothing, such as the review console, only counts them)."""
        self.skipped = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._rounds = 0
        self._progress = asyncio.Condition()

    async def run(self) -> None:
        """Follow the topic; reconnects after errors and resumes where it stopped. Runs until cancelled."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: the view stays, reading resumes
                log.warning("reading %s failed (%s); retrying in %.0f s", self.topic, exc, RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def caught_up(self, timeout_s: float) -> bool:
        """Wait until every record on the topic now has been applied; False after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.ready.wait()
                async with self._progress:
                    # Two more rounds of fetches: the high watermarks are then from after this call.
                    rounds = self._rounds + 2
                    await self._progress.wait_for(lambda: self._rounds >= rounds and self._at_end())
        except TimeoutError:
            return False
        return True

    async def reached(self, partition: int, offset: int, timeout_s: float) -> bool:
        """Wait until every record of ``partition`` before ``offset`` has been applied; False
        after ``timeout_s``."""
        tp = TopicPartition(self.topic, partition)
        try:
            async with asyncio.timeout(timeout_s), self._progress:
                await self._progress.wait_for(lambda: self._positions.get(tp, 0) >= offset)
        except TimeoutError:
            return False
        return True

    def _at_end(self) -> bool:
        """Whether every partition is read to its end (:func:`streams.kafka.end.at_end`, with the
        high watermark of its latest fetch)."""
        consumer = self._consumer
        if consumer is None:
            return False
        return all(at_end(position, consumer.highwater(tp)) for tp, position in self._positions.items())

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            client_id=f"propwatch-follow-{self.topic}",
            **client_config(self.settings),
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            for tp in assigned:  # resume where the last connection stopped; new partitions from 0
                consumer.seek(tp, self._positions.setdefault(tp, 0))
            self._consumer = consumer
            while True:
                batches = await consumer.getmany(timeout_ms=FETCH_MAX_WAIT_MS, max_records=1000)
                for tp, messages in batches.items():
                    for message in messages:
                        source = SourcePosition(tp.topic, tp.partition, message.offset)
                        self._apply(
                            Followed(
                                message.key,
                                message.value,
                                source,
                                plausible_timestamp(message.timestamp / 1000 if message.timestamp else None),
                            )
                        )
                        self._positions[tp] = message.offset + 1
                async with self._progress:
                    self._rounds += 1
                    if not self.ready.is_set() and self._at_end():
                        log.info("%s: read to the end (%d records skipped)", self.topic, self.skipped)
                        self.ready.set()
                        self.metrics.follower_ready.labels(topic=self.short_name).set(1)
                    self._progress.notify_all()
        finally:
            self._consumer = None
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[int]:
        await consumer.topics()  # a metadata request
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise LookupError(f"topic {self.topic} does not exist (run `propwatch topics create`)")
        if self.partitions is not None and len(partitions) != self.partitions:
            log.error(
                "%s has %d partitions, not %d: the order of its records across partitions is not "
                "defined (recreate it; `propwatch topics create` makes it so)",
                self.topic,
                len(partitions),
                self.partitions,
            )
        return set(partitions)

    def _apply(self, record: Followed) -> None:
        try:
            error = self.apply(record)
        except Exception as exc:  # a bug in a view must not stop the reading
            error = f"internal error: {type(exc).__name__}"
            log.debug("%s: applying %s failed", self.topic, record.source.key, exc_info=exc)
        if error is None:
            return
        self.skipped += 1
        self.metrics.followed_invalid.labels(topic=self.short_name).inc()
        log.warning("%s: skipped the record at %s: %s", self.topic, record.source.key, error[:200])
        rejection = Rejection(self.invalid_code, error, stage=Stage.FOLLOW)
        self.invalid.append(Invalid(rejection, record.value or b"", record.source, record.timestamp))


class Warden:
    """Dead-letters the invalid records the followers found, from one worker only: the one whose
    ``holds()`` is true (the holder of the decisions topic's partition, which one member of the
    group has at any time). Every worker keeps what its followers found, so a worker that takes
    over sends what it has again: the copies are keyed by their source position, and consumers
    (``propwatch report`` too) de-duplicate dead letters by it."""

    def __init__(self, followers: list[TopicFollower], holds: Callable[[], bool]) -> None:
        self.followers = followers
        self.holds = holds
        self._sent: set[str] = set()

    def due(self, received_at: str) -> list[tuple[str, Output]]:
        """The dead letters to send now, each with its source key (for :meth:`sent`)."""
        if not self.holds():
            return []
        due = []
        for follower in self.followers:
            for invalid in list(follower.invalid):
                if invalid.source.key not in self._sent:
                    message = Message(invalid.value, invalid.source, invalid.timestamp)
                    due.append((invalid.source.key, dead_letter(invalid.rejection, message, received_at)))
        return due

    def sent(self, keys: list[str]) -> None:
        self._sent.update(keys)
