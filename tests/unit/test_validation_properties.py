"""Property-based: the validation layer never raises, and always yields an item or a dead letter."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from streams.records import (
    ContentItem,
    Rejection,
    SourcePosition,
    dlq_record,
    encode,
    load_schema,
    parse_item,
)

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
        record = dlq_record(result, raw, SourcePosition("t", 0, 0), received_at="2026-11-20T09:14:03Z")
        DLQ.validate(json.loads(encode(record)))
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


# --- what st.text() never generates -------------------------------------------------------------
# Raw JSON fragments, so that the bytes can hold what a JSON library would not write: escaped lone
# surrogates, integers past the digit limit, nesting at and around the recursion limit, NaN.

LONE_SURROGATES = st.sampled_from(["\\ud800", "\\udfff", "a\\udc00b", "\\ud83d", "x\\ud800\\ud800"])
CONTROLS = st.text(
    alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp"], exclude_characters=["\ud800"]), min_size=1
)
BAD_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "2026-02-30T00:00:00Z",
        "2026-11-20T25:00:00Z",
    ]
)


def string_fragment(text: str) -> str:
    return json.dumps(text)


hostile_fragment = st.one_of(
    LONE_SURROGATES.map(lambda s: f'"{s}"'),
    CONTROLS.map(string_fragment),
    BAD_TIMES.map(string_fragment),
    st.integers(4290, 4400).map(lambda n: "9" * n),
    st.integers(60, 70).map(lambda d: "[" * d + "]" * d),
    st.integers(900, 1100).map(lambda d: "[" * d + "]" * d),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]),
    st.text(max_size=30).map(string_fragment),
    st.just("null"),
    st.integers().map(str),
)


def hostile_object(fields: tuple[str, ...], ordinary: dict[str, str]) -> st.SearchStrategy[bytes]:
    """A JSON object (as bytes) with every field either ordinary or hostile."""

    def build(choices: list[tuple[str, str | None]]) -> bytes:
        parts = [
            f"{json.dumps(name)}: {fragment if fragment is not None else ordinary.get(name, 'null')}"
            for name, fragment in choices
        ]
        return ("{" + ", ".join(parts) + "}").encode()

    field_choice = st.tuples(st.sampled_from(fields), st.none() | hostile_fragment)
    return st.lists(field_choice, min_size=1, max_size=len(fields) + 2).map(build)


CONTENT_FIELDS = ("id", "text", "url", "platform", "lang", "author", "observed_at", "metadata", "extra")
CONTENT_ORDINARY = {"id": '"i-1"', "text": '"an ordinary post"', "observed_at": '"2026-11-20T09:14:03Z"'}


@settings(max_examples=500, deadline=None)
@given(hostile_object(CONTENT_FIELDS, CONTENT_ORDINARY))
def test_hostile_content_objects(raw: bytes) -> None:
    check(raw)


@settings(max_examples=300, deadline=None)
@given(hostile_fragment.map(str.encode))
def test_hostile_bare_values(raw: bytes) -> None:
    check(raw)


DECISION_FIELDS = (
    "review_id",
    "decision",
    "reviewer",
    "reason",
    "labels",
    "decided_at",
    "decision_id",
    "supersedes",
    "override_reason",
)
DECISION_ORDINARY = {"review_id": '"r-1"', "decision": '"approve"', "reviewer": '"analyst"'}


@settings(max_examples=500, deadline=None)
@given(hostile_object(DECISION_FIELDS, DECISION_ORDINARY) | st.binary(max_size=200))
def test_hostile_decisions(raw: bytes) -> None:
    from classifiers.base import LABELS
    from streams.records import Decision, parse_decision

    result = parse_decision(raw, labels=LABELS, default_decided_at="2026-11-20T09:14:03.000Z")
    assert isinstance(result, Decision | Rejection)
    if isinstance(result, Rejection):
        record = dlq_record(result, raw, SourcePosition("t", 0, 0), received_at="2026-11-20T09:14:03Z")
        DLQ.validate(json.loads(encode(record)))
    else:
        encode(result.as_json())


HASHBANK_FIELDS = (
    "schema_version",
    "op",
    "entry_id",
    "normalised_sha256",
    "minhash",
    "labels",
    "source",
    "added_at",
    "text",
)


@settings(max_examples=500, deadline=None)
@given(hostile_object(HASHBANK_FIELDS, {"schema_version": "2", "op": '"add"'}) | st.binary(max_size=200))
def test_hostile_hashbank_records(raw: bytes) -> None:
    from streams.hashbank import HashBank

    bank = HashBank()
    error = bank.apply_record(raw)
    assert error is None or isinstance(error, str)
    assert len(bank) <= 1


REVIEW_FIELDS = (
    "schema_version",
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


@settings(max_examples=500, deadline=None)
@given(hostile_object(REVIEW_FIELDS, {"schema_version": "3"}) | st.binary(max_size=200))
def test_hostile_review_records(raw: bytes) -> None:
    from classifiers.base import LABELS
    from streams.followers import Followed
    from streams.review import ReviewQueue

    queue = ReviewQueue(LABELS)
    error = queue.apply(Followed(None, raw, SourcePosition("t", 0, 0), None))
    assert isinstance(error, str), "none of these is a consistent review record"
    assert not queue.records
