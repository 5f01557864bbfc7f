"""The transparency report on whatever a producer can put on its topics: it never raises, its
Markdown cannot be driven by the data, and implausible capture times do not skew its figures."""

from __future__ import annotations

import io
import json
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.base import LABELS
from streams.cli import main
from streams.io import json_line
from streams.records import DECISIONS, MATCH_TYPES
from streams.reporting.build import build_report
from streams.reporting.figures import DECIDED_BY, Report, parse_when
from streams.reporting.read import TOPICS, parse_record
from streams.reporting.render import CELL_CHARS, format_markdown
from streams.safejson import MAX_DEPTH, for_terminal
from tests import hostile
from tests.unit.test_report import at, cleared, dead, queued, referral

DECISION = {
    "decision_id": "d1",
    "review_id": "rev-a",
    "decision": "approve",
    "reviewer": "r",
    "decided_at": at(10),
}
VALID = {
    "referrals": referral("a", observed_at=at(10, 11)),
    "cleared": cleared("a"),
    "review": queued("a"),
    "dlq": dead("a", "invalid_json", 1),
    "decisions": DECISION,
}
"""One valid record per topic: the base that the wrong-type tests change one field of."""

WRONG = (
    None,
    True,
    0,
    -1,
    10**4299,
    1.5e308,
    "",
    " ",
    "x" * 1000,
    "\x1b[31m\r\n| x |",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    [],
    {},
    ["approve"],
    {"name": {"k": 1}, "revision": ["r1"], "type": 5, "code": None, "decision": [], "flagged": "yes"},
    hostile.nest(MAX_DEPTH - 1),
    hostile.nest(1000),
)
"""Values of the wrong type or shape for any field, including nesting that only a caller other
than the reader can hand over (the reader refuses anything past MAX_DEPTH). Lone surrogates are
the reader's to refuse (build_report takes records as read_topics returns them)."""


def check(report: Report) -> tuple[str, str]:
    """Render ``report`` both ways and assert what must hold whatever the records were."""
    markdown = format_markdown(report)
    assert for_terminal(markdown) == markdown, "no control character, bidi override or lone surrogate"
    assert "\r" not in markdown and "\t" not in markdown
    assert markdown.splitlines() == markdown.split("\n")[:-1], "no other line breaks"
    header_pipes = 0
    for line in markdown.splitlines():
        bare = re.sub(r"\\.|&(amp|lt|gt);", "", line)  # escapes and entities are text
        assert not set(bare) & set("<>`[]&"), line
        if line.startswith("| "):  # a header or a row; a rule starts "|---"
            pipes = bare.count("|")
            header_pipes = header_pipes or pipes
            assert pipes == header_pipes, f"a cell broke its row: {line!r}"
        elif not line.startswith("|---"):
            header_pipes = 0
    data = report.as_json()
    document = json_line(data)
    assert json.loads(document) == data, "exact values"
    assert for_terminal(document) == document
    for topic in data["input"].values():
        parts = ("invalid", "undated", "out_of_period", "duplicates", "in_period")
        assert topic["read"] == sum(topic[k] for k in parts)
        assert 0 <= topic["implausible_observed_at"] <= topic["in_period"]
    latency = data["time_to_referral"]
    assert latency["median_s"] is None or 0 <= latency["median_s"] <= latency["p90_s"]
    return markdown, document


def read(
    raw_by_topic: dict[str, list[bytes | None]], since: datetime | None = None, until: datetime | None = None
) -> Report:
    """What ``propwatch report`` does with the values it reads, without a broker."""
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in raw_by_topic}
    unreadable: Counter[str] = Counter()
    for name, values in raw_by_topic.items():
        for value in values:
            record = parse_record(value)
            if record is None:
                unreadable[name] += 1
            else:
                records[name].append(record)
    report = build_report(records, since, until, unreadable=unreadable, generated_at=datetime.now(UTC))
    assert {name: report.input[name].unreadable for name in raw_by_topic} == {
        name: unreadable[name] for name in raw_by_topic
    }
    return report


# --- The reader --------------------------------------------------------------------------------


