"""Review routing on the real broker: the review band, reviewers' decisions, and the examples
they leave, scored by ``propwatch evaluate --decisions``."""

from __future__ import annotations

import json
import time

from jsonschema import Draft202012Validator, FormatChecker

from classifiers.base import LABELS
from streams.io import produce_lines
from streams.records import DecisionMessage, load_schema
from streams.review.signing import sign
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


def test_decisions_wait_for_the_reviews_and_the_first_one_is_in_force(deployment: Deployment) -> None:
    """Decisions already on the topic when a worker starts are applied, not refused as
    unknown_review; approve-then-reject yields one referral and an already_decided dead letter; a
    replay writes nothing; a supervisor's supersede is applied and recorded."""
    first = deployment.start_worker(**REVIEW_ALL)
    produce_lines(deployment.settings, [post(i, text) for i, text in enumerate(TEXTS[:2])])
    reviews = {r["item_id"]: r for _, r in deployment.read_outputs(expected=2)["review"]}
    first.stop()

    def decision(item: str, verdict: str, decision_id: str, **extra: str) -> dict[str, str]:
        return {
            "review_id": reviews[item]["review_id"],
            "decision": verdict,
            "reviewer": "analyst-7",
            "decision_id": decision_id,
            **extra,
        }

    deployment.send(
        "decisions",
        [
            decision("rv-0", "approve", "d1"),
            decision("rv-0", "reject", "d2", reason="a second opinion that came too late"),
            decision("rv-0", "approve", "d1"),  # the tool sent it again
            decision("rv-1", "approve", "d4", labels=["instruction"], override_reason="links a manual"),
            decision("rv-1", "reject", "d5", supersedes="d4", reason="supervisor: satire"),
        ],
        key="review_id",
    )
    deployment.start_worker(**REVIEW_ALL)  # its followers read reviews and decisions before it decides
    out = deployment.read_outputs(expected=6, topics=("referrals", "cleared", "dlq", "hashbank"))
    time.sleep(3)  # anything written twice would be here by now
    out = deployment.read_outputs(
        expected=10**6, timeout_s=3, topics=("referrals", "cleared", "dlq", "hashbank")
    )

    referrals = [(r["item_id"], r["review"]["decision_id"]) for _, r in out["referrals"]]
    assert sorted(referrals) == [("rv-0", "d1"), ("rv-1", "d4")], "one referral per applied approval"
    [(_, overridden)] = [(k, r) for k, r in out["referrals"] if r["item_id"] == "rv-1"]
    assert (
        overridden["labels"] == ["instruction"]
        and overridden["review"]["override_reason"] == "links a manual"
    )
    [(_, cleared)] = out["cleared"]
    assert cleared["item_id"] == "rv-1" and cleared["review"]["supersedes"] == "d4"
    dead = [(r["error"]["code"], r["item_id"]) for _, r in out["dlq"]]
    assert dead == [("already_decided", reviews["rv-0"]["review_id"])], "d2 refused, the replay silent"
    ops = sorted((r["op"], r["entry_id"]) for _, r in out["hashbank"])
    assert ops == sorted(
        [
            ("add", f"referral:{dict(referrals_by_id(out))['rv-0']}"),
            ("add", f"referral:{overridden['referral_id']}"),
            ("remove", f"referral:{overridden['referral_id']}"),
        ]
    ), "the superseded approval's bank entry is withdrawn"


def referrals_by_id(out: dict[str, list[tuple[str, dict]]]) -> list[tuple[str, str]]:
    return [(r["item_id"], r["referral_id"]) for _, r in out["referrals"]]


def test_with_a_decision_key_only_signed_decisions_are_applied(deployment: Deployment) -> None:
    """The key set: an unsigned decision produced straight to the decisions topic is dead-lettered
    as ``unsigned_decision`` and is never in force; the signed decision that follows, as the
    console writes it, becomes the referral, whose review block records the reviewer and role."""
    key = "integration-test-decision-key"
    deployment.start_worker(**REVIEW_ALL, PROPWATCH_DECISION_KEY=key)
    produce_lines(deployment.settings, [post(0, TEXTS[0])])
    [(_, review)] = deployment.read_outputs(expected=1)["review"]
    forged = {
        "review_id": review["review_id"],
        "decision": "approve",
        "reviewer": "analyst-7",
        "decision_id": "d-1",
        "labels": ["threat"],
    }
    deployment.send("decisions", [forged], key="review_id")
    topics = ("referrals", "cleared", "dlq")
    [(_, dead)] = deployment.read_outputs(expected=1, topics=topics)["dlq"]
    assert dead["error"]["code"] == "unsigned_decision" and dead["stage"] == "review"
    assert dead["item_id"] == review["review_id"] and "no signature" in dead["error"]["message"]

    sent = DecisionMessage(
        review_id=review["review_id"],
        decision="approve",
        reviewer="analyst-7",
        role="reviewer",
        labels=("recruitment",),
        reason="recruits for a fictional group",
        decision_id="d-1",  # the forgery's id: were the forgery in force, this would be a replay
        decided_at="2026-11-30T10:00:00Z",
    ).as_json()
    deployment.send("decisions", [{**sent, "signature": sign(sent, key.encode())}], key="review_id")
    out = deployment.read_outputs(expected=2, topics=topics)
    [(_, referral)] = out["referrals"]
    assert referral["labels"] == ["recruitment"] and referral["decided_by"] == "review"
    assert referral["review"]["reviewer"] == "analyst-7" and referral["review"]["role"] == "reviewer"
    assert referral["review"]["decision_id"] == "d-1"
    Draft202012Validator(load_schema("referral"), format_checker=FormatChecker()).validate(referral)
    assert out["cleared"] == [] and [r["error"]["code"] for _, r in out["dlq"]] == ["unsigned_decision"]
