"""Which decision applies: the first valid one in the log, an explicit supersede, nothing for a
replay; forged review records and labels outside the candidates refused. No broker: the review
queue and the decision log are fed as their followers would feed them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import pytest

from classifiers.base import LABELS
from streams.kafka.follower import Followed
from streams.metrics import Metrics
from streams.pipeline.messages import Message, Output
from streams.records import ContentItem, ModelRef, Review, SourcePosition, Subject, encode, parse_item
from streams.records.outputs import Evidence, Thresholds, custody_step
from streams.review.decisions import DecisionProcessor
from streams.review.log import DecisionLog
from streams.review.queue import ReviewQueue

NOW = time.time()
MODEL = ModelRef(name="scripted", revision="1")


def review(
    item_id: str = "rv-1", text: str = "The Grey Heron Front wants new members, message us"
) -> dict[str, Any]:
    item = parse_item(json.dumps({"id": item_id, "text": text, "lang": "en"}).encode(), max_text_bytes=10_000)
    assert not hasattr(item, "code")
    assert isinstance(item, ContentItem)
    return Review.of(
        Subject.of(item, None),
        model=MODEL,
        labels=("recruitment", "threat"),
        scores={label: 0.4 for label in LABELS},
        thresholds=dict.fromkeys(LABELS, 0.5),
        review_thresholds=dict.fromkeys(LABELS, 0.3),
        classified_at="2026-11-20T09:14:04.000Z",
        evidence=Evidence(
            captured_at=None,
            content_sha256=item.content_sha256,
            normalised_sha256="0" * 64,
            normalisation="test",
            model=None,
            thresholds=Thresholds(referral=dict.fromkeys(LABELS, 0.5), review=dict.fromkeys(LABELS, 0.3)),
            scores={label: 0.4 for label in LABELS},
            match=None,
            source=SourcePosition("t", 0, 0).block,
            chain_of_custody=(custody_step("received", "2026-11-20T09:14:04.000Z", "w"),),
        ),
    ).as_json()


class Desk:
    """A review queue, a decision log (holding ``keys``, the decision keys, if any) and the
    processor, with decisions appended to the log in order the way the decisions topic's follower
    appends them."""

    def __init__(self, *reviews: dict[str, Any], keys: Sequence[bytes] = ()) -> None:
        self.queue = ReviewQueue(LABELS)
        self.log = DecisionLog(LABELS, keys)
        self.metrics = Metrics()
        self.processor = DecisionProcessor(
            self.queue,
            self.log,
            reviews_follower=None,
            log_follower=None,
            metrics=self.metrics,
            actor="worker",
            learn=True,
            max_message_bytes=1_000_000,
        )
        self.offset = 0
        for i, record in enumerate(reviews):
            assert self.queue.apply(Followed(None, encode(record), SourcePosition("r", 0, i), NOW)) is None

    def send(
        self, decision: dict[str, Any] | bytes, *, offset: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Append ``decision`` to the log (or redeliver the one at ``offset``) and process it."""
        raw = decision if isinstance(decision, bytes) else json.dumps(decision).encode()
        if offset is None:
            offset, self.offset = self.offset, self.offset + 1
            self.log.apply(Followed(None, raw, SourcePosition("d", 0, offset), NOW + offset))
        message = Message(raw, SourcePosition("d", 0, offset), NOW + offset)
        outputs: list[Output] = asyncio.run(self.processor.process([message]))
        return [(o.topic.name, json.loads(o.value)) for o in outputs]


def decision(rv: dict[str, Any], verdict: str = "approve", **fields: Any) -> dict[str, Any]:
    return {"review_id": rv["review_id"], "decision": verdict, "reviewer": "analyst-7", **fields}


def topics(out: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in out]


def code(out: list[tuple[str, dict[str, Any]]]) -> str:
    [(name, record)] = out
    assert name == "dlq"
    return record["error"]["code"]


def test_the_first_decision_is_in_force_and_a_later_one_is_already_decided() -> None:
    rv = review()
    desk = Desk(rv)
    first = desk.send(decision(rv, decision_id="d1", labels=["recruitment"]))
    assert topics(first) == ["referrals", "examples", "hashbank"]
    second = desk.send(decision(rv, "reject", decision_id="d2", reason="changed my mind"))
    assert code(second) == "already_decided"
    assert "d1" in second[0][1]["error"]["message"] and second[0][1]["item_id"] == rv["review_id"]


def test_a_replay_writes_nothing_new() -> None:
    rv = review()
    desk = Desk(rv)
    raw = json.dumps(decision(rv)).encode()  # no decision_id: it follows from the bytes
    assert topics(desk.send(raw))[0] == "referrals"
    assert desk.send(raw) == []
    assert desk.metrics.decision_replays._value.get() == 1


