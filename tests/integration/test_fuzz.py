"""The promise, proved against a running worker: hundreds of hostile messages among ordinary ones
on the content topic, and poison on the topics every worker reads whole. Every message ends as a
record (a verdict or a dead letter), the worker stays up and healthy, no internal error happens,
and the author of an item reaches no output topic and no log."""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from typing import Any

from confluent_kafka import Producer

from streams.kafka.reader import read_to_end
from streams.known_content.signature import normalised_sha256
from streams.records import ContentItem, SourcePosition, parse_item
from tests.integration.conftest import Deployment
from tests.integration.test_faults import health

AUTHOR = f"author-handle-{uuid.uuid4().hex[:10]}"
MAX_TEXT = 400_000


def ordinary(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"ok-{i:04d}",
            "text": f"Ordinary post {i} about the allotment and the weather",
            "platform": "forum",
            "lang": "en",
            "author": AUTHOR,
            "observed_at": "2026-11-20T09:14:03Z",
        }
    ).encode()


def hostile(rng: random.Random, i: int) -> bytes:
    """One hostile content message: a kind from the catalogue, in a random variant."""
    hid = f"h-{i:04d}"
    nest = rng.randint(900, 1100)
    digits = "9" * rng.randint(4301, 6000)
    author = f'"author": "{AUTHOR}"'
    kinds = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))),
        lambda: b"\xff\xfe" + AUTHOR.encode() + bytes(rng.getrandbits(8) for _ in range(20)),
        lambda: f'{{"id": "{hid}", "text": "t", {author}, "m": {"[" * nest}{"]" * nest}}}'.encode(),
        lambda: ("[" * nest + "]" * nest).encode(),
        lambda: f'{{"id": "{hid}", "text": "t", {author}, "n": {digits}}}'.encode(),
        lambda: f'{{"id": {digits}, "text": "t"}}'.encode(),
        lambda: f'{{"id": "{hid}\\ud800", "text": "t", {author}}}'.encode(),
        lambda: f'{{"id": "{hid}", "text": "t\\udfff", {author}}}'.encode(),
        lambda: f'{{"id": "{hid}", "text": "t", "platform": "x\\ud83d", {author}}}'.encode(),
        lambda: json.dumps(
            {"id": hid, "text": "t", "platform": "f\r\n| <script>", "author": AUTHOR}
        ).encode(),
        lambda: json.dumps({"id": hid, "text": "t", "lang": "\x1b[31men", "author": AUTHOR}).encode(),
        lambda: json.dumps({"id": hid, "text": "t\x00", "author": AUTHOR}).encode(),
        lambda: json.dumps({"id": hid + "\n", "text": "t"}).encode(),
        lambda: json.dumps({"id": hid, "text": "t", "observed_at": rng.choice(BAD_TIMES)}).encode(),
        lambda: f'{{"id": "{hid}", "text": "t", "x": {rng.choice(["NaN", "Infinity", "1e400"])}}}'.encode(),
        lambda: json.dumps(
            {"id": hid, "text": rng.choice(["🔥🔥🔥", "https://example.org/x", "‼️ 👀"])}
        ).encode(),
        lambda: json.dumps({"id": hid, "text": "", "author": AUTHOR}).encode(),
        lambda: json.dumps([hid, "text"]).encode(),
        lambda: b"null",
        lambda: json.dumps({"id": hid, "text": {"nested": ["x"] * 5}, "author": AUTHOR}).encode(),
        lambda: json.dumps({"id": "x" * 600, "text": "t"}).encode(),
    ]
    return rng.choice(kinds)()


BAD_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2099-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-13-01T00:00:00Z",
]

# Rare and large: the size limits, and a long valid text whose MinHash must stay bounded.
LARGE = [
    b'{"id": "big-quotes", "text": "' + b'\\"' * 450_000 + b'"}',  # 900 KB of escaped quotes
    b"\xff" * 900_000,  # 900 KB of invalid UTF-8
    json.dumps({"id": "big-valid", "text": "long fictional text " * 19_000, "author": AUTHOR}).encode(),
    json.dumps({"id": "big-over", "text": "x" * (MAX_TEXT + 1)}).encode(),
]


def produce(
    deployment: Deployment, topic: str, messages: list[tuple[bytes | None, bytes, int | None]]
) -> list[SourcePosition]:
    """Send ``(key, value, timestamp ms)`` messages in order, with confluent-kafka as an outside
    writer would (any timestamp, any bytes); returns where each landed."""
    producer = Producer({"bootstrap.servers": deployment.broker.bootstrap, "acks": "all", "linger.ms": 5})
    landed: list[SourcePosition | None] = [None] * len(messages)

    def report(index: int) -> Any:
        def done(error: Any, message: Any) -> None:
            assert error is None, error
            landed[index] = SourcePosition(message.topic(), message.partition(), message.offset())

        return done

    for index, (key, value, timestamp) in enumerate(messages):
        extra = {"timestamp": timestamp} if timestamp is not None else {}
        producer.produce(deployment.topic(topic), value, key=key, on_delivery=report(index), **extra)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert all(position is not None for position in landed)
    return landed  # type: ignore[return-value]