def test_the_reader_refuses_nesting_past_the_limit_at_every_depth_from_900_to_1100() -> None:
    record = json.dumps(DECISION)[:-1]
    for depth in range(900, 1101):
        for nested in ("[" * depth + "]" * depth, '{"k":' * depth + "1" + "}" * depth):
            assert parse_record(nested.encode()) is None
            assert parse_record(f'{record}, "reviewer": {nested}}}'.encode()) is None, depth


def test_the_reader_takes_nesting_up_to_the_limit() -> None:
    deepest = {**DECISION, "reason": hostile.nest(MAX_DEPTH - 1)}
    assert parse_record(json.dumps(deepest).encode()) == deepest
    assert parse_record(json.dumps({**DECISION, "reason": hostile.nest(MAX_DEPTH)}).encode()) is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"referral_id": "r", "n": ' + b"9" * 5000 + b"}",
        b'{"referral_id": "r", "n": 1e999}',
        b'{"referral_id": "r", "n": NaN}',
        b'{"referral_id": "r", "platform": "\\ud800"}',
        b'{"referral_id": "r", "platform": "\xff"}',
        b'["not", "an", "object"]',
        b"",
        None,
    ],
    ids=["5000-digits", "overflow", "nan", "lone-surrogate", "not-utf8", "array", "empty", "tombstone"],
)
def test_the_reader_counts_what_it_cannot_read(raw: bytes | None) -> None:
    assert parse_record(raw) is None
    report = read({"referrals": [raw, json.dumps(referral("a")).encode()]})
    assert (report.input["referrals"].unreadable, report.totals.referrals) == (1, 1)


@settings(max_examples=500, deadline=None)
@given(hostile.raw_values(hostile.records({"referral_id": st.just("r")})))
def test_the_reader_never_raises_and_keeps_only_encodable_objects(raw: bytes | None) -> None:
    record = parse_record(raw)
    assert record is None or json.loads(json_line(record)) == record


# --- build_report on every kind of record ------------------------------------------------------

RECORD_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {}
_ids = st.sampled_from(("a", "b", "c", "d", "e"))
_times = st.sampled_from((at(9), at(10), at(11, month=12))) | hostile.timestamps
_model = st.fixed_dictionaries({"name": st.just("tco") | hostile.texts, "revision": hostile.texts})
_common = {
    "item_id": _ids,
    "platform": hostile.texts,
    "lang": hostile.texts,
    "model": _model,
    "decided_by": st.sampled_from(DECIDED_BY),
    "review": st.fixed_dictionaries({"decision": st.sampled_from(DECISIONS)}),
    "shadow": st.fixed_dictionaries({"model": _model, "flagged": st.booleans(), "agrees": st.booleans()}),
    "classified_at": _times,
    "observed_at": _times,
}
RECORD_FIELDS["referrals"] = {
    **_common,
    "referral_id": _ids,
    "labels": st.lists(st.sampled_from(LABELS) | hostile.texts, max_size=3),
    "match": st.fixed_dictionaries({"type": st.sampled_from(MATCH_TYPES) | hostile.texts}),
}
RECORD_FIELDS["cleared"] = _common
RECORD_FIELDS["review"] = {**_common, "review_id": _ids, "labels": st.lists(hostile.texts, max_size=2)}
RECORD_FIELDS["dlq"] = {
    "item_id": _ids,
    "error": st.fixed_dictionaries({"code": hostile.texts}),
    "stage": hostile.texts,
    "source": st.fixed_dictionaries(
        {"topic": st.just("t") | hostile.texts, "partition": hostile.integers, "offset": hostile.integers}
    ),
    "received_at": _times,
}
RECORD_FIELDS["decisions"] = {
    "decision_id": _ids,
    "review_id": _ids,
    "reviewer": hostile.texts,
    "decision": st.sampled_from(DECISIONS) | hostile.texts,
    "decided_at": _times,
    "labels": st.lists(hostile.texts, max_size=2),
}
KEYS = {
    "referrals": ("referral_id", "item_id", "classified_at", "platform", "lang"),
    "cleared": ("item_id", "classified_at", "platform", "lang"),
    "review": ("item_id", "classified_at"),
    "dlq": ("source", "received_at"),
    "decisions": ("decision_id", "decided_at"),
}
"""Fields always there with a plausible value in the property test: what a record is keyed and
dated by, so that most records are counted (wrong ones:
test_a_wrong_value_in_any_field_of_any_record_kind_is_survived), and the table keys platform and
lang, whose plausible values are hostile texts."""
assert set(RECORD_FIELDS) == set(KEYS) == set(TOPICS)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            name: st.lists(hostile.raw_values(hostile.records(fields, KEYS[name])), max_size=6)
            for name, fields in RECORD_FIELDS.items()
        }
    ),
    st.sampled_from((None, "2026-11-10", "0001-01-01")),
    st.sampled_from((None, "2026-11-11", "9999-12-31T23:59:59Z")),
)
def test_any_messages_on_the_topics_make_a_safe_report(
    raw_by_topic: dict[str, list[bytes | None]], since: str | None, until: str | None
) -> None:
    check(read(raw_by_topic, since and parse_when(since), until and parse_when(until)))


