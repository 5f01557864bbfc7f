"""The Kafka layer without a broker: where a partition ends, reading topics to that end, and the
client options built from the settings."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from streams.kafka.end import at_end, partition_end
from streams.kafka.topics import HASHBANK, TOPICS
from streams.settings import Settings
from tests.unit.test_report import referral


def test_a_partition_ends_at_the_high_watermark_or_the_listed_end_if_larger() -> None:
    assert partition_end(None, 5) is None, "unknown until a fetch answers"
    assert partition_end(5, 1) == 5, "Tansu 0.6 lists 1 after one request of 5 records"
    assert partition_end(3, 5) == 5 and partition_end(4) == 4
    assert not at_end(0, None) and not at_end(0, None, 0)
    assert at_end(0, 0, 0), "an empty partition is read once a fetch says so"
    assert not at_end(1, 5, 1) and at_end(5, 5, 1)


def test_the_hashbank_topic_alone_is_compacted() -> None:
    assert HASHBANK.configs() == {"retention.ms": "-1", "cleanup.policy": "compact"}
    assert [spec.name for spec in TOPICS if "cleanup.policy" in spec.configs()] == ["hashbank"]


class _Message:
    def __init__(self, topic: str, offset: int, value: bytes | None) -> None:
        self.topic, self.offset, self.value = topic, offset, value


class _FakeConsumer:
    """Enough of kafka-python's KafkaConsumer for the reader: one message per poll and partition."""

    logs: ClassVar[dict[tuple[str, int], list[bytes | None]]] = {}
    ends: ClassVar[dict[tuple[str, int], int]] = {}

    def __init__(self, **config: object) -> None:
        assert config["group_id"] is None and config["enable_auto_commit"] is False
        self.positions: dict[Any, int] = {}
        self.paused: set[Any] = set()
        self.fetched: set[Any] = set()

    def topics(self) -> set[str]:
        return {topic for topic, _ in self.logs}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {p for t, p in self.logs if t == topic}

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = list(partitions)

    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {tp: self.ends[(tp.topic, tp.partition)] for tp in partitions}

    def seek_to_beginning(self, *partitions: Any) -> None:
        self.positions.update(dict.fromkeys(partitions, 0))

    def position(self, tp: Any) -> int:
        return self.positions[tp]

    def pause(self, *partitions: Any) -> None:
        self.paused.update(partitions)

    def highwater(self, tp: Any) -> int | None:
        """Known after a fetch of the partition, as in kafka-python."""
        return len(self.logs[(tp.topic, tp.partition)]) if tp in self.fetched else None

    def poll(self, timeout_ms: int) -> dict[Any, list[_Message]]:
        batches = {}
        self.fetched.update(tp for tp in self.assigned if tp not in self.paused)
        for tp in self.assigned:
            log = self.logs[(tp.topic, tp.partition)]
            if tp not in self.paused and self.positions[tp] < len(log):
                batches[tp] = [_Message(tp.topic, self.positions[tp], log[self.positions[tp]])]
                self.positions[tp] += 1
        return batches

    def close(self) -> None:
        pass


def test_read_topics_reads_to_the_high_watermark(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.kafka.reader
    import streams.reporting.read

    _FakeConsumer.logs = {
        ("propwatch.referrals", 0): [json.dumps(referral("a")).encode(), b"not json", None],
        ("propwatch.referrals", 1): [
            json.dumps(referral("b")).encode(),
            json.dumps(referral("late")).encode(),
        ],
        ("propwatch.dlq", 0): [b"[1, 2]"],
    }
    # The listed end of referrals[1] is short of its high watermark, as Tansu 0.6 lists it after a
    # produce request with several records: the reader goes on to the high watermark.
    _FakeConsumer.ends = {
        ("propwatch.referrals", 0): 3,
        ("propwatch.referrals", 1): 1,
        ("propwatch.dlq", 0): 1,
    }
    monkeypatch.setattr(streams.kafka.reader, "KafkaConsumer", _FakeConsumer)
    unreadable: dict[str, int] = {}
    records = streams.reporting.read.read_topics(
        Settings(), ["referrals", "dlq", "review"], unreadable=unreadable
    )
    assert sorted(r["item_id"] for r in records["referrals"]) == ["a", "b", "late"]
    assert records["dlq"] == [] and records["review"] == [], "a missing topic is empty"
    assert unreadable == {"referrals": 2, "dlq": 1}


def test_read_topics_gives_up_when_the_end_is_not_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.kafka.reader
    import streams.reporting.read

    _FakeConsumer.logs = {("propwatch.referrals", 0): []}
    _FakeConsumer.ends = {("propwatch.referrals", 0): 5}
    monkeypatch.setattr(streams.kafka.reader, "KafkaConsumer", _FakeConsumer)
    with pytest.raises(TimeoutError, match=r"propwatch.referrals\[0\] at 0 of 5"):
        streams.reporting.read.read_topics(Settings(), ["referrals"], timeout_s=0.05)


def test_read_to_end_stops_after_max_records_and_can_refuse_a_missing_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.kafka.reader

    _FakeConsumer.logs = {("t", 0): [b"1", b"2", b"3"], ("t", 1): [b"4"]}
    _FakeConsumer.ends = {("t", 0): 3, ("t", 1): 1}
    monkeypatch.setattr(streams.kafka.reader, "KafkaConsumer", _FakeConsumer)
    read = streams.kafka.reader.read_to_end
    assert sorted(m.value for m in read(Settings(), ["t"], timeout_s=5)) == [b"1", b"2", b"3", b"4"]
    assert len(list(read(Settings(), ["t"], timeout_s=5, max_records=2))) == 2
    assert list(read(Settings(), ["t", "absent"], timeout_s=5)) != []
    with pytest.raises(LookupError, match="no such topic: absent"):
        list(read(Settings(), ["t", "absent"], timeout_s=5, missing_ok=False))
