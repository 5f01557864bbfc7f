"""The trained part of the default model, as git ships it (``classifiers/e5/shipped/``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from classifiers.base import LABELS
from classifiers.corpus import seed_examples
from classifiers.e5 import ship
from classifiers.e5.train import E5TrainingConfig
from classifiers.evaluation import report_from_json
from classifiers.model_card import render_card

SHIPPED = ship.SHIPPED_DIR
LAYERS = 12


@pytest.fixture(scope="module")
def training() -> dict:
    return json.loads((SHIPPED / ship.TRAINING_FILE).read_text())


@pytest.fixture(scope="module")
def evaluation() -> dict:
    return json.loads((SHIPPED / ship.EVALUATION_FILE).read_text())


def test_the_shipped_files_match_their_checksums() -> None:
    ship.verify(SHIPPED)
    assert sorted(ship.read_sums(SHIPPED)) == sorted(ship.SHIPPED_FILES)
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 30e6, "the shipped files stay small"


def test_a_changed_file_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "shipped"
    shutil.copytree(SHIPPED, copy)
    with (copy / ship.TRAINING_FILE).open("a") as handle:
        handle.write(" ")
    with pytest.raises(ship.ShippedFilesError, match="checksum"):
        ship.verify(copy)
    (copy / ship.TRAINING_FILE).unlink()
    with pytest.raises(ship.ShippedFilesError, match="missing"):
        ship.verify(copy)


def test_training_json_is_the_recipe_in_force(training: dict) -> None:
    """``make model-rebuild`` runs today's E5TrainingConfig: it must be what the shipped weights
    were trained with, on today's training split."""
    assert training["recipe"] == "e5-top-layers"
    assert training["config"] == json.loads(json.dumps(asdict(E5TrainingConfig())))
    assert training["examples"] == len(seed_examples("train"))
    vocabulary = np.load(SHIPPED / ship.VOCABULARY_FILE)
    assert len(vocabulary) == training["vocabulary"]
    assert (np.diff(vocabulary) > 0).all() and vocabulary[0] == 0


def test_the_trained_weights_are_the_top_layers_pooler_and_head(training: dict) -> None:
    prefixes = ship.trained_prefixes(LAYERS, training["config"]["trainable_layers"])
    with safe_open(str(SHIPPED / ship.TRAINED_FILE), "pt") as handle:
        names = set(handle.keys())
        assert handle.get_slice("classifier.weight").get_shape() == [len(LABELS), 384]
    assert all(name.startswith(prefixes) for name in names)
    for prefix in prefixes:
        assert any(name.startswith(prefix) for name in names), prefix
    assert not any(name.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for name in names)


def test_evaluation_json_covers_every_split_backend_and_language(evaluation: dict) -> None:
    for section, split in ship.SPLITS.items():
        langs = {e.lang for e in seed_examples(split)}
        for backend in ship.BACKENDS:
            report = report_from_json(evaluation[section][backend])
            assert set(report.by_lang) == langs, (section, backend)
            assert report.overall.items == len(seed_examples(split))
            assert report.thresholds == dict.fromkeys(LABELS, 0.5)


def test_the_card_states_the_shipped_figures(training: dict, evaluation: dict) -> None:
    card = render_card("propwatch-tco-e5", training, evaluation)
    held_out = report_from_json(evaluation["held_out"]["transformers"])
    assert f"flag-or-not F1 {held_out.overall.binary.f1:.3f}" in card
    for lang, figures in held_out.by_lang.items():
        assert f"{lang} F1 {figures.binary.f1:.3f}" in card
    for section in ship.SPLITS:
        for backend in ship.BACKENDS:
            overall = evaluation[section][backend]["overall"]["binary"]["f1"]
            assert f"{overall:.3f}" in card, (section, backend)
    assert f"for {training['config']['epochs']} epochs" in card
    assert f"{training['vocabulary']:,} of XLM-R's 250,002 pieces" in card