def test_a_redelivered_decision_repeats_its_records() -> None:
    rv = review()
    desk = Desk(rv)
    first = desk.send(decision(rv, decision_id="d1"))
    desk.send(decision(rv, "reject", decision_id="d2"))
    again = desk.send(decision(rv, decision_id="d1"), offset=0)

    def timeless(out: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        return [
            (n, {k: v for k, v in r.items() if k not in ("classified_at", "evidence", "added_at")})
            for n, r in out
        ]

    assert timeless(again) == timeless(first), "the same offset gets the same answer, whatever followed it"


def test_a_supersede_is_applied_and_recorded_and_withdraws_what_the_approval_taught() -> None:
    rv = review()
    desk = Desk(rv)
    [referral] = [r for n, r in desk.send(decision(rv, decision_id="d1")) if n == "referrals"]
    change = desk.send(decision(rv, "reject", decision_id="d2", supersedes="d1", reason="satire"))
    assert topics(change) == ["cleared", "examples", "hashbank"]
    cleared = change[0][1]
    assert cleared["decided_by"] == "review" and cleared["review"]["supersedes"] == "d1"
    assert change[2][1] == {
        "schema_version": 2,
        "op": "remove",
        "entry_id": f"referral:{referral['referral_id']}",
    }
    back = desk.send(decision(rv, decision_id="d3", supersedes="d2", labels=["threat"]))
    assert topics(back)[0] == "referrals" and back[0][1]["referral_id"] != referral["referral_id"]


def test_a_stale_or_empty_supersede_is_refused() -> None:
    rv = review()
    desk = Desk(rv)
    assert code(desk.send(decision(rv, decision_id="d0", supersedes="nothing"))) == "invalid_decision"
    desk.send(decision(rv, decision_id="d1"))
    desk.send(decision(rv, "reject", decision_id="d2", supersedes="d1"))
    assert code(desk.send(decision(rv, decision_id="d3", supersedes="d1"))) == "already_decided"


def test_labels_outside_the_candidates_need_an_override_reason() -> None:
    rv = review()
    desk = Desk(rv)
    refused = desk.send(decision(rv, labels=["instruction"]))
    assert code(refused) == "invalid_decision" and "override_reason" in refused[0][1]["error"]["message"]
    out = desk.send(decision(rv, labels=["instruction"], override_reason="links a weapons manual"))
    [referral] = [r for n, r in out if n == "referrals"]
    assert referral["labels"] == ["instruction"]
    assert referral["review"]["override_reason"] == "links a weapons manual"
    assert (
        referral["evidence"]["chain_of_custody"][-2]["detail"]["override_reason"] == "links a weapons manual"
    )


def test_a_refused_decision_does_not_count_as_the_first() -> None:
    rv = review()
    desk = Desk(rv)
    desk.send(decision(rv, labels=["instruction"]))  # refused: no override
    assert topics(desk.send(decision(rv, "reject")))[0] == "cleared"


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"content_sha256": "0" * 64}, "content_sha256"),
        ({"review_id": "forged-review"}, "review_id does not follow"),
        ({"text": "another text"}, "content_sha256"),
        ({"labels": ["propaganda"]}, "labels"),
        ({"scores": {"threat": float("nan")}}, "not JSON"),
        ({"scores": {"threat": 7}}, "scores"),
        ({"schema_version": 1}, "schema_version"),
        ({"evidence": None}, "evidence"),
        ({"platform": "forum\r\nX"}, "platform"),
    ],
)
def test_forged_review_records_are_refused_and_never_decided(change: dict[str, Any], problem: str) -> None:
    forged = {**review(), **change}
    queue = ReviewQueue(LABELS)
    raw = json.dumps(forged, allow_nan=True).encode()
    error = queue.apply(Followed(None, raw, SourcePosition("r", 0, 0), NOW))
    assert error is not None and problem in error
    desk = Desk()
    desk.queue = queue
    desk.processor.reviews = queue
    assert code(desk.send(decision(forged))) == "unknown_review"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"review_id": "x", "decision": "approve", "reviewer": "r", "decision_id": "a\\ud800"}',
        b'{"review_id": ' + b"9" * 5000 + b"}",
        b"\xff",
        b"",
    ],
)
def test_hostile_decisions_are_dead_letters(raw: bytes) -> None:
    desk = Desk(review())
    assert code(desk.send(raw)) == "invalid_decision"
    assert ReviewQueue(LABELS).apply(Followed(None, raw, SourcePosition("r", 0, 0), NOW)) is not None


def test_a_decision_without_a_time_needs_a_message_timestamp() -> None:
    rv = review()
    desk = Desk(rv)
    message = Message(json.dumps(decision(rv)).encode(), SourcePosition("d", 0, 0), None)
    [output] = asyncio.run(desk.processor.process([message]))
    assert json.loads(output.value)["error"]["code"] == "invalid_decision"


def test_approving_a_text_without_letters_refers_it_without_a_bank_entry() -> None:
    rv = review(text="🔥🔥 https://example.org/x 🔥")
    desk = Desk(rv)
    assert topics(desk.send(decision(rv))) == ["referrals", "examples"]


def test_decided_reviews_close_after_the_retention_and_stay_decided() -> None:
    rv = review()
    desk = Desk(rv, review("rv-2"))
    desk.send(decision(rv, decision_id="d1"))
    assert desk.queue.close(desk.log, now=NOW + 10, retention_s=3600, before={0: 1}) == 0
    assert desk.queue.close(desk.log, now=NOW + 7200, retention_s=3600, before={0: 0}) == 0, "not yet applied"
    assert desk.queue.close(desk.log, now=NOW + 7200, retention_s=3600, before={0: 1}) == 1
    assert rv["review_id"] not in desk.queue.records and len(desk.queue.records) == 1, "the pending one stays"
    assert desk.send(decision(rv, decision_id="d1")) == []
    assert code(desk.send(decision(rv, "reject", supersedes="d1"))) == "already_decided"
    # the item redelivered re-sends its review record: a closed review stays closed
    assert desk.queue.apply(Followed(None, encode(rv), SourcePosition("r", 0, 9), NOW)) is None
    assert rv["review_id"] not in desk.queue.records


def test_review_records_of_the_previous_schema_version_are_still_decided() -> None:
    rv = {**review(), "schema_version": 2}
    assert Review.from_json(encode(rv)).check(LABELS) is None
