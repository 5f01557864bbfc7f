"""The transparency report on hand-made records: no broker."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.cli import build_parser, main
from streams.records import (
    Cleared,
    ContentItem,
    DeadLetter,
    DecidedBy,
    Decision,
    ErrorCode,
    Referral,
    Rejection,
    SourcePosition,
    Subject,
)
from streams.records import Review as ReviewRecord
from streams.reporting import views
from streams.reporting.build import build_report
from streams.reporting.figures import Report, parse_when
from streams.reporting.render import format_markdown
from tests.unit.test_records import MODEL as RECORD_MODEL
from tests.unit.test_records import evidence, parse

MODEL = {"name": "tco-base", "revision": "r1"}
SHADOW_MODEL = {"name": "tco-next", "revision": "r2"}


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 11) -> str:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def referral(
    item: str,
    *,
    labels: tuple[str, ...] = ("incitement",),
    classified_at: str | None = None,
    observed_at: str | None = None,
    platform: str | None = "forum-a",
    lang: str | None = "en",
    decided_by: str = "model",
    match: str | None = None,
    review: str | None = None,
    shadow: dict[str, Any] | None = None,
    referral_id: str | None = None,
) -> dict[str, Any]:
    """A v2 referral record with synthetic, non-operational text."""
    return {
        "schema_version": 2,
        "referral_id": referral_id or f"ref-{item}",
        "item_id": item,
        "url": f"https://example.test/{item}",
        "platform": platform,
        "lang": lang,
        "text": "placeholder text for a test",
        "labels": list(labels),
        "decided_by": decided_by,
        "scores": {} if decided_by == "hashbank" else dict.fromkeys(labels, 0.9),
        "model": None if decided_by == "hashbank" else MODEL,
        "match": None
        if match is None
        else {"type": match, "entry_id": "e1", "similarity": 1.0, "labels": list(labels)},
        "review": None
        if review is None
        else {"review_id": f"rev-{item}", "decision": review, "reviewer": "r"},
        "shadow": shadow,
        "classified_at": classified_at or at(10),
        "observed_at": observed_at,
    }


def cleared(
    item: str,
    *,
    classified_at: str | None = None,
    platform: str | None = "forum-a",
    lang: str | None = "en",
    decided_by: str = "model",
    review: str | None = None,
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": 2,
        "item_id": item,
        "platform": platform,
        "lang": lang,
        "scores": {"incitement": 0.1},
        "model": MODEL,
        "decided_by": decided_by,
        "review": None
        if review is None
        else {"review_id": f"rev-{item}", "decision": review, "reviewer": "r"},
        "shadow": shadow,
        "classified_at": classified_at or at(10),
        "observed_at": None,
    }


def queued(
    item: str, *, classified_at: str | None = None, shadow: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "schema_version": 2,
        "review_id": f"rev-{item}",
        "item_id": item,
        "platform": "forum-a",
        "lang": "en",
        "text": "placeholder text for a test",
        "labels": ["threat"],
        "model": MODEL,
        "shadow": shadow,
        "classified_at": classified_at or at(10),
    }


def dead(item: str, code: str, offset: int, *, received_at: str | None = None) -> dict[str, Any]:
    return {
        "schema_version": 2,
        "item_id": item,
        "error": {"code": code, "message": "synthetic"},
        "stage": "validate",
        "payload": "{}",
        "payload_encoding": "utf-8",
        "source": {"topic": "propwatch.content", "partition": 0, "offset": offset},
        "received_at": received_at or at(10),
    }


def shadow(flagged: bool, agrees: bool) -> dict[str, Any]:
    return {"model": SHADOW_MODEL, "scores": {}, "labels": [], "flagged": flagged, "agrees": agrees}


def report_of(
    since: datetime | None = None, until: datetime | None = None, **topics: list[dict[str, Any]]
) -> Report:
    return build_report(topics, since, until)


def test_redelivered_records_are_counted_once() -> None:
    one = referral("a")
    report = report_of(
        referrals=[one, dict(one), referral("b")],
        cleared=[cleared("c"), cleared("c")],
        dlq=[dead("d", "invalid_json", 7), dead("d", "invalid_json", 7), dead("e", "invalid_json", 8)],
    )
    assert report.totals.referrals == 2
    assert report.totals.cleared == 1
    assert report.totals.dlq == 2
    assert report.totals.items == 3
    assert report.input["referrals"].read == 3
    assert report.input["referrals"].duplicates == 1
    assert report.input["dlq"].duplicates == 1
    assert report.referrals_by_platform == {"forum-a": 2}


def test_an_item_with_two_labels_counts_under_both() -> None:
    report = report_of(referrals=[referral("a", labels=("incitement", "threat")), referral("b")])
    assert report.referrals_by_label == {"incitement": 2, "recruitment": 0, "instruction": 0, "threat": 1}
    assert report.multi_label_referrals == 1
    assert report.totals.referrals == 2


def test_since_is_inclusive_and_until_exclusive() -> None:
    records = [
        referral("before", classified_at=at(31, 23, 59, 59, month=10)),
        referral("first", classified_at=at(1, 0)),
        referral("last", classified_at=at(30, 23, 59, 59)),
        referral("after", classified_at=at(1, 0, month=12)),
    ]
    since, until = parse_when("2026-11-01"), parse_when("2026-12-01")
    report = report_of(since, until, referrals=records)
    assert report.totals.referrals == 2
    assert report.period.first_verdict_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert report.period.last_verdict_at == datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    assert report.input["referrals"].out_of_period == 2
    assert report.as_json()["period"]["since"] == "2026-11-01T00:00:00Z"
    assert report_of(since, referrals=records).totals.referrals == 3
    assert report_of(None, until, referrals=records).totals.referrals == 3


def test_undated_records_are_left_out_only_when_the_period_is_bounded() -> None:
    records = [referral("a", classified_at="yesterday")]
    assert report_of(referrals=records).totals.referrals == 1
    bounded = report_of(parse_when("2026-11-01"), referrals=records)
    assert bounded.totals.referrals == 0
    assert bounded.input["referrals"].undated == 1


def test_median_and_p90_of_the_time_to_referral() -> None:
    records = [
        referral(f"i{n}", observed_at=at(10, 11, 59, 60 - s) if s else at(10, 12), classified_at=at(10, 12))
        for n, s in enumerate((10, 20, 30, 40, 50))
    ] + [referral("unobserved")]
    latency = report_of(referrals=records).time_to_referral
    assert latency.count == 5
    assert latency.median_s == 30.0
    assert latency.p90_s == 46.0  # 40 + 0.6 * (50 - 40), linear between the closest ranks
    assert report_of(referrals=records).time_to_referral_by_decided_by["model"].count == 5


def test_review_approved_rejected_and_pending() -> None:
    report = report_of(
        review=[
            queued("approved", classified_at=at(10)),
            queued("rejected", classified_at=at(10)),
            queued("waiting", classified_at=at(10)),
        ],
        referrals=[referral("approved", decided_by="review", review="approve", classified_at=at(11))],
        cleared=[cleared("rejected", decided_by="review", review="reject", classified_at=at(12))],
        decisions=[
            {"decision_id": "d1", "review_id": "rev-approved", "decision": "approve", "decided_at": at(11)},
            {"decision_id": "d1", "review_id": "rev-approved", "decision": "approve", "decided_at": at(11)},
            {"decision_id": "d2", "review_id": "rev-rejected", "decision": "reject", "decided_at": at(12)},
            {"decision_id": "d3", "review_id": "rev-x", "decision": "maybe", "decided_at": at(12)},
        ],
    )
    assert (report.review.queued, report.review.approved, report.review.rejected) == (3, 1, 1)
    assert report.review.pending == report.totals.pending_review == 1
    assert report.review.decisions_received == {"total": 3, "approve": 1, "reject": 1, "other": 1}
    assert report.totals.items == 3, "approved counts as referred, rejected as cleared, one pending"
    assert report.totals.referrals == 1
    assert report.referrals_by_decided_by == {"model": 0, "hashbank": 0, "review": 1}


def test_a_review_decided_after_the_period_was_pending_at_its_end() -> None:
    records = {
        "review": [queued("x", classified_at=at(30))],
        "referrals": [referral("x", decided_by="review", review="approve", classified_at=at(2, month=12))],
    }
    november = build_report(records, parse_when("2026-11-01"), parse_when("2026-12-01"))
    december = build_report(records, parse_when("2026-12-01"), parse_when("2027-01-01"))
    assert (november.review.pending, november.totals.referrals) == (1, 0)
    assert (december.review.pending, december.review.queued, december.review.approved) == (0, 0, 1)


def test_a_later_referral_supersedes_a_clearance_of_the_same_item() -> None:
    report = report_of(
        cleared=[cleared("x", classified_at=at(10))],
        referrals=[referral("x", decided_by="hashbank", match="near", classified_at=at(11))],
    )
    assert (report.totals.referrals, report.totals.cleared, report.totals.items) == (1, 0, 1)


def test_known_content_matches_by_type() -> None:
    report = report_of(
        referrals=[
            referral("a", decided_by="hashbank", match="exact"),
            referral("b", decided_by="hashbank", match="near"),
            referral("c", decided_by="hashbank", match="exact"),
            referral("d"),
        ]
    )
    assert report.known_content_by_type == {"exact": 2, "near": 1}
    assert report.referrals_by_model == {"hashbank": 3, "tco-base@r1": 1}
    assert report.as_json()["known_content"] == {"matches": 3, "by_type": {"exact": 2, "near": 1}}


def test_dlq_by_error_code() -> None:
    report = report_of(
        dlq=[dead("a", "invalid_json", 1), dead("b", "text_too_long", 2), dead("c", "invalid_json", 3)]
    )
    assert report.dlq_by_code == {"invalid_json": 2, "text_too_long": 1}
    assert report.dlq_by_stage == {"validate": 3}


def test_referral_rates_by_platform_and_lang_with_unknowns() -> None:
    report = report_of(
        referrals=[referral("a", platform="forum-a"), referral("b", platform=None, lang=None)],
        cleared=[cleared("c", platform="forum-a"), cleared("d", platform="forum-a"), cleared("e", lang="de")],
    )
    rates = report.as_json()["verdicts"]["by_platform"]
    assert rates["forum-a"] == {"verdicts": 4, "referrals": 1, "cleared": 3, "referral_rate": 0.25}
    assert rates["unknown"] == {"verdicts": 1, "referrals": 1, "cleared": 0, "referral_rate": 1.0}
    assert report.referrals_by_lang == {"en": 1, "unknown": 1}
    assert set(report.verdicts_by_lang) == {"de", "en", "unknown"}


def test_shadow_agreement_over_each_items_latest_verdict() -> None:
    report = report_of(
        referrals=[
            referral("a", shadow=shadow(flagged=True, agrees=True)),
            referral("b", shadow=shadow(flagged=False, agrees=False)),
            referral("c"),
        ],
        cleared=[cleared("d", shadow=shadow(flagged=False, agrees=True))],
        review=[queued("e", shadow=shadow(flagged=True, agrees=False))],
    )
    figures = report.as_json()["shadow"]["tco-next@r2"]
    assert figures == {
        "items": 4,
        "shadow_flagged": 2,
        "shadow_flag_rate": 0.5,
        "live_flagged": 2,
        "live_flag_rate": 0.5,
        "agreed": 2,
        "agreement_rate": 0.5,
    }
    assert report_of(referrals=[referral("a")]).shadow == {}


def test_empty_input_gives_zeros_and_null_medians() -> None:
    report = build_report({}, None, None)
    data = report.as_json()
    assert data["totals"] == {"items": 0, "referrals": 0, "cleared": 0, "pending_review": 0, "dlq": 0}
    assert data["time_to_referral"]["median_s"] is None
    assert data["time_to_referral"]["p90_s"] is None
    assert data["period"]["first_verdict_at"] is None
    assert data["referrals"]["by_label"] == {"incitement": 0, "recruitment": 0, "instruction": 0, "threat": 0}
    assert data["shadow"] == {}
    json.dumps(data)
    assert "## Summary" in format_markdown(report)


def test_json_has_the_documented_keys() -> None:
    data = report_of(referrals=[referral("a")]).as_json()
    assert list(data) == [
        "report_version",
        "generated_at",
        "period",
        "totals",
        "referrals",
        "verdicts",
        "time_to_referral",
        "review",
        "known_content",
        "dlq",
        "shadow",
        "input",
    ]
    assert set(data["input"]) == {"referrals", "cleared", "review", "dlq", "decisions"}
    assert set(data["input"]["referrals"]) == {
        "read",
        "unreadable",
        "invalid",
        "undated",
        "out_of_period",
        "duplicates",
        "in_period",
        "implausible_observed_at",
    }


def test_invalid_records_and_unreadable_counts_are_reported() -> None:
    report = build_report(
        {"referrals": [referral("a"), {"item_id": "no-referral-id"}]}, None, None, unreadable={"referrals": 2}
    )
    assert report.totals.referrals == 1
    assert (report.input["referrals"].invalid, report.input["referrals"].unreadable) == (1, 2)


def test_markdown_has_the_main_tables() -> None:
    report = report_of(
        referrals=[
            referral("a", labels=("incitement", "threat"), observed_at=at(10, 11), shadow=shadow(True, True)),
            referral("b", platform="video|site", decided_by="hashbank", match="exact"),
        ],
        cleared=[cleared("c")],
        dlq=[dead("d", "invalid_json", 1)],
    )
    text = format_markdown(report)
    assert text.startswith("# Transparency report")
    for heading in (
        "## Summary",
        "## Referrals by label",
        "## Referrals by platform",
        "## Referrals by language",
        "## Referrals by model",
        "## Referral rates",
        "## Time from observation to referral",
        "## Human review",
        "## Known-content matches",
        "## Processing failures",
        "## Shadow model evaluation",
        "## Records read",
    ):
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert "after de-duplication" in text
    assert "| Referrals | 2 |" in text
    assert "| threat | 1 | 50.0 % |" in text
    assert "| all | 1 | 1 h 0 min | 1 h 0 min |" in text
    assert "video\\|site" in text, "a pipe in the data does not break the table"
    assert "| invalid_json | 1 |" in text


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:30:00Z", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
        ("2026-11-01T10:30:00+02:00", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_cli_since_accepts_a_date_or_an_rfc3339_timestamp(value: str, expected: datetime) -> None:
    args = build_parser().parse_args(["report", "--since", value, "--json"])
    assert args.since == expected
    assert args.until is None
    assert args.json is True


@pytest.mark.parametrize("value", ["2026-13-01", "last week", "2026-11-01T08:30:00", "01/11/2026"])
def test_cli_refuses_a_bad_since_with_exit_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["report", "--since", value])
    assert exc.value.code == 2
    error = capsys.readouterr().err
    assert "--since" in error
    assert "RFC 3339" in error or "not a valid date" in error


def test_cli_refuses_since_after_until_before_reading(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--since", "2026-12-01", "--until", "2026-11-01"]) == 2
    assert "must be before --until" in capsys.readouterr().err


def test_cli_prints_json_or_writes_both_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import streams.reporting.read

    def fake_read(settings: object, names: object, *, unreadable: dict[str, int]) -> dict[str, list[Any]]:
        unreadable["dlq"] = 1
        return {
            "referrals": [referral("a", classified_at=at(10))],
            "cleared": [cleared("b", classified_at=at(9))],
        }

    monkeypatch.setattr(streams.reporting.read, "read_topics", fake_read)
    assert main(["report", "--since", "2026-11-10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["referrals"] == 1 and data["totals"]["cleared"] == 0
    assert data["input"]["dlq"]["unreadable"] == 1
    assert data["generated_at"] is not None

    prefix = tmp_path / "november"
    assert main(["report", "--out", str(prefix)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads(prefix.with_suffix(".json").read_text())["totals"]["items"] == 2
    assert "## Summary" in prefix.with_suffix(".md").read_text()


def test_version_3_records_as_the_pipeline_writes_them_are_counted_like_version_2() -> None:
    def item(name: str) -> ContentItem:
        parsed = parse(json.dumps({"id": name, "text": "placeholder", "platform": "forum-a"}).encode())
        assert isinstance(parsed, ContentItem)
        return parsed

    written = {
        "referrals": Referral.of(
            Subject.of(item("a"), None),
            labels=["incitement"],
            decided_by=DecidedBy.MODEL,
            basis=RECORD_MODEL.basis,
            scores={"incitement": 0.9},
            thresholds={"incitement": 0.5},
            model=RECORD_MODEL,
            classified_at=at(10),
            evidence=evidence(item("a")),
        ),
        "review": ReviewRecord.of(
            Subject.of(item("b"), None),
            labels=["threat"],
            scores={"threat": 0.6},
            thresholds={"threat": 0.9},
            review_thresholds={"threat": 0.5},
            model=RECORD_MODEL,
            classified_at=at(10),
            evidence=evidence(item("b")),
        ),
        "cleared": Cleared(
            item_id="c",
            platform=None,
            lang="en",
            content_sha256="0" * 64,
            scores={"incitement": 0.1},
            model=RECORD_MODEL,
            classified_at=at(10),
            observed_at=None,
        ),
        "dlq": DeadLetter.of(
            Rejection(ErrorCode.INVALID_UTF8, "bad"), b"\xff", SourcePosition("t", 0, 7), received_at=at(10)
        ),
    }
    v3 = build_report({name: [record.as_json()] for name, record in written.items()})
    v2 = report_of(
        referrals=[referral("a", lang=None)],
        review=[queued("b")],
        cleared=[cleared("c", platform=None)],
        dlq=[dead("d", "invalid_utf8", 7)],
    )
    assert (
        v3.as_json()["totals"]
        == v2.as_json()["totals"]
        == {
            "items": 3,
            "referrals": 1,
            "cleared": 1,
            "pending_review": 1,
            "dlq": 1,
        }
    )
    assert v3.referrals_by_model == {"m@sha256:1": 1}
    assert v3.referrals_by_platform == {"forum-a": 1} and v3.referrals_by_label["incitement"] == 1
    assert v3.verdicts_by_platform.keys() == v2.verdicts_by_platform.keys() == {"forum-a", "unknown"}
    assert v3.dlq_by_code == v2.dlq_by_code == {"invalid_utf8": 1}
    assert v3.dlq_by_stage == v2.dlq_by_stage == {"validate": 1}


def test_the_views_hold_only_fields_that_the_records_have() -> None:
    """A view reads each field by the record's own name (or the block it is read from), so a
    rename in :mod:`streams.records` cannot leave the report counting a field that is gone."""
    read_from = {"reviewed": "review", "match_type": "match", "code": "error", "key": "decision_id"}
    for view, record in (
        (views.ReferralView, Referral),
        (views.ClearedView, Cleared),
        (views.ReviewView, ReviewRecord),
        (views.DeadLetterView, DeadLetter),
        (views.DecisionView, Decision),
    ):
        for field in fields(view):
            assert read_from.get(field.name, field.name) in record.model_fields, (view.__name__, field.name)