@pytest.mark.parametrize("topic", TOPICS)
def test_a_wrong_value_in_any_field_of_any_record_kind_is_survived(topic: str) -> None:
    valid = VALID[topic]
    for name in [*valid, *RECORD_FIELDS[topic]]:
        for value in WRONG:
            check(build_report({topic: [valid, {**valid, name: value}]}))
    for value in WRONG:
        check(build_report({topic: [valid, value]}))  # not even an object


# --- Regressions -------------------------------------------------------------------------------


def test_a_deeply_nested_decision_neither_stops_the_reader_nor_the_report() -> None:
    nested = b'{"review_id": "rev-a", "reviewer": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    report = read({"decisions": [nested, json.dumps(DECISION).encode()]})
    assert report.input["decisions"].unreadable == 1
    assert report.review.decisions_received["approve"] == 1
    # Handed over directly, past the reader: its key walks into nothing a producer nested.
    for field in ("review_id", "reviewer", "decision", "decided_at"):
        given = {"review_id": "rev-a", "decision": "reject", field: hostile.nest(5000)}
        report = build_report({"decisions": [given, DECISION]})
        assert report.input["decisions"].read == 2
        check(report)


def test_a_5000_digit_integer_is_unreadable_and_a_4000_digit_one_is_harmless() -> None:
    huge = b"9" * 5000
    assert parse_record(b'{"referral_id": "r", "item_id": ' + huge + b"}") is None
    big = {**referral("a"), "item_id": 10**3999, "source": {"partition": 10**3999}}
    report = read({"referrals": [json.dumps(big).encode()], "dlq": [json.dumps(big).encode()]})
    assert report.totals.referrals == 1 and report.totals.items == 0
    check(report)


def test_platform_with_a_crlf_a_table_row_and_a_script_is_shown_as_text() -> None:
    evil = "evil\r\n| x | <script>alert(1)</script>"
    report = build_report(
        {"referrals": [referral("a", platform=evil)], "cleared": [cleared("b", platform=evil)]}
    )
    markdown, document = check(report)
    # Rendered: evil\u000d\u000a| x | <script>alert(1)</script>, as text in one cell.
    assert "| evil\\\\u000d\\\\u000a\\| x \\| &lt;script&gt;alert(1)&lt;/script&gt; | 1 |" in markdown
    assert "<script>" not in markdown and "\r" not in markdown
    assert json.loads(document)["referrals"]["by_platform"] == {evil: 1}, "JSON keeps the exact value"


