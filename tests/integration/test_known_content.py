"""Known-content matching on the real broker: a bank loaded from a file, updated through the
hashbank topic while running, and learning what the pipeline refers."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

from streams.dev.worker_process import WorkerProcess
from streams.io import produce_lines
from streams.records import load_schema
from tests.integration.conftest import Deployment

KNOWN = [
    {
        "entry_id": "feed-001",
        "text": "The Ashfall Circle calls every loyal son to rise and burn the traitors out of the valley.",
        "labels": ["incitement"],
    },
    {
        "entry_id": "feed-002",
        "text": "Wanted: young volunteers for the Grey Lantern Front. Training, a cause. Write to us.",
        "labels": ["recruitment"],
    },
]
ADDED_LATER = {
    "entry_id": "feed-003",
    "text": "Download the Grey Lantern field handbook today, the link is in our channel, share it widely.",
    "labels": ["instruction"],
}


def post(item_id: str, text: str) -> bytes:
    return json.dumps({"id": item_id, "text": text, "platform": "forum", "lang": "en"}).encode()


def health(worker: WorkerProcess) -> dict:
    with urllib.request.urlopen(f"{worker.url}/health", timeout=5) as response:
        return json.loads(response.read())


def referrals_by_id(deployment: Deployment, ids: set[str]) -> dict[str, dict]:
    outputs = deployment.read_outputs(expected=0, ids=ids)
    return {
        r["item_id"]: r for name in ("referrals", "cleared") for _, r in outputs[name] if r["item_id"] in ids
    }


def test_bank_file_topic_updates_and_learning(deployment: Deployment, tmp_path: Path) -> None:
    bank = tmp_path / "bank.jsonl"
    bank.write_text("".join(json.dumps(entry) + "\n" for entry in KNOWN))
    # Referral thresholds of 1 for all but threat, at 0: every unknown item is referred by the
    # model as a threat, whatever the tiny model's scores, so what is learned is predictable.
    worker = deployment.start_worker(
        PROPWATCH_HASHBANK_FILE=str(bank),
        PROPWATCH_THRESHOLDS='{"incitement": 1, "recruitment": 1, "instruction": 1, "threat": 0}',
    )
    produce_lines(
        deployment.settings,
        [
            post(
                "reupload",
                "THE ASHFALL CIRCLE calls every loyal son to rise and burn the traitors  out of the valley!!",
            ),
            post("light-edit", KNOWN[1]["text"].replace("Write to us.", "Write to us now, brothers.")),
            post("fresh", "A fictional notice about the Ember Road Alliance meeting next week"),
        ],
    )
    first = referrals_by_id(deployment, {"reupload", "light-edit", "fresh"})
    assert first["reupload"]["decided_by"] == "hashbank"
    assert first["reupload"]["match"] == {
        "type": "exact",
        "entry_id": "feed-001",
        "similarity": 1.0,
        "labels": ["incitement"],
    }
    assert first["reupload"]["labels"] == ["incitement"] and first["reupload"]["scores"] == {}
    near = first["light-edit"]["match"]
    assert first["light-edit"]["decided_by"] == "hashbank" and near["type"] == "near"
    assert near["entry_id"] == "feed-002" and 0.75 <= near["similarity"] < 1.0
    assert first["fresh"]["decided_by"] == "model" and first["fresh"]["labels"] == ["threat"]
    validator = Draft202012Validator(load_schema("referral"), format_checker=FormatChecker())
    for record in first.values():
        validator.validate(record)
    evidence = first["light-edit"]["evidence"]
    assert evidence["match"] == near and evidence["model"] is None
    assert [s["step"] for s in evidence["chain_of_custody"]][-2:] == ["hash_checked", "referred"]

    # An entry added through the topic while the worker runs, with the CLI a feed would use.
    later = tmp_path / "later.jsonl"
    later.write_text(json.dumps(ADDED_LATER) + "\n")
    added = deployment.cli("hashbank", "add", str(later))
    assert added.returncode == 0, added.stderr
    hashbank = deployment.read_outputs(expected=0, ids={"feed-003"}, topics=("hashbank",))["hashbank"]
    shared = [r for _, r in hashbank if r["entry_id"] == "feed-003"]
    assert shared and "text" not in shared[0], "only hashes are shared"
    learned = [r for _, r in hashbank if r["entry_id"] == f"referral:{first['fresh']['referral_id']}"]
    assert learned and learned[0]["labels"] == ["threat"], "what the model referred joined the bank"

    produce_lines(
        deployment.settings,
        [
            post("handbook", ADDED_LATER["text"].lower()),
            post("fresh-again", "a fictional notice about the Ember Road Alliance meeting next week."),
        ],
    )
    second = referrals_by_id(deployment, {"handbook", "fresh-again"})
    assert second["handbook"]["match"]["entry_id"] == "feed-003"
    assert second["fresh-again"]["decided_by"] == "hashbank"
    assert second["fresh-again"]["match"]["entry_id"] == f"referral:{first['fresh']['referral_id']}"

    # A redelivered item is not matched against what it taught the bank: the same referral again.
    produce_lines(
        deployment.settings,
        [post("fresh", "A fictional notice about the Ember Road Alliance meeting next week")],
    )
    outputs = deployment.read_outputs(expected=0, ids={"fresh"}, topics=("referrals",))["referrals"]
    assert {r["referral_id"] for _, r in outputs if r["item_id"] == "fresh"} == {
        first["fresh"]["referral_id"]
    }

    # A wrongly learned entry is withdrawn from every worker: the text goes to the model again.
    learned_id = f"referral:{first['fresh']['referral_id']}"
    entries = health(worker)["hashbank"]["entries"]
    removed = deployment.cli("hashbank", "remove", learned_id)
    assert removed.returncode == 0, removed.stderr
    deadline = time.monotonic() + 30
    while health(worker)["hashbank"]["entries"] != entries - 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert health(worker)["hashbank"]["entries"] == entries - 1
    produce_lines(
        deployment.settings, [post("fresh-third", "A fictional notice about the Ember Road Alliance meeting")]
    )
    assert referrals_by_id(deployment, {"fresh-third"})["fresh-third"]["decided_by"] == "model"


def test_a_bad_bank_file_stops_the_worker_with_the_line(deployment: Deployment, tmp_path: Path) -> None:
    bank = tmp_path / "bank.jsonl"
    bank.write_text(json.dumps(KNOWN[0]) + "\n" + json.dumps({"entry_id": "x", "text": "no labels"}) + "\n")
    env = {**deployment.env, "PROPWATCH_HASHBANK_FILE": str(bank), "PROPWATCH_WEB_PORT": "1"}
    worker = WorkerProcess(env, tmp_path / "refused.log")
    assert worker.process.wait(timeout=120) == 2
    assert f"{bank}:2:" in worker.log_tail() and "labels" in worker.log_tail()
