"""The whole path of a content item through a running worker on the real broker."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter

from jsonschema import Draft202012Validator, FormatChecker

from streams.app import PROBE_INTERVAL_S
from streams.io import produce_lines
from streams.kafka.topics import OUTPUTS
from streams.records import load_schema
from tests.integration.conftest import Deployment

SCHEMA_OF = {spec.name: spec.schema for spec in OUTPUTS}


def item(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"item-{i:05d}",
            "text": f"Post number {i}: " + ("the council meets on tuesday " * (1 + i % 7)),
            "url": f"https://forum.example.net/t/{i}",
            "platform": "forum",
            "lang": "en",
            "author": f"user{i % 13}",
            "observed_at": "2026-11-20T09:14:03Z",
        }
    ).encode()


BAD = {
    b'{"id": "bad-json", "text": "unterminated': ("invalid_json", None),
    b'{"id": "bad-missing"}': ("missing_text", "bad-missing"),
    b'{"id": "bad-type", "text": ["a", "list"]}': ("invalid_text", "bad-type"),
    b'{"id": "bad-blank", "text": " \\t\\n  "}': ("empty_text", "bad-blank"),
}


def test_every_item_leaves_exactly_one_record(deployment: Deployment) -> None:
    lines = [item(i) for i in range(1000)]
    # the malformed items sit among valid ones, so they share batches with them
    for position, bad in zip((10, 300, 650, 999), BAD, strict=True):
        lines.insert(position, bad)
    deployment.start_worker(PROPWATCH_BATCH_SIZE="64")
    report = produce_lines(deployment.settings, lines)
    assert report.sent == 1004 and report.invalid == 4

    outputs = deployment.read_outputs(expected=1004)

    keys = Counter(key for records in outputs.values() for key, _ in records)
    assert sum(keys.values()) == 1004, {name: len(r) for name, r in outputs.items()}
    valid_ids = {f"item-{i:05d}" for i in range(1000)}
    routed = [r["item_id"] for name in ("referrals", "cleared") for _, r in outputs[name]]
    assert sorted(routed) == sorted(valid_ids), "each valid item exactly once on referrals or cleared"
    assert outputs["referrals"] and outputs["cleared"], "the tiny model's scores straddle 0.5"

    dead = {r["payload"].encode(): r for _, r in outputs["dlq"]}
    assert set(dead) == set(BAD)
    for payload, (code, item_id) in BAD.items():
        assert dead[payload]["error"]["code"] == code
        assert dead[payload]["item_id"] == item_id
        assert dead[payload]["error"]["message"]
    assert len({r["error"]["code"] for r in dead.values()}) == 4

    for name, records in outputs.items():
        validator = Draft202012Validator(load_schema(SCHEMA_OF[name]), format_checker=FormatChecker())
        for key, record in records:
            validator.validate(record)
            if record["item_id"] is not None:
                assert key == record["item_id"], "outputs are keyed by item id"
    for _, record in outputs["referrals"]:
        assert record["author_hash"] is None, "no author leaves without the HMAC key"
        if record["decided_by"] == "model":
            assert record["model"]["name"] == "tiny-tco"
        else:  # these posts are near duplicates: once one is referred, the bank catches the rest
            assert record["decided_by"] == "hashbank" and record["match"]["entry_id"].startswith("referral:")
    log = deployment.workers[0].log_path.read_text()
    assert "Ready" in log, "the log is the worker's"
    assert "the council meets" not in log and "unterminated" not in log, "no item text in the log at INFO"


def test_metrics_count_what_the_worker_did(deployment: Deployment) -> None:
    import urllib.request

    worker = deployment.start_worker(
        PROPWATCH_AUTHOR_HASH_KEY="k3y-for-tests", PROPWATCH_THRESHOLDS='{"incitement": 0.0}'
    )
    produce_lines(deployment.settings, [item(i) for i in range(20)] + [b"not json"])
    outputs = deployment.read_outputs(expected=21)
    assert sum(map(len, outputs.values())) == 21
    for _, referral in outputs["referrals"]:
        author = f"user{int(referral['item_id'].split('-')[1]) % 13}"
        digest = hmac.new(b"k3y-for-tests", author.encode(), hashlib.sha256).hexdigest()
        assert referral["author_hash"] == f"hmac-sha256:{digest}"
        assert author not in json.dumps(referral)
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"
    }
    assert samples["propwatch_items_consumed_total"] == 21
    assert samples['propwatch_dead_lettered_total{code="invalid_json"}'] == 1
    assert samples["propwatch_referrals_total"] == 20 and samples["propwatch_cleared_total"] == 0
    assert samples["propwatch_inference_seconds_count"] >= 1
    assert samples["propwatch_batch_size_items_sum"] == 21
    assert 'propwatch_model_info{name="tiny-tco"' in text
    assert samples['propwatch_end_to_end_seconds_count{start="produced"}'] == 21
    assert samples['propwatch_end_to_end_seconds_count{start="observed"}'] == 20
    assert samples['propwatch_score_count{label="threat"}'] == 20
    assert samples["propwatch_worker_ready"] == 1 and samples["propwatch_broker_connected"] == 1
    time.sleep(2 * PROBE_INTERVAL_S + 3)  # a commit and a probe later, the lag is gone
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:
        lag = [
            line
            for line in response.read().decode().splitlines()
            if line.startswith("propwatch_consumer_lag")
        ]
    assert len(lag) == 4, lag  # one per assigned partition
    assert all(float(line.split()[1]) == 0 for line in lag), lag