def test_lang_with_an_escape_sequence_cannot_drive_the_terminal() -> None:
    report = build_report({"referrals": [referral("a", lang="en\x1b[31m\u202e\u2028")]})
    markdown, document = check(report)
    assert "\x1b" not in markdown and "| en\\\\u001b\\[31m\\\\u202e\\\\u2028 | 1 |" in markdown
    assert not {"\x1b", "\u202e", "\u2028"} & set(document)
    assert json.loads(document)["referrals"]["by_lang"] == {"en\x1b[31m\u202e\u2028": 1}


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "markdown"])
def test_the_command_prints_any_report_whatever_the_locale(
    monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    import streams.reporting.read

    def fake_read(settings: object, names: object, *, unreadable: dict[str, int]) -> dict[str, list[Any]]:
        return {"referrals": [referral("a", platform="\u6f22\u5b57\u202e", lang="\x1b[31m")]}

    monkeypatch.setattr(streams.reporting.read, "read_topics", fake_read)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")  # as under LANG=C without coercion
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["report", *(["--json"] if as_json else [])]) == 0
    printed = stdout.buffer.getvalue().decode("utf-8")
    assert "\u6f22\u5b57" in printed and "\x1b" not in printed and "\u202e" not in printed
    if as_json:
        assert json.loads(printed)["referrals"]["by_platform"] == {"\u6f22\u5b57\u202e": 1}


def test_long_values_are_cut_in_markdown_only() -> None:
    model = {"name": "m" * 500, "revision": "r1"}
    report = build_report({"referrals": [{**referral("a"), "model": model}]})
    markdown, document = check(report)
    cell = "m" * (CELL_CHARS - 1) + "\u2026"
    assert f"| {cell} | 1 |" in markdown
    assert json.loads(document)["referrals"]["by_model"] == {f"{'m' * 500}@r1": 1}


def test_markdown_and_html_in_every_kind_of_key_are_escaped() -> None:
    attack = "`x` [a](https://example.test) ![p](https://example.test/p.png) <b>&"
    report = build_report(
        {
            "referrals": [
                referral("a", labels=(attack,), decided_by="hashbank", match=attack),
                {**referral("b", decided_by=attack), "model": {"name": attack, "revision": attack}},
            ],
            "dlq": [{**dead("c", attack, 1), "stage": attack}],
            "cleared": [cleared("d", shadow={"model": {"name": attack}, "flagged": True})],
        }
    )
    markdown, _ = check(report)
    escaped = "\\`x\\` \\[a\\](https://example.test) !\\[p\\](https://example.test/p.png) &lt;b&gt;&amp;"
    assert markdown.count(escaped) >= 4, "decision route, model, error code, shadow model"


def test_observed_at_in_year_1_is_not_timed_but_counted() -> None:
    records = [
        referral("a", observed_at=at(10, 11, 59, 30), classified_at=at(10, 12)),
        referral("year-1", observed_at="0001-01-01T00:00:00Z", classified_at=at(10, 12)),
        referral("1989", observed_at="1989-12-31T23:59:59Z", classified_at=at(10, 12)),
        referral("after", observed_at=at(10, 13), classified_at=at(10, 12)),
        referral("overflow", observed_at="0001-01-01T00:00:00+23:59", classified_at=at(10, 12)),
        referral("not-a-time", observed_at="yesterday", classified_at=at(10, 12)),
        {**referral("wrong-type"), "observed_at": 1_700_000_000},
        referral("1990", observed_at="1990-01-01T00:00:00Z", classified_at=at(10, 12)),
        referral("unobserved"),
    ]
    report = build_report({"referrals": records})
    assert report.time_to_referral.count == 2
    assert report.input["referrals"].implausible_observed_at == 6
    assert report.input["referrals"].in_period == 9
    markdown, document = check(report)
    assert json.loads(document)["input"]["referrals"]["implausible_observed_at"] == 6
    assert "6 referrals with an observed_at that is not a plausible capture time" in markdown


def test_verdict_times_that_overflow_in_utc_count_as_undated() -> None:
    records = [
        referral("low", classified_at="0001-01-01T00:00:00+23:59"),
        referral("high", classified_at="9999-12-31T23:59:59-23:59"),
        referral("edge", classified_at="9999-12-31T23:59:59Z"),
    ]
    report = build_report({"referrals": records}, parse_when("0001-01-01"))
    assert report.input["referrals"].undated == 2
    assert report.period.last_verdict_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    check(report)


def test_a_report_boundary_that_overflows_in_utc_is_refused() -> None:
    with pytest.raises(ValueError, match="in years 1 to 9999 UTC"):
        parse_when("0001-01-01T00:00:00+01:00")
    assert parse_when("2026-11-01T10:30:00+02:00").tzinfo is UTC
