"""A shadow model on live traffic, the evidence block of each referral (reproduced from scratch),
and the transparency report read back from the topics, on the real broker."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from classifiers.base import ClassifierOptions
from classifiers.testing import build_tiny_model
from classifiers.transformers_backend import TransformersClassifier, folder_revision
from streams.io import produce_lines
from streams.known_content.signature import normalised_sha256
from streams.records import ContentItem
from tests.integration.conftest import Deployment

ITEMS = 60


def items() -> list[bytes]:
    return [
        json.dumps(
            {
                "id": f"ev-{i:03d}",
                "text": f"Fictional forum post {i}: "
                + ("the harbour festival and its lanterns " * (1 + i % 5)),
                "platform": ("forum", "video")[i % 2],
                "lang": "en",
                "observed_at": "2026-11-28T10:00:00Z",
            }
        ).encode()
        for i in range(ITEMS)
    ]


def metric(url: str, metric_name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise LookupError(metric_name)


def test_shadow_evidence_and_report(deployment: Deployment, tmp_path: Path, tiny_model_dir: Path) -> None:
    candidate = build_tiny_model(tmp_path / "candidate-model", seed=7)
    # These posts are near duplicates of each other: without learning, the model scores every one.
    worker = deployment.start_worker(PROPWATCH_SHADOW_MODEL=str(candidate), PROPWATCH_HASHBANK_LEARN="false")
    produce_lines(deployment.settings, items())
    outputs = deployment.read_outputs(expected=ITEMS)
    verdicts = [r for name in ("referrals", "cleared") for _, r in outputs[name]]
    assert len(verdicts) == ITEMS and outputs["referrals"], "the tiny model's scores straddle 0.5"

    # --- shadow: scored every item, routed nothing, and metrics agree with the records
    shadow_model = {"name": "candidate-model", "revision": folder_revision(candidate)}
    assert all(r["shadow"]["model"] == shadow_model for r in verdicts)
    agreed = sum(r["shadow"]["agrees"] for r in verdicts)
    flagged = sum(r["shadow"]["flagged"] for r in verdicts)
    assert agreed == sum(bool(r.get("labels")) == r["shadow"]["flagged"] for r in verdicts)
    assert metric(worker.url, "propwatch_model_scored_total", role="shadow") == ITEMS
    assert metric(worker.url, "propwatch_model_flagged_total", role="shadow") == flagged
    assert metric(worker.url, "propwatch_shadow_agreed_total") == agreed
    assert metric(worker.url, "propwatch_shadow_model_info", **shadow_model) == 1

    # --- evidence: an auditor with the same model revision reproduces every referral
    auditor = TransformersClassifier.load(str(tiny_model_dir), ClassifierOptions())
    referrals = [r for _, r in outputs["referrals"]]
    rescored = auditor.predict([r["text"] for r in referrals])
    for referral, scores in zip(referrals, rescored, strict=True):
        evidence = referral["evidence"]
        assert evidence["model"] == {**referral["model"], "backend": "transformers"}
        assert evidence["model"]["revision"] == folder_revision(tiny_model_dir), (
            "the revision names the weights"
        )
        for label, score in evidence["scores"].items():
            assert score == pytest.approx(scores[label], abs=1e-5), (referral["item_id"], label)
        item = ContentItem(id=referral["item_id"], text=referral["text"])
        assert evidence["content_sha256"] == item.content_sha256 == referral["content_sha256"]
        assert evidence["normalised_sha256"] == normalised_sha256(referral["text"])
        assert evidence["captured_at"] == "2026-11-28T10:00:00Z"
        chain = evidence["chain_of_custody"]
        assert [s["step"] for s in chain] == [
            "captured",
            "ingested",
            "received",
            "hash_checked",
            "classified",
            "referred",
        ]
        times = [datetime.fromisoformat(s["at"].replace("Z", "+00:00")) for s in chain]
        assert times == sorted(times), "the chain of custody is in time order"
        assert chain[1]["detail"]["topic"] == deployment.topic("content")
    # ... and scoring the same text alone or in another batch gives the same scores
    alone = auditor.predict([referrals[0]["text"]])[0]
    assert alone == pytest.approx(rescored[0], abs=1e-5)

    # --- the transparency report, read back from the topics
    result = deployment.cli("report", "--json", "--since", "2026-11-01")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["items"] == ITEMS
    assert report["totals"]["referrals"] == len(referrals)
    assert report["totals"]["cleared"] == ITEMS - len(referrals)
    assert sum(report["verdicts"]["by_platform"][p]["verdicts"] for p in ("forum", "video")) == ITEMS
    assert (
        report["time_to_referral"]["count"] == len(referrals) and report["time_to_referral"]["median_s"] > 0
    )
    shadow = report["shadow"][f"candidate-model@{shadow_model['revision']}"]
    assert shadow["items"] == ITEMS and shadow["agreed"] == agreed and shadow["shadow_flagged"] == flagged
    markdown = deployment.cli("report")
    assert markdown.returncode == 0 and b"| " in markdown.stdout and b"candidate-model" in markdown.stdout
