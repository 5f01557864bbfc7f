"""Review routing on the real broker: the review band, reviewers' decisions, and the examples
they leave, scored by ``propwatch evaluate --decisions``."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator, FormatChecker

from classifiers.base import LABELS
from streams.io import produce_lines
from streams.records import load_schema
from tests.integration.conftest import Deployment

# Nothing reaches a referral threshold of 1, everything reaches a review threshold of 0: every
# valid item goes to review, whatever the tiny model's scores.
REVIEW_ALL = {
    "PROPWATCH_THRESHOLDS": json.dumps(dict.fromkeys(LABELS, 1.0)),
    "PROPWATCH_REVIEW_THRESHOLDS": json.dumps(dict.fromkeys(LABELS, 0.0)),
}


def post(i: int, text: str) -> bytes:
    return json.dumps(
        {
            "id": f"rv-{i}",
            "text": text,
            "platform": "forum",
            "lang": "en",
            "observed_at": "2026-11-28T10:00:00Z",
        }
    ).encode()


TEXTS = [
    "The Ashfall Circle wants new members for the coming struggle, message us",
    "Road closures this weekend because of the marathon",
    "Our fictional Ashfall Circle manual is out now, ask for the download link",
    "Match report: the home side killed it in the second half",
]


def test_decisions_turn_reviews_into_referrals_verdicts_and_examples(deployment: Deployment) -> None:
    deployment.start_worker(**REVIEW_ALL)
    produce_lines(deployment.settings, [post(i, text) for i, text in enumerate(TEXTS)])
    reviews = {r["item_id"]: r for _, r in deployment.read_outputs(expected=4)["review"]}
    assert sorted(reviews) == ["rv-0", "rv-1", "rv-2", "rv-3"]
    validator = Draft202012Validator(load_schema("review"), format_checker=FormatChecker())
    for review in reviews.values():
        validator.validate(review)
        assert review["labels"] == list(LABELS), "every label is a candidate at a review threshold of 0"

    decisions = [
        {
            "review_id": reviews["rv-0"]["review_id"],
            "decision": "approve",
            "reviewer": "analyst-7",
            "reason": "recruits for a violent group",
            "labels": ["recruitment"],
        },
        {
            "review_id": reviews["rv-1"]["review_id"],
            "decision": "reject",
            "reviewer": "analyst-7",
            "reason": "traffic news",
        },
        {"review_id": reviews["rv-2"]["review_id"], "decision": "approve", "reviewer": "analyst-9"},
        {"review_id": reviews["rv-3"]["review_id"], "decision": "approve"},  # no reviewer
        {"review_id": "no-such-review", "decision": "reject", "reviewer": "analyst-9"},
    ]
    deployment.send("decisions", decisions, key="review_id")
    topics = ("referrals", "cleared", "dlq", "examples")
    out = deployment.read_outputs(expected=7, topics=topics)

    referrals = {r["item_id"]: r for _, r in out["referrals"]}
    assert sorted(referrals) == ["rv-0", "rv-2"]
    approved = referrals["rv-0"]
    assert approved["decided_by"] == "review" and approved["labels"] == ["recruitment"]
    assert approved["review"]["reviewer"] == "analyst-7" and approved["review"]["decision"] == "approve"
    assert approved["scores"] == reviews["rv-0"]["scores"] and approved["model"] == reviews["rv-0"]["model"]
    assert referrals["rv-2"]["labels"] == list(LABELS), "no labels given: the review's candidates"
    steps = [s["step"] for s in approved["evidence"]["chain_of_custody"]]
    assert steps[-3:] == ["queued_for_review", "reviewed", "referred"]
    assert approved["evidence"]["chain_of_custody"][-2]["actor"] == "analyst-7"
    referral_schema = Draft202012Validator(load_schema("referral"), format_checker=FormatChecker())
    for record in referrals.values():
        referral_schema.validate(record)

    [(key, cleared)] = out["cleared"]
    assert (
        key == "rv-1" and cleared["decided_by"] == "review" and cleared["review"]["reason"] == "traffic news"
    )
    dead = {r["error"]["code"]: r for _, r in out["dlq"]}
    assert set(dead) == {"invalid_decision", "unknown_review"}
    assert "reviewer" in dead["invalid_decision"]["error"]["message"]
    assert (
        dead["unknown_review"]["stage"] == "review" and dead["unknown_review"]["item_id"] == "no-such-review"
    )

    examples = [r for _, r in out["examples"]]
    example_schema = Draft202012Validator(load_schema("example"), format_checker=FormatChecker())
    for example in examples:
        example_schema.validate(example)
    assert sorted((e["review"]["item_id"], tuple(e["labels"])) for e in examples) == [
        ("rv-0", ("recruitment",)),
        ("rv-1", ()),
        ("rv-2", tuple(LABELS)),
    ]

    # The collected decisions score a model: evaluate reads the examples topic.
    result = deployment.cli("evaluate", "--decisions", "--json", timeout_s=180, PROPWATCH_THRESHOLDS="{}")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["overall"]["items"] == 3 and report["overall"]["binary"]["positives"] == 2

    # What a reviewer approved is known content now: a re-upload is referred without a reviewer.
    produce_lines(deployment.settings, [post(99, TEXTS[0].upper() + "!!")])
    records = deployment.read_outputs(expected=0, ids={"rv-99"}, topics=("referrals",))["referrals"]
    [again] = [r for _, r in records if r["item_id"] == "rv-99"]
    assert again["decided_by"] == "hashbank"
    assert (
        again["match"]["type"] == "exact"
        and again["match"]["entry_id"] == f"referral:{approved['referral_id']}"
    )

    # The transparency report counts the review, the match and the dead letters.
    result = deployment.cli("report", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["review"]["approved"] == 2 and report["review"]["rejected"] == 1
    assert report["review"]["pending"] == 1, "rv-3's decision was invalid: it still waits"
    assert report["referrals"]["by_decided_by"] == {"model": 0, "hashbank": 1, "review": 2}
    assert report["known_content"]["by_type"]["exact"] == 1
    assert report["dlq"]["by_code"] == {"invalid_decision": 1, "unknown_review": 1}
