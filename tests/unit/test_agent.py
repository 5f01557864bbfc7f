"""The classify agent under Faust's test context: no broker, sink sends patched."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from unittest.mock import AsyncMock, patch

import pytest

from classifiers.base import LABELS, Classifier, Scores
from streams.app import create_pipeline
from streams.kafka.topics import HASHBANK, OUTPUTS, TOPICS
from streams.known_content.entry import Entry
from streams.metrics import Metrics
from streams.settings import Settings


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


async def run_agent(
    tmp_path: Path,
    classifier: Classifier,
    payloads: list[bytes],
    shadow: Classifier | None = None,
    bank: list[Entry] = (),
    **overrides: object,
):
    pipeline = create_pipeline(
        settings(tmp_path, **overrides), classifier, Metrics(), shadow=shadow, follow=False
    )
    for entry in bank:
        pipeline.bank.add(entry)
    sent: dict[str, list[tuple[bytes, dict[str, object]]]] = {spec.name: [] for spec in TOPICS}

    def fake_send(spec):
        async def send(*, key: bytes, value: bytes, **_: object):
            sent[spec.name].append((key, json.loads(value)))
            done = AsyncMock()
            return done()

        return send

    with contextlib.ExitStack() as stack:
        for spec in (*OUTPUTS, HASHBANK):
            stack.enter_context(patch.object(pipeline.topics[spec], "send", fake_send(spec)))
        async with pipeline.agent.test_context() as agent:
            for payload in payloads:
                await agent.put(payload)
            total = lambda: sum(len(sent[spec.name]) for spec in OUTPUTS)  # noqa: E731
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


async def test_review_band_goes_to_review_and_referrals_join_the_bank(tmp_path: Path) -> None:
    payloads = [item("r", "threat mild"), item("x", "incitement now")]
    classifier = FixedClassifier()
    _, sent = await run_agent(
        tmp_path, classifier, payloads, thresholds={"threat": 0.95}, review_thresholds={"threat": 0.8}
    )
    [(key, review)] = sent["review"]
    assert key == b"r" and review["labels"] == ["threat"] and review["review_thresholds"] == {"threat": 0.8}
    assert [s["step"] for s in review["evidence"]["chain_of_custody"]][-1] == "queued_for_review"
    [(_, referral)] = sent["referrals"]
    [(entry_key, entry)] = sent["hashbank"]
    assert entry_key.decode() == entry["entry_id"] == f"referral:{referral['referral_id']}"
    assert entry["labels"] == ["incitement"] and "text" not in entry, "the bank shares hashes only"


async def test_known_content_is_referred_without_inference(tmp_path: Path) -> None:
    known = Entry.from_text(
        "Join the Northern Dawn Brigade today, brothers!",
        entry_id="gifct-like-1",
        labels=("recruitment",),
        source={"type": "import"},
        added_at="2026-11-01T00:00:00Z",
    )
    payloads = [
        item("exact", "JOIN the northern dawn brigade today -- brothers"),
        item("fresh", "nice weather"),
    ]
    classifier = FixedClassifier()
    pipeline, sent = await run_agent(tmp_path, classifier, payloads, bank=[known])
    [(key, referral)] = sent["referrals"]
    assert key == b"exact" and referral["decided_by"] == "hashbank" and referral["scores"] == {}
    assert referral["match"] == {
        "type": "exact",
        "entry_id": "gifct-like-1",
        "similarity": 1.0,
        "labels": ["recruitment"],
    }
    assert referral["model"] is None and referral["evidence"]["model"] is None
    assert classifier.calls == [1], "only the unknown item reached the model"
    assert pipeline.metrics.hashbank_matches.labels(type="exact")._value.get() == 1


async def test_shadow_model_scores_the_same_items_and_routes_nothing(tmp_path: Path) -> None:
    class Contrarian(FixedClassifier):
        name = "contrarian"

        def predict(self, texts: Sequence[str]) -> list[Scores]:
            return [{label: 0.9 if "weather" in text else 0.1 for label in LABELS} for text in texts]

    payloads = [item("a", "threat"), item("b", "nice weather"), item("c", "hello")]
    pipeline, sent = await run_agent(tmp_path, FixedClassifier(), payloads, shadow=Contrarian())
    shadows = {r["item_id"]: r["shadow"] for name in ("referrals", "cleared") for _, r in sent[name]}
    assert {k: (s["flagged"], s["agrees"]) for k, s in shadows.items()} == {
        "a": (False, False),
        "b": (True, False),
        "c": (False, True),
    }
    assert [k for k, _ in sent["referrals"]] == [b"a"], "the live model alone routes"
    metrics = pipeline.metrics
    assert metrics.model_scored.labels(role="shadow")._value.get() == 3
    assert metrics.model_flagged.labels(role="shadow")._value.get() == 1
    assert metrics.model_flagged.labels(role="live")._value.get() == 1
    assert metrics.shadow_agreed._value.get() == 1
