"""Reading the report's topics from a broker: every record of each, to the end of the topic."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.safejson import NotJson, parse_object
from streams.settings import Settings

TOPICS: tuple[str, ...] = ("referrals", "cleared", "review", "dlq", "decisions")
"""The topics (short names) the report reads."""
Record = dict[str, Any]
# --- Reading -----------------------------------------------------------------------------------


def read_topics(
    settings: Settings,
    short_names: Iterable[str] = TOPICS,
    *,
    timeout_s: float = 60.0,
    unreadable: dict[str, int] | None = None,
) -> dict[str, list[Record]]:
    """Every record of the topics ``short_names``, from the beginning to their ends, as parsed JSON
    objects; ``{short name: [record, ...]}`` in partition order.

    It stops when every partition's position reaches its end (see :func:`_read_to_ends`), not
    after a silence; records written while it reads may be included. No consumer group is
    joined and nothing is committed. A topic that does not exist yet is empty. Values that
    :func:`parse_record` cannot read are skipped; when ``unreadable`` is given, their count per
    short name is added to it. Raises :class:`TimeoutError` when the end is not reached within
    ``timeout_s``.
    """
    names = list(dict.fromkeys(short_names))
    result: dict[str, list[Record]] = {name: [] for name in names}
    skipped: Counter[str] = Counter()
    short = {settings.topic(name): name for name in names}
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **settings.kafka_python_config())
    try:
        existing = consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in short
            if topic in existing
            for p in sorted(consumer.partitions_for_topic(topic))
        ]
        if partitions:
            consumer.assign(partitions)
            ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
            consumer.seek_to_beginning(*partitions)
            _read_to_ends(consumer, ends, short, result, skipped, timeout_s)
    finally:
        consumer.close()
    if unreadable is not None:
        for name, count in skipped.items():
            unreadable[name] = unreadable.get(name, 0) + count
    return result


def _read_to_ends(
    consumer: KafkaConsumer,
    ends: Mapping[TopicPartition, int],
    short: Mapping[str, str],
    result: dict[str, list[Record]],
    skipped: Counter[str],
    timeout_s: float,
) -> None:
    """Poll the assigned partitions until each one's position reaches its end: the larger of the
    end offset listed at the start and the high watermark of the latest fetch. The embedded broker
    (Tansu 0.6) lists less than the high watermark once one produce request carried several
    records to a partition, so the listed offset alone would stop short."""

    def end(tp: TopicPartition) -> int | None:
        highwater = consumer.highwater(tp)
        return None if highwater is None else max(ends[tp], highwater)

    remaining = set(ends)
    deadline = time.monotonic() + timeout_s
    while remaining:
        if time.monotonic() > deadline:
            behind = ", ".join(
                f"{tp.topic}[{tp.partition}] at {consumer.position(tp)} of {end(tp) or ends[tp]}"
                for tp in sorted(remaining)
            )
            raise TimeoutError(f"did not reach the end of the topics within {timeout_s:g} s: {behind}")
        for tp, messages in consumer.poll(timeout_ms=500).items():
            for message in messages:
                value = parse_record(message.value)
                if value is None:
                    skipped[short[tp.topic]] += 1
                else:
                    result[short[tp.topic]].append(value)
        if done := {
            tp for tp in remaining if (last := end(tp)) is not None and consumer.position(tp) >= last
        }:
            consumer.pause(*done)
            remaining -= done


def parse_record(value: bytes | None) -> Record | None:
    """A message value as a record, or None when it is not one: a tombstone, or anything
    :func:`streams.safejson.parse_object` refuses (not UTF-8 or not JSON, not an object, a number
    out of range, nesting deeper than ``MAX_DEPTH``, a lone surrogate). Never raises: whoever can
    write to a topic must not be able to stop the report for the topic's whole retention."""
    if value is None:
        return None
    parsed = parse_object(value)
    return None if isinstance(parsed, NotJson) else parsed
