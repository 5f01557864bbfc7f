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
