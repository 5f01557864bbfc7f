"""Validation of content messages and the records propwatch writes."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from streams.records import (
    ContentItem,
    ErrorCode,
    ModelRef,
    Rejection,
    SourcePosition,
    cleared_record,
    dlq_record,
    load_schema,
    parse_item,
    referral_record,
)

LIMIT = 1000


def parse(raw: bytes) -> ContentItem | Rejection:
    return parse_item(raw, max_text_bytes=LIMIT)


@pytest.mark.parametrize(
    "raw, code, item_id",
    [
        (b"\xff\xfe\x00", ErrorCode.INVALID_UTF8, None),
        (b'{"id": "a", "text": ', ErrorCode.INVALID_JSON, None),
        (b"[1, 2]", ErrorCode.NOT_AN_OBJECT, None),
        (b'"just a string"', ErrorCode.NOT_AN_OBJECT, None),
        (b'{"text": "no id"}', ErrorCode.MISSING_ID, None),
        (b'{"id": 5, "text": "x"}', ErrorCode.INVALID_ID, None),
        (b'{"id": "  ", "text": "x"}', ErrorCode.INVALID_ID, None),
        (b'{"id": "a"}', ErrorCode.MISSING_TEXT, "a"),
        (b'{"id": "a", "text": null}', ErrorCode.INVALID_TEXT, "a"),
        (b'{"id": "a", "text": {"t": 1}}', ErrorCode.INVALID_TEXT, "a"),
        (b'{"id": "a", "text": ""}', ErrorCode.EMPTY_TEXT, "a"),
        (b'{"id": "a", "text": " \\n\\t "}', ErrorCode.EMPTY_TEXT, "a"),
        (json.dumps({"id": "a", "text": "x" * (LIMIT + 1)}).encode(), ErrorCode.TEXT_TOO_LONG, "a"),
        (b'{"id": "a", "text": "bell \\u0007 here"}', ErrorCode.CONTROL_CHARACTERS, "a"),
        (b'{"id": "a", "text": "x", "observed_at": "yesterday"}', ErrorCode.INVALID_OBSERVED_AT, "a"),
        (
            b'{"id": "a", "text": "x", "observed_at": "2026-13-01T00:00:00Z"}',
            ErrorCode.INVALID_OBSERVED_AT,
            "a",
        ),
        (b'{"id": "a", "text": "x", "observed_at": "2026-11-01"}', ErrorCode.INVALID_OBSERVED_AT, "a"),
        (b'{"id": "a", "text": "x", "url": 3}', ErrorCode.INVALID_FIELD, "a"),
        (b'{"id": "a", "text": "x", "metadata": []}', ErrorCode.INVALID_FIELD, "a"),
        (b'{"id": "a", "text": "lone \\ud800 surrogate"}', ErrorCode.UNPAIRED_SURROGATE, "a"),
    ],
)
def test_rejections_have_stable_codes(raw: bytes, code: ErrorCode, item_id: str | None) -> None:
    result = parse(raw)
    assert isinstance(result, Rejection), result
    assert result.code == code
    assert result.item_id == item_id
    assert result.message


def test_valid_item_keeps_unknown_fields() -> None:
    raw = json.dumps(
        {
            "id": "x-1",
            "text": "Tekst met tab\tand newline\n",
            "lang": "nl",
            "observed_at": "2026-11-20T09:14:03.5+01:00",
            "metadata": {"source": "crawler"},
            "campaign": "c-9",
        }
    ).encode()
    item = parse(raw)
    assert isinstance(item, ContentItem)
    assert item.extra == {"campaign": "c-9"} and item.metadata == {"source": "crawler"}
    assert len(item.content_sha256) == 64


def test_text_at_the_limit_is_accepted_and_hashed_whole() -> None:
    text = "é" * (LIMIT // 2)  # 2 bytes each: exactly the limit
    item = parse(json.dumps({"id": "a", "text": text}).encode())
    assert isinstance(item, ContentItem)
    import hashlib

    assert item.content_sha256 == hashlib.sha256(text.encode()).hexdigest()


MODEL = ModelRef("m", "sha256:1")


def test_output_records_match_their_schemas() -> None:
    item = parse(b'{"id": "a", "text": "hello", "author": "someone", "observed_at": "2026-11-20T09:14:03Z"}')
    assert isinstance(item, ContentItem)
    scores = {"incitement": 0.9, "threat": 0.1}
    referral = referral_record(
        item,
        labels=["incitement"],
        scores=scores,
        thresholds={"incitement": 0.5, "threat": 0.5},
        model=MODEL,
        classified_at="2026-11-20T09:14:04.000Z",
        author_key=b"secret",
    )
    cleared = cleared_record(item, scores=scores, model=MODEL, classified_at="2026-11-20T09:14:04.000Z")
    dead = dlq_record(
        Rejection(ErrorCode.INVALID_UTF8, "bad"),
        b"\xff",
        SourcePosition("t", 0, 7),
        received_at="2026-11-20T09:14:04Z",
    )
    for name, record in (("referral", referral), ("cleared", cleared), ("dlq", dead)):
        Draft202012Validator(load_schema(name), format_checker=FormatChecker()).validate(record)
    assert "someone" not in json.dumps(referral), "the author handle never leaves"
    assert referral["author_hash"].startswith("hmac-sha256:")
    assert dead["payload_encoding"] == "base64" and dead["payload"] == "/w=="


def test_referral_id_is_deterministic() -> None:
    item = parse(b'{"id": "a", "text": "hello"}')
    assert isinstance(item, ContentItem)

    def rid(model: ModelRef, at: str) -> str:
        return referral_record(
            item, labels=["threat"], scores={}, thresholds={}, model=model, classified_at=at, author_key=None
        )["referral_id"]

    assert rid(MODEL, "t1") == rid(MODEL, "t2")
    assert rid(MODEL, "t1") != rid(ModelRef("m", "sha256:2"), "t1")


def test_schemas_list_every_error_code() -> None:
    codes = load_schema("dlq")["properties"]["error"]["properties"]["code"]["enum"]
    assert sorted(codes) == sorted(str(c) for c in ErrorCode)


def test_content_schema_accepts_the_bundled_sample() -> None:
    from streams.demo import sample_path

    validator = Draft202012Validator(load_schema("content"), format_checker=FormatChecker())
    valid = [
        json.loads(line)
        for line in sample_path().read_bytes().splitlines()
        if isinstance(parse(line), ContentItem)
    ]
    assert len(valid) >= 250
    for record in valid:
        validator.validate(record)
