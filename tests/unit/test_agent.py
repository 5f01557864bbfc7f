"""The classify agent under Faust's test context: no broker, sink sends patched."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from unittest.mock import AsyncMock, patch

import pytest

from classifiers.base import LABELS, Classifier, Scores
from streams.app import create_pipeline
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import CLEARED, DLQ, REFERRALS


class FixedClassifier(Classifier):
    """Scores 0.9 for every label when the text contains the label's name, else 0.1."""

    name = "fixed"
    revision = "1"
    labels = LABELS

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.calls: list[int] = []

    def predict(self, texts: Sequence[str]) -> list[Scores]:
        self.calls.append(len(texts))
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise MemoryError("simulated out of memory")
        return [{label: 0.9 if label in text else 0.1 for label in LABELS} for text in texts]


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values = {
        "kafka_bootstrap": "127.0.0.1:1",
        "data_dir": tmp_path,
        "batch_size": 8,
        "batch_wait_s": 0.05,
        "group_id": "unit",
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


async def run_agent(tmp_path: Path, classifier: Classifier, payloads: list[bytes], **overrides: object):
    pipeline = create_pipeline(settings(tmp_path, **overrides), classifier, Metrics())
    sent: dict[str, list[tuple[bytes, dict[str, object]]]] = {"referrals": [], "cleared": [], "dlq": []}

    def fake_send(spec):
        async def send(*, key: bytes, value: bytes, **_: object):
            sent[spec.name].append((key, json.loads(value)))
            done = AsyncMock()
            return done()

        return send

    with (
        patch.object(pipeline.topics[REFERRALS], "send", fake_send(REFERRALS)),
        patch.object(pipeline.topics[CLEARED], "send", fake_send(CLEARED)),
        patch.object(pipeline.topics[DLQ], "send", fake_send(DLQ)),
    ):
        async with pipeline.agent.test_context() as agent:
            for payload in payloads:
                await agent.put(payload)
            total = lambda: sum(len(v) for v in sent.values())  # noqa: E731
            for _ in range(200):
                if total() >= len(payloads):
                    break
                await agent.sleep(0.02)
    # The consumer thread (mode.threads.ServiceThread) makes its own event loop when the app
    # builds its consumer; the test context never starts that thread, so nothing closes it.
    pipeline.app.consumer._thread.thread_loop.close()
    return pipeline, sent


def item(item_id: str, text: str) -> bytes:
    return json.dumps({"id": item_id, "text": text}).encode()


async def test_routes_each_item_once(tmp_path: Path) -> None:
    payloads = [item("a", "join the threat now"), item("b", "nice weather"), b"{not json"]
    pipeline, sent = await run_agent(tmp_path, FixedClassifier(), payloads)
    assert [k for k, _ in sent["referrals"]] == [b"a"]
    assert sent["referrals"][0][1]["labels"] == ["threat"]
    assert [k for k, _ in sent["cleared"]] == [b"b"]
    assert len(sent["dlq"]) == 1 and sent["dlq"][0][1]["error"]["code"] == "invalid_json"
    assert pipeline.metrics.items_consumed._value.get() == 3


async def test_bad_items_do_not_disturb_their_batch(tmp_path: Path) -> None:
    payloads = [
        item("ok-1", "hello"),
        b'{"id": "x1"}',
        b'{"id": "x2", "text": 7}',
        b'{"id": "x3", "text": "  \\n "}',
        b"\xff\xfe",
        item("ok-2", "incitement"),
    ]
    _, sent = await run_agent(tmp_path, FixedClassifier(), payloads)
    codes = {record["item_id"]: record["error"]["code"] for _, record in sent["dlq"]}
    assert codes == {"x1": "missing_text", "x2": "invalid_text", "x3": "empty_text", None: "invalid_utf8"}
    assert {k for k, _ in sent["cleared"]} == {b"ok-1"}
    assert {k for k, _ in sent["referrals"]} == {b"ok-2"}


async def test_classifier_failure_is_retried_item_by_item(tmp_path: Path) -> None:
    classifier = FixedClassifier(fail_on="poison")
    payloads = [item("p", "poison pill"), item("q", "fine"), item("r", "threat")]
    _, sent = await run_agent(tmp_path, classifier, payloads)
    assert [r["item_id"] for _, r in sent["dlq"]] == ["p"]
    dead = sent["dlq"][0][1]
    assert dead["error"]["code"] == "classifier_error" and dead["stage"] == "classify"
    assert "simulated out of memory" in dead["error"]["message"]
    assert {k for k, _ in sent["cleared"]} == {b"q"}
    assert {k for k, _ in sent["referrals"]} == {b"r"}
    assert classifier.calls[0] == 3 and classifier.calls[1:] == [1, 1, 1]


@pytest.mark.parametrize("threshold, referred", [(0.95, False), (0.85, True)])
async def test_per_label_thresholds_apply(tmp_path: Path, threshold: float, referred: bool) -> None:
    _, sent = await run_agent(
        tmp_path, FixedClassifier(), [item("t", "threat")], thresholds={"threat": threshold}
    )
    assert bool(sent["referrals"]) is referred
    if referred:
        assert sent["referrals"][0][1]["thresholds"]["threat"] == threshold


async def test_duplicate_ids_each_get_a_record(tmp_path: Path) -> None:
    payloads = [item("same", "threat one"), item("same", "threat two"), item("same", "threat one")]
    _, sent = await run_agent(tmp_path, FixedClassifier(), payloads)
    assert [k for k, _ in sent["referrals"]] == [b"same"] * 3
    ids = [r["referral_id"] for _, r in sent["referrals"]]
    assert ids[0] == ids[2] != ids[1], "the same content repeats its referral id; other content does not"
