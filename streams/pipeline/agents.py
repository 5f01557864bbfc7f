"""The Faust wiring: an agent that micro-batches a topic, runs a :class:`Processor` on each batch
off the event loop, sends its outputs, and acks only after the broker's acks; and the fatal stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import faust

from streams.kafka.topics import TopicSpec
from streams.pipeline.delivery import dead_letter as dead_letter  # streams.kafka.follower's import
from streams.pipeline.delivery import send_all
from streams.pipeline.messages import Message, Output
from streams.records import SourcePosition, plausible_timestamp

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0
"""On SIGTERM the batch in hand gets this long to be classified, sent and acknowledged."""


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
