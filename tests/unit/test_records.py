"""Validation of content messages and the records propwatch writes."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from classifiers.base import LABELS
from streams.records import (
    Cleared,
    ContentItem,
    DeadLetter,
    DecidedBy,
    Decision,
    ErrorCode,
    ModelRef,
    Referral,
    Rejection,
    Review,
    SourcePosition,
    Subject,
    load_schema,
    parse_decision,
    parse_item,
)
from streams.records.outputs import Evidence, custody_step

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


MODEL = ModelRef(name="m", revision="sha256:1")


def evidence(item: ContentItem) -> Evidence:
    return Evidence.model_validate(
        {
            "captured_at": item.observed_at,
            "content_sha256": item.content_sha256,
            "normalised_sha256": "0" * 64,
            "normalisation": "test",
            "model": {**MODEL.as_json(), "backend": "transformers"},
            "thresholds": {"referral": {"incitement": 0.5}, "review": {}},
            "scores": {"incitement": 0.9},
            "match": None,
            "source": {"topic": "t", "partition": 0, "offset": 1},
            "chain_of_custody": [custody_step("received", "2026-11-20T09:14:04.000Z", "worker").as_json()],
        }
    )


def test_output_records_match_their_schemas() -> None:
    item = parse(b'{"id": "a", "text": "hello", "author": "someone", "observed_at": "2026-11-20T09:14:03Z"}')
    assert isinstance(item, ContentItem)
    content = Subject.of(item, b"secret")
    scores = {"incitement": 0.9, "threat": 0.1}
    referral = Referral.of(
        content,
        labels=["incitement"],
        decided_by=DecidedBy.MODEL,
        basis=MODEL.basis,
        scores=scores,
        thresholds={"incitement": 0.5, "threat": 0.5},
        model=MODEL,
        classified_at="2026-11-20T09:14:04.000Z",
        evidence=evidence(item),
    ).as_json()
    review = Review.of(
        content,
        labels=["incitement"],
        scores=scores,
        thresholds={"incitement": 0.95, "threat": 0.5},
        review_thresholds={"incitement": 0.5},
        model=MODEL,
        classified_at="2026-11-20T09:14:04.000Z",
        evidence=evidence(item),
    ).as_json()
    cleared = Cleared(
        item_id=content.item_id,
        platform=content.platform,
        lang=content.lang,
        content_sha256=content.content_sha256,
        scores=scores,
        model=MODEL,
        classified_at="2026-11-20T09:14:04.000Z",
        observed_at=content.observed_at,
    ).as_json()
    dead = DeadLetter.of(
        Rejection(ErrorCode.INVALID_UTF8, "bad"),
        b"\xff",
        SourcePosition("t", 0, 7),
        received_at="2026-11-20T09:14:04Z",
    ).as_json()
    for name, record in (("referral", referral), ("review", review), ("cleared", cleared), ("dlq", dead)):
        Draft202012Validator(load_schema(name), format_checker=FormatChecker()).validate(record)
    assert "someone" not in json.dumps(referral), "the author handle never leaves"
    assert referral["author_hash"].startswith("hmac-sha256:")
    assert dead["payload_encoding"] == "base64" and dead["payload"] == "/w=="


def test_referral_id_is_deterministic() -> None:
    item = parse(b'{"id": "a", "text": "hello"}')
    assert isinstance(item, ContentItem)

    def rid(model: ModelRef, at: str) -> str:
        return Referral.of(
            Subject.of(item, None),
            labels=["threat"],
            decided_by=DecidedBy.MODEL,
            basis=model.basis,
            scores={},
            thresholds={},
            model=model,
            classified_at=at,
            evidence=evidence(item),
        ).referral_id

    assert rid(MODEL, "t1") == rid(MODEL, "t2")
    assert rid(MODEL, "t1") != rid(ModelRef(name="m", revision="sha256:2"), "t1")


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"[1]", "expected an object"),
        (b'{"decision": "approve", "reviewer": "r1"}', "review_id"),
        (b'{"review_id": "x", "decision": "maybe", "reviewer": "r1"}', "decision"),
        (b'{"review_id": "x", "decision": "approve"}', "reviewer"),
        (b'{"review_id": "x", "decision": "approve", "reviewer": "r1", "labels": ["spam"]}', "labels"),
        (b'{"review_id": "x", "decision": "reject", "reviewer": "r1", "labels": ["threat"]}', "approvals"),
        (b'{"review_id": "x", "decision": "reject", "reviewer": "r1", "decided_at": "today"}', "decided_at"),
    ],
)
def test_bad_decisions_are_rejected_with_the_field(payload: bytes, message: str) -> None:
    result = parse_decision(payload, labels=LABELS, default_decided_at="2026-11-20T09:14:04.000Z")
    assert isinstance(result, Rejection) and result.code is ErrorCode.INVALID_DECISION
    assert message in result.message


def test_decisions_parse_and_match_their_schema() -> None:
    raw = {
        "review_id": "x",
        "decision": "approve",
        "reviewer": "r1",
        "reason": "recruits",
        "labels": ["threat"],
    }
    Draft202012Validator(load_schema("decision"), format_checker=FormatChecker()).validate(raw)
    first = parse_decision(
        json.dumps(raw).encode(), labels=LABELS, default_decided_at="2026-11-20T09:14:04.000Z"
    )
    again = parse_decision(
        json.dumps(raw).encode(), labels=LABELS, default_decided_at="2026-11-20T09:14:04.000Z"
    )
    assert isinstance(first, Decision) and first.labels == ("threat",) and first == again


def test_schemas_list_every_error_code() -> None:
    codes = load_schema("dlq")["properties"]["error"]["properties"]["code"]["enum"]
    assert sorted(codes) == sorted(str(c) for c in ErrorCode)


def test_content_schema_accepts_the_bundled_sample() -> None:
    from streams.dev.demo import sample_path

    validator = Draft202012Validator(load_schema("content"), format_checker=FormatChecker())
    valid = [
        json.loads(line)
        for line in sample_path().read_bytes().splitlines()
        if isinstance(parse(line), ContentItem)
    ]
    assert len(valid) >= 250
    for record in valid:
        validator.validate(record)


# --- the models are the schemas ---------------------------------------------------------------------


def _fields_match(model: type, schema: dict, where: str) -> None:
    """Every schema property is a model field and vice versa, down every nested object."""
    from pydantic import BaseModel

    assert set(model.model_fields) == set(schema["properties"]), where
    for name, field in model.model_fields.items():
        prop = schema["properties"][name]
        nested = prop.get("items", prop)
        if "properties" not in nested:
            continue
        inner = [
            t
            for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        if not inner:  # a tuple of models, e.g. the chain of custody
            args = getattr(field.annotation, "__args__", ())
            inner = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        assert inner, f"{where}.{name} is an object in the schema but not a model"
        _fields_match(inner[0], nested, f"{where}.{name}")


@pytest.mark.parametrize(
    "model, name",
    [
        ("Referral", "referral"),
        ("Review", "review"),
        ("Cleared", "cleared"),
        ("DeadLetter", "dlq"),
        ("Example", "example"),
        ("DecisionMessage", "decision"),
        ("ContentItem", "content"),
    ],
)
def test_every_schema_property_is_a_model_field_and_back(model: str, name: str) -> None:
    import streams.records

    cls = getattr(streams.records, model)
    schema = load_schema(name)
    if model == "ContentItem":  # unknown content fields are kept apart, in ``extra``
        assert set(cls.model_fields) - {"extra"} == set(schema["properties"])
        return
    _fields_match(cls, schema, name)


def test_examples_and_decisions_from_the_models_match_their_schemas() -> None:
    from streams.records import DecisionMessage, Example
    from streams.records.outputs import ExampleReview

    sent = DecisionMessage(review_id="x", decision="approve", reviewer="r1", labels=("threat",))
    Draft202012Validator(load_schema("decision"), format_checker=FormatChecker()).validate(sent.as_json())
    decision = parse_decision(sent.to_json(), labels=LABELS, default_decided_at="2026-11-20T09:14:04.000Z")
    assert isinstance(decision, Decision)
    example = Example(
        id=decision.decision_id,
        text="hello",
        labels=("threat",),
        lang=None,
        category="review_approved",
        review=ExampleReview(**decision.block.model_dump(), item_id="a"),
        model=MODEL,
        scores={"threat": 0.4},
    )
    Draft202012Validator(load_schema("example"), format_checker=FormatChecker()).validate(example.as_json())
    assert Example.from_json(example.to_json()) == example


@pytest.mark.parametrize("raw", [b"\xff", b"[1]", b'{"id": 1}', b"[" * 100 + b"]" * 100, b'{"a": "\\ud800"}'])
def test_reading_a_record_raises_only_record_error(raw: bytes) -> None:
    from streams.records import RecordError

    for model in (Referral, Review, Cleared, DeadLetter, Decision):
        with pytest.raises(RecordError):
            model.from_json(raw)
