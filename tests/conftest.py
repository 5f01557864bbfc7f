"""Shared fixtures: no network, a tiny random model, fresh metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from classifiers.base import ClassifierOptions
from classifiers.testing import build_tiny_model
from classifiers.transformers_backend import TransformersClassifier


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised multi-label model over the taxonomy, saved once."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-tco")


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir: Path) -> TransformersClassifier:
    return TransformersClassifier.load(str(tiny_model_dir), ClassifierOptions(max_length=64))
