"""Property-based: the validation layer never raises, and always yields an item or a dead letter."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from streams.records import (
    ContentItem,
    DeadLetter,
    Rejection,
    SourcePosition,
    encode,
    load_schema,
    parse_item,
)
from streams.review.signing import sign
from tests import hostile

DLQ = Draft202012Validator(load_schema("dlq"), format_checker=FormatChecker())
CONTENT = Draft202012Validator(load_schema("content"), format_checker=FormatChecker())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
content_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=20) | json_values,
        "text": st.text(max_size=200) | json_values,
        "url": st.text(max_size=30) | json_values,
        "lang": st.sampled_from(["en", "nl"]) | json_values,
        "observed_at": st.sampled_from(["2026-11-20T09:14:03Z", "2026-11-20", "now"]) | json_values,
        "metadata": json_values,
        "extra": json_values,
    },
)


def check(raw: bytes) -> None:
    result = parse_item(raw, max_text_bytes=150)
    assert isinstance(result, ContentItem | Rejection)
    if isinstance(result, Rejection):
        record = DeadLetter.of(result, raw, SourcePosition("t", 0, 0), received_at="2026-11-20T09:14:03Z")
        DLQ.validate(json.loads(record.to_json()))
    else:
        assert result.text.strip() and result.id
        encode({"text": result.text, "id": result.id, "metadata": result.metadata})


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_random_json(value: object) -> None:
    check(json.dumps(value).encode())


@settings(max_examples=600, deadline=None)
@given(content_like)
def test_content_like_objects(value: dict[str, object]) -> None:
    raw = json.dumps(value).encode()
    check(raw)
    result = parse_item(raw, max_text_bytes=150)
    if isinstance(result, ContentItem):
        CONTENT.validate(value)


# --- what st.text() never generates: every parser, with tests/hostile.py's strategies ------------

ANY = hostile.values
HOSTILE_CONTENT = hostile.records(
    {
        "id": st.text(max_size=20) | hostile.texts | hostile.lone_surrogates,
        "text": st.text(max_size=100) | hostile.texts | hostile.lone_surrogates,
        "url": hostile.texts,
        "platform": hostile.texts,
        "lang": st.sampled_from(["en", "nl-BE"]) | hostile.texts,
        "author": hostile.texts | hostile.lone_surrogates,
        "observed_at": hostile.timestamps,
        "metadata": ANY,
    },
    keys=("id", "text"),
)


def message_bytes(value: bytes | None) -> bytes:
    return value if value is not None else b""


@settings(max_examples=600, deadline=None)
@given(hostile.raw_values(HOSTILE_CONTENT))
def test_hostile_content_messages(raw: bytes | None) -> None:
    check(message_bytes(raw))


HOSTILE_DECISION = hostile.records(
    {
        "review_id": st.text(max_size=20) | hostile.texts | hostile.lone_surrogates,
        "decision": st.sampled_from(["approve", "reject"]) | hostile.texts,
        "reviewer": st.text(max_size=20) | hostile.texts,
        "reason": hostile.texts,
        "labels": st.lists(st.sampled_from(["threat", "incitement", "x"]), max_size=3),
        "decided_at": hostile.timestamps,
        "decision_id": hostile.texts | hostile.lone_surrogates,
        "supersedes": hostile.texts,
        "override_reason": hostile.texts,
        "role": st.sampled_from(["reviewer", "supervisor"]) | hostile.texts,
        "signature": st.just(sign({}, b"k")) | hostile.texts | hostile.lone_surrogates,
    },
    keys=("review_id", "decision", "reviewer"),
)


@settings(max_examples=600, deadline=None)
@given(hostile.raw_values(HOSTILE_DECISION))
def test_hostile_decisions(raw: bytes | None) -> None:
    from classifiers.base import LABELS
    from streams.records import Decision, parse_decision

    value = message_bytes(raw)
    for keys in ((), (b"k",)):
        result = parse_decision(
            value, labels=LABELS, default_decided_at="2026-11-20T09:14:03.000Z", keys=keys
        )
        assert isinstance(result, Decision | Rejection)
        if isinstance(result, Rejection):
            record = DeadLetter.of(
                result, value, SourcePosition("t", 0, 0), received_at="2026-11-20T09:14:03Z"
            )
            DLQ.validate(json.loads(record.to_json()))
        else:
            encode(result.as_json())


HOSTILE_HASHBANK = hostile.records(
    {
        "schema_version": st.just(2),
        "op": st.sampled_from(["add", "remove"]),
        "entry_id": st.text(max_size=20) | hostile.texts | hostile.lone_surrogates,
        "normalised_sha256": st.just("a" * 64) | hostile.texts,
        "minhash": st.none() | st.lists(hostile.integers, min_size=128, max_size=128),
        "labels": st.lists(st.sampled_from(["threat", "x"]), max_size=2),
        "source": st.just({"type": "import"}) | ANY,
        "added_at": hostile.timestamps,
        "text": hostile.texts | hostile.lone_surrogates,
    },
    keys=("schema_version", "op", "entry_id"),
)


@settings(max_examples=600, deadline=None)
@given(hostile.raw_values(HOSTILE_HASHBANK))
def test_hostile_hashbank_records(raw: bytes | None) -> None:
    from streams.known_content.index import HashBank

    bank = HashBank()
    error = bank.apply_record(raw)
    assert error is None or isinstance(error, str)
    assert len(bank) <= 1


HOSTILE_REVIEW = hostile.records(
    {
        name: hostile.texts | hostile.lone_surrogates | ANY
        for name in (
            "review_id",
            "item_id",
            "text",
            "content_sha256",
            "labels",
            "scores",
            "thresholds",
            "review_thresholds",
            "model",
            "platform",
            "lang",
            "observed_at",
            "classified_at",
            "evidence",
            "shadow",
        )
    }
    | {"schema_version": st.sampled_from([2, 3])},
    keys=("schema_version",),
)


@settings(max_examples=600, deadline=None)
@given(hostile.raw_values(HOSTILE_REVIEW))
def test_hostile_review_records(raw: bytes | None) -> None:
    from classifiers.base import LABELS
    from streams.kafka.follower import Followed
    from streams.review.queue import ReviewQueue

    queue = ReviewQueue(LABELS)
    error = queue.apply(Followed(None, raw, SourcePosition("t", 0, 0), None))
    assert isinstance(error, str), "none of these is a consistent review record"
    assert not queue.records
