"""Whole-topic readers: every worker keeps its own copy of the hash bank and of the review queue.

A consumer group splits partitions between workers, but each worker must know every bank entry
(to match any item) and every review record (to turn any reviewer's decision into a referral).
So each worker reads these topics whole, from the beginning and then as they grow, with its own
group-less aiokafka consumer, and applies each record to a local view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.settings import Settings

log = logging.getLogger(__name__)

RETRY_S = 2.0
FETCH_MAX_WAIT_MS = 500
"""These topics change rarely and a short delay does not matter: long fetches keep an idle
worker's reading cheap (the content consumer waits 100 ms, :mod:`streams.transport`)."""


class TopicFollower:
    """Reads one topic from the beginning for as long as the worker runs; ``apply`` gets each
    record's key and JSON value (values that are not JSON objects are logged and skipped)."""

    def __init__(self, settings: Settings, topic: str, apply: Callable[[bytes | None, dict[str, Any]], None]):
        self.settings = settings
        self.topic = topic
        self.apply = apply
        self.ready = asyncio.Event()
        """Set once everything the topic held when the worker started has been applied."""
        self.skipped = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._rounds = 0
        self._progress = asyncio.Condition()

    async def run(self) -> None:
        """Follow the topic; reconnects after errors. Runs until cancelled."""
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

    def _at_end(self) -> bool:
        """Whether every partition's position is at the high watermark of its latest fetch. (The
        listed end offsets will not do: Tansu 0.6 lists less after multi-record produce requests.)"""
        consumer = self._consumer
        if consumer is None:
            return False
        for tp, position in self._positions.items():
            highwater = consumer.highwater(tp)
            if highwater is None or position < highwater:
                return False
        return True

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            client_id=f"propwatch-follow-{self.topic}",
            **self.settings.kafka_python_config(),
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            self._positions = dict.fromkeys(assigned, 0)
            self._consumer = consumer
            while True:
                batches = await consumer.getmany(timeout_ms=FETCH_MAX_WAIT_MS, max_records=1000)
                for tp, messages in batches.items():
                    for message in messages:
                        self._apply(message.key, message.value)
                        self._positions[tp] = message.offset + 1
                async with self._progress:
                    self._rounds += 1
                    if not self.ready.is_set() and self._at_end():
                        log.info("%s: read to the end (%d records skipped)", self.topic, self.skipped)
                        self.ready.set()
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
        return set(partitions)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            record = json.loads(value) if value is not None else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self.skipped += 1
            log.warning("%s: skipped a record that is not a JSON object (key %r)", self.topic, key)
            return
        try:
            self.apply(key, record)
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped += 1
            log.warning("%s: skipped a record (key %r): %s", self.topic, key, exc)
