"""Every hostile input issue 11 names, a regression test each (with near variants): the message
ends as a record, every record is JSON that fits one produce request, and the batch goes on.

The processor is driven directly (no Faust, no broker); ``tests/integration/test_fuzz.py`` sends
the same kinds of messages through a running worker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from classifiers.base import LABELS, Classifier, Scores
from classifiers.policy import Policy
from streams.kafka.topics import CLEARED, DLQ, REFERRALS
from streams.known_content.entry import Entry
from streams.known_content.index import HashBank
from streams.known_content.signature import MINHASH_MAX_CHARS, _shingles, normalise, signature
from streams.metrics import Metrics
from streams.pipeline.agents import Fatal, InFlight
from streams.pipeline.builder import RecordBuilder
from streams.pipeline.delivery import send_all
from streams.pipeline.messages import Message, Output
from streams.pipeline.processor import ContentProcessor, Limits
from streams.pipeline.scoring import Scorer, model_ref
from streams.records import SourcePosition, plausible_timestamp
from streams.records.content import FIELD_LIMITS
from streams.records.dead_letter import DLQ_PAYLOAD_MAX_BYTES
from streams.settings import Settings

MAX_TEXT = 400_000
MAX_MESSAGE = 1_000_000
SCHEMAS = {
    name: Draft202012Validator(
        json.loads(
            (
                Path(__file__).parents[2] / "streams" / "records" / "schemas" / f"{schema}.schema.json"
            ).read_text()
        ),
        format_checker=FormatChecker(),
    )
    for name, schema in (
        ("referrals", "referral"),
        ("cleared", "cleared"),
        ("review", "review"),
        ("dlq", "dlq"),
        ("hashbank", "hashbank"),
    )
}


class Scripted(Classifier):
    """Scores 0.9 for a label whose name is in the text, else 0.1, unless told to answer otherwise."""

    name = "scripted"
    revision = "1"
    labels = LABELS

    def __init__(self, answer: object = None) -> None:
        self.answer = answer

    def predict(self, texts: Sequence[str]) -> list[Scores]:
        if self.answer is not None:
            return [dict(self.answer) for _ in texts]  # type: ignore[call-overload]
        return [{label: 0.9 if label in text else 0.1 for label in LABELS} for text in texts]


def processor(
    classifier: Classifier | None = None,
    *,
    shadow: Classifier | None = None,
    review_thresholds: dict[str, float] | None = None,
    bank: HashBank | None = None,
    author_key: bytes | None = None,
    max_text_bytes: int = MAX_TEXT,
    max_message_bytes: int = MAX_MESSAGE,
) -> ContentProcessor:
    classifier = classifier or Scripted()
    metrics = Metrics()
    policy = Policy.for_labels(classifier.labels, dict.fromkeys(LABELS, 0.5), review_thresholds)
    return ContentProcessor(
        Scorer(classifier, ThreadPoolExecutor(max_workers=1), metrics, shadow=shadow),
        policy,
        RecordBuilder(model_ref(classifier), policy, "transformers", "propwatch-worker", author_key),
        bank if bank is not None else HashBank(),
        metrics,
        Limits(max_text_bytes, max_message_bytes),
    )


def strict_json(value: bytes) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in an output record")

    return json.loads(value, parse_constant=refuse)


def run(
    proc: ContentProcessor, values: Sequence[bytes], timestamp: float | None = 1_764_000_000.0
) -> list[Output]:
    """Process one batch; check that every message got exactly one record, valid and small enough."""
    messages = [Message(v, SourcePosition("t.content", 0, i), timestamp) for i, v in enumerate(values)]
    outputs = asyncio.run(proc.process(messages))
    assert len(outputs) >= len(values)
    for output in outputs:
        record = strict_json(output.value)
        SCHEMAS[output.topic.name].validate(record)
        assert output.size <= proc.limits.max_message_bytes, (
            f"{output.topic.name} record of {output.size} bytes"
        )
    return outputs


def records(outputs: Sequence[Output], topic: str) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in outputs if o.topic.name == topic]


def item(item_id: str = "ok", text: str = "ordinary text", **fields: Any) -> bytes:
    return json.dumps({"id": item_id, "text": text, **fields}).encode()


def dead_code(output: Output) -> str:
    assert output.topic is DLQ
    return json.loads(output.value)["error"]["code"]


# --- ids and fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a\\ud800", "text": "hello"}',
        b'{"id": "a", "text": "hello \\udfff"}',
        b'{"id": "a", "text": "hello", "platform": "\\ud83d"}',
        b'{"id": "a", "text": "hello", "metadata": {"\\udc00": 1}}',
        b'{"id": "a", "text": "hello", "author": "\\ud800x"}',
    ],
)
def test_a_lone_surrogate_anywhere_is_a_dead_letter_that_encodes(raw: bytes) -> None:
    first, second = run(processor(), [raw, item()])
    assert dead_code(first) == "unpaired_surrogate"
    record = json.loads(first.value)
    assert record["item_id"] in (None, "a"), "an id with a surrogate never keys or names a record"
    assert first.key in (b"a", b"t.content:0:0")
    assert second.topic is CLEARED


def test_ids_that_cannot_key_a_record_are_refused() -> None:
    too_long = "x" * (FIELD_LIMITS["id"] + 1)
    outputs = run(processor(), [item("a\nb"), item("a\x1bb"), item(too_long), item()])
    assert [dead_code(o) for o in outputs[:3]] == ["invalid_id"] * 3
    assert all(json.loads(o.value)["item_id"] is None for o in outputs[:3])
    assert outputs[3].topic is CLEARED


@pytest.mark.parametrize(
    "fields",
    [
        {"platform": "forum\r\n| x | <script>alert(1)</script>"},
        {"platform": "p" * (FIELD_LIMITS["platform"] + 1)},
        {"lang": "\x1b[31men"},
        {"lang": "<b>en</b>"},
        {"url": "https://example.org/\x00"},
        {"author": "someone\u0085"},
    ],
)
def test_control_characters_and_markup_in_fields_are_refused(fields: dict[str, str]) -> None:
    [output] = run(processor(), [item(**fields)])
    assert dead_code(output) == "invalid_field"


# --- numbers and nesting ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["extra", "metadata", "id"])
def test_integers_past_the_digit_limit_are_invalid_json(where: str) -> None:
    digits = "9" * 5000
    raw = {
        "extra": f'{{"id": "a", "text": "t", "n": {digits}}}',
        "metadata": f'{{"id": "a", "text": "t", "metadata": {{"n": [{digits}]}}}}',
        "id": f'{{"id": {digits}, "text": "t"}}',
    }[where].encode()
    first, second = run(processor(), [raw, item()])
    assert dead_code(first) == "invalid_json" and "digits" in json.loads(first.value)["error"]["message"]
    assert second.topic is CLEARED


def test_an_integer_at_the_digit_limit_is_fine() -> None:
    [output] = run(processor(), [f'{{"id": "a", "text": "t", "n": {"9" * 4300}}}'.encode()])
    assert output.topic is CLEARED


@pytest.mark.parametrize("depth", [64, 65, 900, 990, 999, 1000, 1050, 1100])
def test_nesting_at_any_depth_ends_as_a_record(depth: int) -> None:
    """The object is one level: 63 more fit the limit of 64; anything deeper is invalid_json, also
    depths that parse but would exhaust the recursion limit when encoded again."""
    nested = "[" * (depth - 1) + "]" * (depth - 1)
    first, second = run(processor(), [f'{{"id": "a", "text": "t", "m": {nested}}}'.encode(), item()])
    if depth <= 64:
        assert first.topic is CLEARED
    else:
        assert (
            dead_code(first) == "invalid_json"
            and "nested deeper" in json.loads(first.value)["error"]["message"]
        )
    assert second.topic is CLEARED


@pytest.mark.parametrize(
    "raw", [b'{"id": "a", "text": "t", "x": NaN}', b'{"id": "a", "text": "t", "x": 1e400}']
)
def test_not_a_number_is_not_json(raw: bytes) -> None:
    [output] = run(processor(), [raw])
    assert dead_code(output) == "invalid_json"


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1e15, 1.7e12, -1.0, math.inf, math.nan])
def test_kafka_timestamps_datetime_cannot_hold_are_absent(seconds: float) -> None:
    assert plausible_timestamp(seconds) is None
    assert plausible_timestamp(1_764_000_000.0) == 1_764_000_000.0


def test_an_item_with_no_usable_timestamp_still_gets_its_record() -> None:
    output, _learned = run(processor(), [item(text="threat")], timestamp=None)
    referral = json.loads(output.value)
    assert output.topic is REFERRALS and referral["evidence"]["captured_at"] is None
    assert referral["evidence"]["chain_of_custody"][0]["step"] == "received"


@pytest.mark.parametrize(
    "observed_at, accepted",
    [
        ("0001-01-01T00:00:00Z", False),
        ("0001-01-01T00:00:00+01:00", False),  # no UTC time at all
        ("9999-12-31T23:59:59-23:59", False),
        ("1989-12-31T23:59:59Z", False),
        ("1990-01-01T00:00:00Z", True),
        ("2099-01-01T00:00:00Z", False),
        ("2026-11-20T09:14:03+01:00", True),
    ],
)
def test_observed_at_must_be_a_possible_capture_time(observed_at: str, accepted: bool) -> None:
    [output] = run(processor(), [item(observed_at=observed_at)])
    assert (output.topic is CLEARED) is accepted
    if not accepted:
        assert dead_code(output) == "invalid_observed_at"


# --- referred texts with no letters or digits -----------------------------------------------------


def test_a_referred_text_without_letters_is_referred_but_not_learned() -> None:
    flag_all = dict.fromkeys(LABELS, 0.9)
    proc = processor(Scripted(flag_all))
    outputs = run(
        proc, [item("emoji", "🔥🔥🔥 ‼️"), item("url", "https://example.org/x"), item("words", "a b c")]
    )
    assert [o.topic.name for o in outputs] == ["referrals", "referrals", "referrals", "hashbank"]
    assert len(proc.bank) == 1, "only the text with letters became an entry"
    assert proc.metrics.internal_errors.labels(stage="match")._value.get() == 0


# --- sizes ----------------------------------------------------------------------------------------


def test_settings_refuse_a_text_limit_that_outgrows_a_request() -> None:
    Settings(max_text_bytes=MAX_TEXT, max_message_bytes=MAX_MESSAGE)
    with pytest.raises(ValidationError, match="leaves no room"):
        Settings(max_text_bytes=1_048_576)
    with pytest.raises(ValidationError, match="leaves no room"):
        Settings(max_text_bytes=MAX_TEXT, max_message_bytes=500_000)


def test_the_largest_referral_the_limits_allow_fits_a_request() -> None:
    """Every field at its limit, in characters that take the most bytes once escaped."""
    wide = "\U0001f525"  # four bytes in UTF-8
    raw = item(
        wide * FIELD_LIMITS["id"],
        '"' * (MAX_TEXT - 20) + " threat incitement",
        url=wide * FIELD_LIMITS["url"],
        platform='"' * FIELD_LIMITS["platform"],
        lang="en-Abcdefgh-Abcdefgh-Abcdefgh-Abcde",
        author=wide * FIELD_LIMITS["author"],
        observed_at="2026-11-20T09:14:03.123456789+01:00",
    )
    [output, _] = run(processor(shadow=Scripted(), review_thresholds=dict.fromkeys(LABELS, 0.05)), [raw])
    assert output.topic is REFERRALS, "the record is a referral, not output_too_large"


def test_a_referral_too_large_for_the_request_becomes_a_dead_letter() -> None:
    proc = processor(max_message_bytes=200_000)  # below what the text limit needs: a safeguard test
    [output] = run(proc, [item("big", "threat " * 40_000)])
    record = json.loads(output.value)
    assert dead_code(output) == "output_too_large" and record["item_id"] == "big"
    assert "referrals record" in record["error"]["message"]


@pytest.mark.parametrize(
    "raw, encoding",
    [
        (b'{"id": "q", "text": "' + b'\\"' * 450_000 + b'"}', "utf-8"),
        (b'"' * 600_000, "utf-8"),
        (b"\xff" * 900_000, "base64"),
        (b"\x00" * 900_000, "utf-8"),
    ],
)
def test_dead_letters_keep_a_bounded_prefix_with_length_and_hash(raw: bytes, encoding: str) -> None:
    [output] = run(processor(), [raw])
    record = json.loads(output.value)
    assert record["payload_encoding"] == encoding and record["payload_truncated"] is True
    assert record["payload_bytes"] == len(raw)
    assert record["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    kept = base64.b64decode(record["payload"]) if encoding == "base64" else record["payload"].encode()
    assert len(kept) <= DLQ_PAYLOAD_MAX_BYTES and raw.startswith(kept)


def test_a_cut_keeps_whole_characters() -> None:
    raw = ("é" * DLQ_PAYLOAD_MAX_BYTES).encode()  # two bytes each: the cut falls inside one
    [output] = run(processor(), [raw])
    payload = json.loads(output.value)["payload"]
    assert set(payload) == {"é"} and len(payload.encode()) == DLQ_PAYLOAD_MAX_BYTES


async def test_a_send_that_raises_at_once_is_retried() -> None:
    class Topic:
        def __init__(self) -> None:
            self.calls = 0
            self.sent: list[bytes] = []

        async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[None]:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("MessageSizeTooLarge-like synchronous failure")
            self.sent.append(value)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    topic = Topic()
    outputs = [Output(CLEARED, b"a", b"{}"), Output(CLEARED, b"b", b"{}")]
    await send_all({CLEARED: topic}, outputs, retry_s=0.01)  # type: ignore[dict-item]
    assert topic.sent == [b"{}", b"{}"] and topic.calls == 3


# --- classifiers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {**dict.fromkeys(LABELS, 0.1), "threat": math.nan},
        {**dict.fromkeys(LABELS, 0.1), "threat": math.inf},
        {**dict.fromkeys(LABELS, 0.1), "threat": -0.5},
        {**dict.fromkeys(LABELS, 0.1), "threat": "0.9"},
        {**dict.fromkeys(LABELS, 0.1), "threat": True},
        dict.fromkeys(LABELS[:3], 0.1),
    ],
)
def test_a_live_model_that_breaks_its_contract_dead_letters_the_items(answer: dict[str, object]) -> None:
    proc = processor(Scripted(answer))
    outputs = run(proc, [item("a"), item("b")])
    assert [dead_code(o) for o in outputs] == ["classifier_error", "classifier_error"]
    assert all(b"NaN" not in o.value and b"Infinity" not in o.value for o in outputs)


@pytest.mark.parametrize(
    "answer", [dict.fromkeys(LABELS[:3], 0.1), {**dict.fromkeys(LABELS, 0.1), "threat": math.nan}, {"x": 1}]
)
def test_a_broken_shadow_model_is_only_counted(answer: dict[str, object]) -> None:
    proc = processor(shadow=Scripted(answer))
    outputs = run(proc, [item("a", "threat"), item("b")])
    assert [o.topic.name for o in outputs[:2]] == ["referrals", "cleared"]
    assert all(json.loads(o.value)["shadow"] is None for o in outputs[:2])
    assert proc.metrics.shadow_errors._value.get() == 1


# --- huge texts and the bank ------------------------------------------------------------------------


def test_the_minhash_reads_a_bounded_prefix() -> None:
    head = " ".join(f"word{i}" for i in range(3000))
    assert len(normalise(head)) > MINHASH_MAX_CHARS
    assert len(_shingles(normalise(head + " tail" * 50_000))) <= MINHASH_MAX_CHARS
    one, other = signature(head + " one ending"), signature(head + " another ending entirely")
    assert one.normalised_sha256 != other.normalised_sha256 and one.minhash == other.minhash


def test_a_huge_text_is_matched_near_by_its_beginning() -> None:
    head = " ".join(f"word{i}" for i in range(3000))
    bank = HashBank(threshold=0.75)
    bank.add(
        Entry.from_text(
            head, entry_id="e", labels=("threat",), source={"type": "import"}, added_at="2025-01-01T00:00:00Z"
        )
    )
    proc = processor(bank=bank)
    [output] = run(proc, [item("huge", head + " and more" * 40_000)])
    assert output.topic is REFERRALS and json.loads(output.value)["match"]["type"] == "near"


# --- redelivery ---------------------------------------------------------------------------------------


def test_a_redelivered_item_gets_its_first_verdict_whatever_the_bank_learned() -> None:
    proc = processor()
    first = run(proc, [item("x", "fictional slogan of the Grey Heron Front, spread it")], timestamp=1000.0)
    assert first[0].topic is CLEARED
    learned = Entry.from_text(
        "Fictional slogan of the Grey Heron Front! Spread it!",
        entry_id="later",
        labels=("incitement",),
        source={"type": "referral", "item_id": "y"},
        added_at="1970-01-01T00:16:50Z",  # 1010 s: after the item reached Kafka
    )
    proc.bank.add(learned)
    again = run(proc, [item("x", "fictional slogan of the Grey Heron Front, spread it")], timestamp=1000.0)
    assert again[0].topic is CLEARED, "the redelivery is not matched against what was learned later"
    newer = run(proc, [item("z", "fictional slogan of the Grey Heron Front, spread it")], timestamp=1020.0)
    assert newer[0].topic is REFERRALS, "an item that reached Kafka later is"


def test_bank_file_entries_match_items_of_any_time(tmp_path: Path) -> None:
    from streams.known_content.files import load_bank_file

    path = tmp_path / "bank.jsonl"
    path.write_text(
        json.dumps({"entry_id": "f", "text": "known fictional slogan", "labels": ["threat"]}) + "\n"
    )
    bank = HashBank()
    load_bank_file(path, bank)
    [output] = run(processor(bank=bank), [item("old", "Known fictional slogan!")], timestamp=10.0)
    assert output.topic is REFERRALS


# --- the processing boundary ------------------------------------------------------------------------


def test_a_step_that_raises_costs_one_message_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    proc = processor()
    original = proc._match

    def failing_match(slot: Any) -> None:
        if slot.item.id == "bad":
            raise KeyError("secret text of the item")
        original(slot)

    proc._match = failing_match  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        outputs = run(proc, [item("ok-1"), item("bad"), item("ok-2", "threat")])
    assert [o.topic.name for o in outputs] == ["cleared", "dlq", "referrals", "hashbank"]
    dead = json.loads(outputs[1].value)
    assert dead["error"] == {"code": "internal_error", "message": "KeyError at match"}
    assert dead["stage"] == "match" and dead["item_id"] == "bad"
    assert "secret text" not in caplog.text, "the exception's text is never logged at info"
    assert proc.metrics.internal_errors.labels(stage="match")._value.get() == 1


def test_a_record_that_cannot_be_built_is_a_dead_letter() -> None:
    proc = processor()

    def failing_route(*args: Any) -> Output:
        raise ValueError("boom")

    with patch.object(RecordBuilder, "record", failing_route):
        [output] = run(proc, [item("a", "threat")])
    assert dead_code(output) == "internal_error" and json.loads(output.value)["stage"] == "route"


async def test_an_agent_that_fails_on_a_batch_trips_fatal_instead_of_wedging(tmp_path: Path) -> None:
    import faust

    from streams.pipeline.agents import install_agent

    stopped: list[bool] = []

    class Broken:
        async def process(self, messages: Sequence[Message]) -> list[Output]:
            raise RuntimeError("a bug")

        def delivered(self, outputs: Sequence[Output]) -> None:
            raise AssertionError("nothing is delivered")

    app = faust.App("fatal-test", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path))
    topic = app.topic("in", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    fatal, inflight = Fatal(stop=lambda: stopped.append(True)), InFlight()
    agent = install_agent(
        app, topic, {}, Broken(), name="t", batch_size=4, batch_wait_s=0.01, fatal=fatal, inflight=inflight
    )
    async with agent.test_context() as running:
        await running.put(b"x")
        for _ in range(100):
            if stopped:
                break
            await asyncio.sleep(0.02)
    app.consumer._thread.thread_loop.close()
    assert stopped == [True] and fatal.reason is not None and "RuntimeError" in fatal.reason
    assert inflight.oldest_age() > 0, "the batch stays unacknowledged: the stall metric shows it"


def test_in_flight_batches_give_the_stall_metric() -> None:
    inflight = InFlight()
    assert inflight.oldest_age() == 0.0
    first = inflight.begin()
    inflight.begin()
    assert inflight.oldest_age() >= 0.0
    inflight.end(first)
    inflight.end(first)  # ending twice is harmless
    assert inflight.oldest_age() >= 0.0


# --- privacy --------------------------------------------------------------------------------------------

AUTHOR = "handle-of-a-real-person-7731"


@pytest.mark.parametrize(
    "raw",
    [
        item("a", "", author=AUTHOR),  # empty text: a dead letter
        b'{"id": "b", "author": "' + AUTHOR.encode() + b'", "text": ',  # not JSON
        b'\xff{"author": "' + AUTHOR.encode() + b'"}',  # not UTF-8
        b'{"id": "c", "text": "t", "author": "' + AUTHOR.encode() + b'", "n": ' + b"9" * 5000 + b"}",
    ],
)
def test_dead_letters_never_carry_the_author(raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        [output] = run(processor(author_key=b"k"), [raw])
    record = json.loads(output.value)
    payload = (
        base64.b64decode(record["payload"])
        if record["payload_encoding"] == "base64"
        else record["payload"].encode()
    )
    assert AUTHOR.encode() not in payload and AUTHOR.encode() not in output.value
    assert record["payload_redacted"] is True
    assert AUTHOR not in caplog.text


def test_a_dead_letter_carries_the_author_as_the_referrals_hmac() -> None:
    from streams.records.outputs import author_hash

    [output] = run(processor(author_key=b"k"), [item("a", "", author=AUTHOR)])
    payload = json.loads(json.loads(output.value)["payload"])
    assert payload["author"] == author_hash(AUTHOR, b"k")
    [unkeyed] = run(processor(), [item("a", "", author=AUTHOR)])
    assert json.loads(json.loads(unkeyed.value)["payload"])["author"] is None