def raw_records(deployment: Deployment, topic: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of one topic as bytes, whatever they hold."""
    records = read_to_end(deployment.settings, [deployment.topic(topic)], timeout_s=60, missing_ok=False)
    return [(m.key or b"", m.value or b"") for m in records]


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(
        float(line.split()[-1])
        for line in lines
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_hostile_messages_through_a_running_worker(deployment: Deployment) -> None:
    rng = random.Random(784)
    worker = deployment.start_worker(
        PROPWATCH_BATCH_SIZE="16",
        PROPWATCH_AUTHOR_HASH_KEY="fuzz-key",
        PROPWATCH_LOG_LEVEL="debug",
    )
    messages: list[tuple[bytes | None, bytes, int | None]] = []
    for i in range(300):
        messages.append((f"ok-{i:04d}".encode(), ordinary(i), None))
        # a third of the hostile messages carry a Kafka timestamp datetime cannot hold
        stamp = rng.choice([None, None, 10**15, 253_402_300_800_000])
        messages.append((None, hostile(rng, i), stamp))
    for offset, large in zip((37, 211, 402, 555), LARGE, strict=True):
        messages.insert(offset, (None, large, None))
    sent = produce(deployment, "content", messages)

    # Poison on the followed topics, then a valid bank entry behind it: the bank still learns it.
    produce(
        deployment,
        "hashbank",
        [
            (b"p1", b"[" * 1000 + b"]" * 1000, None),
            (b"p2", b'{"schema_version": 2, "op": "remove", "entry_id": "a\\ud800"}', None),
            (b"p3", b'{"schema_version": ' + b"9" * 5000 + b"}", None),
            (b"p4", b"\xff\xfe", None),
            (
                b"known",
                json.dumps(
                    {
                        "schema_version": 2,
                        "op": "add",
                        "entry_id": "known",
                        "normalised_sha256": normalised_sha256("a fictional slogan of the Grey Heron Front"),
                        "minhash": None,
                        "labels": ["incitement"],
                        "source": {"type": "import"},
                        "added_at": "2026-01-01T00:00:00Z",
                    }
                ).encode(),
                None,
            ),
        ],
    )
    produce(
        deployment,
        "review",
        [(b"r1", b'{"review_id": "forged", "text": "x"}', None), (b"r2", b"[" * 999 + b"]" * 999, None)],
    )
    produce(
        deployment,
        "decisions",
        [
            (b"d1", b'{"review_id": "forged", "decision": "approve", "reviewer": "r"}', None),
            (b"d2", b"[" * 1000 + b"]" * 1000, None),
            (
                b"d3",
                b'{"review_id": "x", "decision": "approve", "reviewer": "r", "decision_id": "\\ud800"}',
                None,
            ),
        ],
    )
    time.sleep(3)  # the bank reads its topic
    [known] = produce(
        deployment,
        "content",
        [
            (
                b"k",
                json.dumps({"id": "k", "text": "A fictional slogan of the Grey Heron Front!"}).encode(),
                None,
            )
        ],
    )

    expected_verdicts: set[str] = {"k"}
    expected_dead: set[tuple[str, int, int]] = set()
    for (_, value, _), position in zip(messages, sent, strict=True):
        parsed = parse_item(value, max_text_bytes=MAX_TEXT)
        if isinstance(parsed, ContentItem):
            expected_verdicts.add(parsed.id)
        else:
            expected_dead.add((position.topic, position.partition, position.offset))
    assert len(expected_dead) > 250, "most hostile messages are invalid"

    deadline = time.monotonic() + 240
    while True:
        # (no review band is set, and the review topic holds the poison written above)
        outputs = deployment.read_outputs(expected=10**9, timeout_s=3, topics=("referrals", "cleared", "dlq"))
        verdicts = {r["item_id"] for name in ("referrals", "cleared") for _, r in outputs[name]}
        dead = {
            (r["source"]["topic"], r["source"]["partition"], r["source"]["offset"]) for _, r in outputs["dlq"]
        }
        codes = {r["error"]["code"] for _, r in outputs["dlq"]}
        done = expected_verdicts <= verdicts and expected_dead <= dead
        if (
            done and {"invalid_hashbank_record", "invalid_review_record"} <= codes
        ) or time.monotonic() > deadline:
            break
        time.sleep(2)

    assert expected_verdicts - verdicts == set(), "every valid item got its verdict"
    assert expected_dead - dead == set(), "every invalid message got its dead letter"
    [k_referral] = [r for _, r in outputs["referrals"] if r["item_id"] == "k"]
    assert k_referral["decided_by"] == "hashbank", "the bank learned the entry behind the poison"
    followed = {
        r["source"]["topic"].rsplit(".", 1)[1]: r["error"]["code"]
        for _, r in outputs["dlq"]
        if r["stage"] == "follow"
    }
    assert followed == {"hashbank": "invalid_hashbank_record", "review": "invalid_review_record"}
    decision_codes = sorted(r["error"]["code"] for _, r in outputs["dlq"] if r["stage"] == "review")
    assert decision_codes == ["invalid_decision", "invalid_decision", "unknown_review"]

    assert worker.process.poll() is None, "the worker is alive"
    assert health(worker.url) == 200, "and healthy"
    assert metric(worker.url, "propwatch_internal_errors_total") == 0, "no message found a bug"
    assert metric(worker.url, "propwatch_oldest_unacked_batch_age_seconds") < 30

    for name in ("referrals", "cleared", "review", "dlq", "examples", "hashbank"):
        for key, value in raw_records(deployment, name):
            assert AUTHOR.encode() not in value and AUTHOR.encode() not in key, f"the author is on {name}"
    log = worker.log_path.read_text(errors="replace")
    assert AUTHOR not in log, "the author reaches no log, not even at debug"
    assert "ordinary post" not in log.lower(), "nor does item text"
    assert known.topic.endswith("content")
