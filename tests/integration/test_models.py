"""Models through the running pipeline: swapping by environment variable, label mapping, and the
default model on the demo sample."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from classifiers.default_model import default_model_path
from classifiers.testing import build_tiny_model
from classifiers.transformers_backend import folder_revision
from streams.dev.demo import LANGUAGES, sample_items, sample_path
from streams.dev.demo_feed import feed_path
from streams.dev.worker_process import WorkerProcess
from streams.io import produce_lines
from tests.integration.conftest import Deployment

ASSERTED_LANGUAGES = ("en", "nl")
"""The sample's languages whose outcomes the default model is held to: those of its training data.
With a multilingual default model (docs/models.md), make this LANGUAGES."""


def items(n: int) -> list[bytes]:
    return [
        json.dumps({"id": f"s-{i}", "text": f"Message {i} about the weekend market"}).encode()
        for i in range(n)
    ]


def test_a_second_model_folder_needs_only_the_environment_variable(
    deployment: Deployment, tmp_path: Path
) -> None:
    candidate = build_tiny_model(tmp_path / "candidate-model", seed=7)
    deployment.start_worker(PROPWATCH_MODEL=str(candidate), PROPWATCH_THRESHOLDS='{"incitement": 0.01}')
    produce_lines(deployment.settings, items(10))
    outputs = deployment.read_outputs(expected=10)
    assert len(outputs["referrals"]) == 10
    for _, record in outputs["referrals"]:
        assert record["model"] == {"name": "candidate-model", "revision": folder_revision(candidate)}


def test_foreign_labels_fail_at_start_and_a_label_map_fixes_it(
    deployment: Deployment, tmp_path: Path
) -> None:
    toxicity = build_tiny_model(tmp_path / "toxicity", ["toxic", "insult", "threat"])
    env = {**deployment.env, "PROPWATCH_MODEL": str(toxicity), "PROPWATCH_WEB_PORT": "1"}
    failed = WorkerProcess(env, tmp_path / "refused.log")
    assert failed.process.wait(timeout=120) == 2
    assert "['toxic', 'insult']" in failed.log_tail() and "PROPWATCH_LABEL_MAP" in failed.log_tail()

    deployment.start_worker(
        PROPWATCH_MODEL=str(toxicity), PROPWATCH_LABEL_MAP='{"toxic": "incitement", "insult": "ignore"}'
    )
    produce_lines(deployment.settings, items(6))
    outputs = deployment.read_outputs(expected=6)
    records = [r for name in ("referrals", "cleared") for _, r in outputs[name]]
    assert len(records) == 6
    assert all(set(r["scores"]) == {"incitement", "threat"} for r in records)


@pytest.fixture(scope="module")
def default_model() -> Path:
    path = default_model_path()
    assert (path / "config.json").is_file(), f"the default model is not built at {path}: run `make model`"
    return path


def test_default_model_refers_propaganda_and_clears_news(deployment: Deployment, default_model: Path) -> None:
    lines = [line for line in sample_path().read_bytes().splitlines() if line.strip()]
    sample = sample_items(lines)
    deployment.start_worker(PROPWATCH_MODEL="default", PROPWATCH_BACKEND="onnx")
    produce_lines(deployment.settings, lines)
    outputs = deployment.read_outputs(expected=len(lines), timeout_s=300)
    outcome = {r["item_id"]: name for name in ("referrals", "cleared") for _, r in outputs[name]}
    assert len(outcome) == len(sample) and len(outputs["dlq"]) == len(lines) - len(sample)
    expected = {
        i: (item.expected, item.kind) for i, item in sample.items() if item.lang in ASSERTED_LANGUAGES
    }

    def rate(kinds: set[str], verdict: str) -> float:
        ids = [i for i, (_, kind) in expected.items() if kind in kinds]
        return sum(outcome[i] == verdict for i in ids) / len(ids)

    propaganda = {"incitement", "recruitment", "instruction", "threat"}
    assert rate(propaganda, "referrals") >= 0.9, "the propaganda-like sample items are referred"
    assert rate({"news"}, "cleared") == 1.0, "news about attacks is not propaganda"
    assert rate({"court", "research", "counter_speech", "policy", "history", "fiction"}, "cleared") >= 0.9
    missed = Counter(
        kind for i, (_, kind) in expected.items() if kind in propaganda and outcome[i] != "referrals"
    )
    print("missed propaganda by kind:", dict(missed))
    for lang in LANGUAGES:
        ids = [i for i, item in sample.items() if item.lang == lang]
        agree = sum(outcome[i] == {"referral": "referrals"}.get(sample[i].expected, "cleared") for i in ids)
        print(f"{lang}: {agree} of {len(ids)} as expected")


def test_the_demo_runs_to_the_end(default_model: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    total = sum(1 for line in sample_path().read_bytes().splitlines() if line.strip())
    posts = feed_path().read_bytes().count(b"<item>")
    assert f"{posts} posts found in the bundled feed" in result.stdout and f"{posts} sent" in result.stdout
    assert f"{total + posts} items in" in result.stdout, "the sample's and the feed's"
    assert "From the bundled feed: referred" in result.stdout
    assert "Verdicts matching the sample's expected outcome" in result.stdout
    assert "By language" in result.stdout
    for lang in LANGUAGES:
        assert any(line.strip("│┃| ").startswith(lang + " ") for line in result.stdout.splitlines()), lang
    assert "Example referrals" in result.stdout
    assert "Cleared, though they talk about terrorism" in result.stdout
    assert "stopped the worker and the broker" in result.stdout
    [review] = re.findall(r"^\W*review\W+(\d+)\W*$", result.stdout, re.MULTILINE)
    assert int(review) > 0, "the demo's review band sends some of the sample to review"
    assert "Review console: not started" in result.stdout


def test_the_default_model_is_the_shipped_one_and_reproduces_its_card(default_model: Path) -> None:
    """The assembled default model scores the held-out split as its card (evaluation.json) says:
    flag-or-not F1 overall and per language within 0.005, fp32 and int8."""
    from classifiers.base import LABELS, ClassifierOptions
    from classifiers.corpus import seed_examples
    from classifiers.e5 import ship
    from classifiers.evaluation import evaluate
    from classifiers.model_card import render_card
    from classifiers.registry import load_classifier

    training = json.loads((ship.SHIPPED_DIR / ship.TRAINING_FILE).read_text())
    card = json.loads((ship.SHIPPED_DIR / ship.EVALUATION_FILE).read_text())
    assert (default_model / "README.md").read_text() == render_card(default_model.name, training, card)
    examples = seed_examples("test")
    for backend in ship.BACKENDS:
        expected = card["held_out"][backend]
        report = evaluate(
            load_classifier(backend, str(default_model), ClassifierOptions()),
            examples,
            dict.fromkeys(LABELS, 0.5),
        )
        assert report.overall.binary.f1 == pytest.approx(expected["overall"]["binary"]["f1"], abs=0.005), (
            backend
        )
        assert set(report.by_lang) == set(expected["by_lang"])
        for lang, figures in report.by_lang.items():
            assert figures.binary.f1 == pytest.approx(expected["by_lang"][lang]["binary"]["f1"], abs=0.005), (
                backend,
                lang,
            )
