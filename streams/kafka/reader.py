"""Reading topics from their beginning with kafka-python, for the tools: every partition, no
consumer group, nothing committed. :func:`read_to_end` stops at the end of every partition (the
rule of :mod:`streams.kafka.end`); the demo, the bench and the tests follow output topics with a
:class:`TopicReader` until the records they wait for have arrived."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from streams.kafka.config import client_config
from streams.kafka.end import at_end, partition_end
from streams.settings import Settings


class TopicReader:
    """Reads every partition of ``topics`` (full names) from the beginning. A topic that does not
    exist is read as empty, or raises :class:`LookupError` unless ``missing_ok``. Use it as a
    context manager."""

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        *,
        missing_ok: bool = True,
        fetch_max_wait_ms: int = 500,
    ) -> None:
        """``fetch_max_wait_ms``: how long the broker may hold a fetch with too little data
        (kafka-python's default, 500); a reader that times arrivals wants it short, as the
        embedded broker holds a fetch over several partitions for part of it."""
        self._consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            **client_config(settings),
        )
        try:
            existing = self._consumer.topics()
            missing = [topic for topic in topics if topic not in existing]
            if missing and not missing_ok:
                raise LookupError(f"no such topic: {', '.join(missing)}")
            self.partitions = [
                TopicPartition(topic, p)
                for topic in dict.fromkeys(topics)
                if topic in existing
                for p in sorted(self._consumer.partitions_for_topic(topic))
            ]
            self._listed: dict[TopicPartition, int] = {}
            if self.partitions:
                self._consumer.assign(self.partitions)
                self._listed = self._consumer.end_offsets(self.partitions)
                self._consumer.seek_to_beginning(*self.partitions)
        except BaseException:
            self._consumer.close()
            raise

    def poll(self, timeout_s: float = 0.5) -> list[ConsumerRecord]:
        """The records that arrived, waiting up to ``timeout_s`` for some."""
        if not self.partitions:  # nothing to read; kafka-python refuses to poll nothing
            time.sleep(timeout_s)
            return []
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        return [message for messages in batches.values() for message in messages]

    def ended(self) -> set[TopicPartition]:
        """The partitions read to their end (:func:`streams.kafka.end.at_end`)."""
        return {
            tp
            for tp in self.partitions
            if at_end(self._consumer.position(tp), self._consumer.highwater(tp), self._listed[tp])
        }

    def pause(self, partitions: set[TopicPartition]) -> None:
        """Read no more of ``partitions``."""
        if partitions:
            self._consumer.pause(*partitions)

    def describe(self, tp: TopicPartition) -> str:
        """Where the reader is in ``tp``, for a message."""
        end = partition_end(self._consumer.highwater(tp), self._listed[tp])
        shown = self._listed[tp] if end is None else end
        return f"{tp.topic}[{tp.partition}] at {self._consumer.position(tp)} of {shown}"

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def read_to_end(
    settings: Settings,
    topics: Sequence[str],
    *,
    timeout_s: float,
    max_records: int | None = None,
    missing_ok: bool = True,
) -> Iterator[ConsumerRecord]:
    """Every record of ``topics`` (full names) from the beginning to the end of each partition, in
    partition order, or the first ``max_records``. Records written while it reads may be included.
    A missing topic is empty, or raises :class:`LookupError` unless ``missing_ok``. Raises
    :class:`TimeoutError` when the end is not reached within ``timeout_s``."""
    with TopicReader(settings, topics, missing_ok=missing_ok) as reader:
        remaining = set(reader.partitions)
        deadline = time.monotonic() + timeout_s
        count = 0
        while remaining:
            if time.monotonic() > deadline:
                behind = ", ".join(reader.describe(tp) for tp in sorted(remaining))
                raise TimeoutError(f"did not reach the end of the topics within {timeout_s:g} s: {behind}")
            for message in reader.poll():
                yield message
                count += 1
                if max_records is not None and count >= max_records:
                    return
            done = reader.ended() & remaining
            reader.pause(done)
            remaining -= done
