"""The whole-topic readers against a scripted consumer: poison is skipped and kept for the warden,
reading resumes where it stopped after a broker error, and the lag is what Faust commits."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar
from unittest.mock import patch

from aiokafka import TopicPartition

from streams.app import update_lag
from streams.kafka.follower import Followed, TopicFollower, Warden
from streams.known_content.entry import Entry, remove_record
from streams.known_content.index import HashBank
from streams.metrics import Metrics
from streams.records import ErrorCode
from streams.settings import Settings

TOPIC = "t.hashbank"
TP = TopicPartition(TOPIC, 0)


@dataclass
class Record:
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 1_764_000_000_000


def entry_record(entry_id: str) -> bytes:
    entry = Entry.from_text(
        f"fictional slogan {entry_id}",
        entry_id=entry_id,
        labels=("threat",),
        source={"type": "import"},
        added_at="2026-01-01T00:00:00Z",
    )
    return json.dumps(entry.as_record()).encode()


class ScriptedConsumer:
    """Stands in for AIOKafkaConsumer: each connection serves its script of fetches from the
    position it is sought to, then fails (a broker error) or keeps answering empty."""

    log: ClassVar[list[Record]] = []
    connections: ClassVar[list[ScriptedConsumer]] = []
    fail_after: ClassVar[deque[int]] = deque()

    def __init__(self, **config: Any) -> None:
        self.sought: dict[TopicPartition, int] = {}
        self.initial: dict[TopicPartition, int] = {}
        self.fetches = 0
        self.fail_at = self.fail_after.popleft() if self.fail_after else None
        ScriptedConsumer.connections.append(self)

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def topics(self) -> set[str]:
        return {TOPIC}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.initial.setdefault(tp, offset)
        self.sought[tp] = offset

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.log)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        self.fetches += 1
        if self.fail_at is not None and self.fetches > self.fail_at:
            raise ConnectionError("the broker went away")
        start = self.sought[TP]
        batch = self.log[start : start + 2]
        self.sought[TP] = start + len(batch)
        await asyncio.sleep(0)
        return {TP: batch} if batch else {}


async def test_poison_is_skipped_kept_and_reading_resumes_after_a_broker_error() -> None:
    ScriptedConsumer.log = [
        Record(0, entry_record("a")),
        Record(1, b"[" * 1000 + b"]" * 1000),  # nested at the recursion limit
        Record(2, b'{"schema_version": 2, "op": "add", "entry_id": "\\ud800"}'),
        Record(3, None),
        Record(4, json.dumps(remove_record("a")).encode()),
        Record(5, entry_record("b")),
    ]
    ScriptedConsumer.connections = []
    ScriptedConsumer.fail_after = deque([2])  # the first connection fails after two fetches
    bank, metrics = HashBank(), Metrics()
    applied: list[int] = []

    def apply(record: Followed) -> str | None:
        applied.append(record.source.offset)
        return bank.apply_record(record.value)

    follower = TopicFollower(
        Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t."),
        "hashbank",
        apply,
        invalid_code=ErrorCode.INVALID_HASHBANK_RECORD,
        metrics=metrics,
    )
    with (
        patch("streams.kafka.follower.AIOKafkaConsumer", ScriptedConsumer),
        patch("streams.kafka.follower.RETRY_S", 0.01),
    ):
        task = asyncio.ensure_future(follower.run())
        assert await follower.caught_up(5.0)
        task.cancel()
    assert applied == [0, 1, 2, 3, 4, 5], "every record once: no replay from the beginning after the error"
    first, second = ScriptedConsumer.connections[:2]
    assert first.initial[TP] == 0 and second.initial[TP] == 4, "the second connection resumes at 4"
    assert list(bank._entries) == ["b"], "the removal stays applied"
    assert [i.source.offset for i in follower.invalid] == [1, 2, 3]
    assert {i.rejection.code for i in follower.invalid} == {ErrorCode.INVALID_HASHBANK_RECORD}
    assert metrics.followed_invalid.labels(topic="hashbank")._value.get() == 3
    assert metrics.follower_ready.labels(topic="hashbank")._value.get() == 1
    assert await follower.reached(0, 6, 0.1) and not await follower.reached(0, 7, 0.1)


async def test_a_view_that_raises_counts_as_an_invalid_record() -> None:
    ScriptedConsumer.log = [Record(0, b"{}"), Record(1, b"{}")]
    ScriptedConsumer.connections, ScriptedConsumer.fail_after = [], deque()
    calls: list[int] = []

    def apply(record: Followed) -> str | None:
        calls.append(record.source.offset)
        if record.source.offset == 0:
            raise KeyError("a bug")
        return None

    follower = TopicFollower(
        Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t."),
        "hashbank",
        apply,
        invalid_code=ErrorCode.INVALID_HASHBANK_RECORD,
        metrics=Metrics(),
    )
    with patch("streams.kafka.follower.AIOKafkaConsumer", ScriptedConsumer):
        task = asyncio.ensure_future(follower.run())
        assert await follower.caught_up(5.0)
        task.cancel()
    assert calls == [0, 1] and [i.rejection.message for i in follower.invalid] == ["internal error: KeyError"]


def test_only_the_warden_dead_letters_and_once() -> None:
    follower = SimpleNamespace(invalid=deque())
    from streams.kafka.follower import Invalid
    from streams.records import Rejection, SourcePosition, Stage

    source = SourcePosition("t.review", 1, 7)
    follower.invalid.append(
        Invalid(
            Rejection(ErrorCode.INVALID_REVIEW_RECORD, "forged", stage=Stage.FOLLOW),
            b'{"x": 1}',
            source,
            None,
        )
    )
    holds = [False]
    warden = Warden([follower], lambda: holds[0])  # type: ignore[list-item]
    assert warden.due("2026-11-20T09:14:03.000Z") == []
    holds[0] = True
    [(key, output)] = warden.due("2026-11-20T09:14:03.000Z")
    record = json.loads(output.value)
    assert key == "t.review:1:7" and output.key == b"t.review:1:7"
    assert record["error"]["code"] == "invalid_review_record" and record["stage"] == "follow"
    warden.sent([key])
    assert warden.due("2026-11-20T09:14:03.000Z") == []


def test_lag_is_the_end_less_the_committed_offset() -> None:
    tp0, tp1, other = TopicPartition("c", 0), TopicPartition("c", 1), TopicPartition("x", 0)
    app = SimpleNamespace(
        monitor=SimpleNamespace(tp_committed_offsets={tp0: 10}),
        consumer=SimpleNamespace(
            assignment=lambda: {tp0, tp1, other}, highwater={tp0: 10, tp1: 5, other: 9}.get
        ),
    )
    metrics = Metrics()
    update_lag(app, SimpleNamespace(topics=("c",)), metrics)  # type: ignore[arg-type]
    lag = {s.labels["partition"]: s.value for s in metrics.consumer_lag.collect()[0].samples}
    assert lag == {"0": 0.0, "1": 5.0}, "a committed offset is already the next one to read"
