"""Fine-tune multilingual-e5-small on the seed corpus in minutes on 2 CPU cores.

The lower layers stay frozen, so their output is computed once per text (the *frozen pass*)
and cached; each epoch then runs only the top layers, the pooler and the classification head.
The result is an ordinary ``BertForSequenceClassification`` folder: the frozen layers are saved
unchanged beside the trained ones, so ``AutoModelForSequenceClassification`` runs it whole.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from classifiers.base import LABELS
from classifiers.corpus import Example
from classifiers.e5 import build


@dataclass(frozen=True)
class E5TrainingConfig:
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_length: int = 96
    seed: int = 784
    pos_weight: bool = True
    trainable_layers: int = 4
    """The top layers trained; the ones below, and the embeddings, stay as e5 has them."""
    vocabulary_margins: dict[str, int] | None = field(default_factory=lambda: dict(build.SCRIPT_MARGINS))
    """Pieces kept per script beyond the training texts' own (see ``build.vocabulary``); None
    keeps XLM-R's whole vocabulary of 250,002 pieces."""
    threads: int = 2


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )


def _model(keep: Sequence[int], seed: int) -> BertForSequenceClassification:
    weights = build.checkpoint(keep)
    config = BertConfig(
        **build.bert_config_kwargs(weights.geometry, len(keep)),
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type="multi_label_classification",
    )
    torch.manual_seed(seed)  # the pooler and the head start from seeded random weights
    model = BertForSequenceClassification(config)
    state = {f"bert.{k}": torch.from_numpy(v) for k, v in weights.tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    new = {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    if unexpected or set(missing) - new - {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}:
        raise ValueError(f"e5 model: missing {missing}, unexpected {unexpected}")
    return model


def _extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask every attention implementation takes: 0 or -inf-ish."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _top(model: BertForSequenceClassification, first: int, hidden: torch.Tensor, mask: torch.Tensor):
    """Logits from the hidden states entering layer ``first``."""
    extended = _extended_mask(mask, hidden.dtype)
    for layer in model.bert.encoder.layer[first:]:
        out = layer(hidden, attention_mask=extended)
        hidden = out[0] if isinstance(out, tuple) else out
    return model.classifier(model.dropout(model.bert.pooler(hidden)))


def _pad(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(r.shape[0] for r in rows)
    hidden = torch.zeros(len(rows), length, rows[0].shape[1])
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        hidden[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
    return hidden, mask


def train(
    examples: Sequence[Example],
    out_dir: Path,
    config: E5TrainingConfig = E5TrainingConfig(),
    progress: Callable[[str], None] = print,
) -> Path:
    """Fine-tune e5's top layers on ``examples`` and save a model folder to ``out_dir``."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    timings: dict[str, float] = {}
    started = time.monotonic()

    # vocabulary: the training texts' pieces plus a margin per script, renumbered
    full = out_dir / ".full-tokenizer"
    build.write_tokenizer(full, build.vocabulary([], margins=None))
    texts = sorted({e.text for e in examples})
    corpus_ids = {
        i
        for row in AutoTokenizer.from_pretrained(full)(texts, truncation=True, max_length=config.max_length)[
            "input_ids"
        ]
        for i in row
    }
    for path in full.iterdir():
        path.unlink()
    full.rmdir()
    keep = build.vocabulary(corpus_ids, margins=config.vocabulary_margins)
    build.write_tokenizer(out_dir, keep)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = _model(keep, config.seed)
    first = model.config.num_hidden_layers - config.trainable_layers
    timings["load_s"] = time.monotonic() - started
    progress(f"e5 loaded: {len(keep)} of 250,002 pieces kept ({timings['load_s']:.0f} s)")

    # the frozen pass: embeddings and layers below ``first``, once per distinct text
    cache: dict[str, torch.Tensor] = {}
    model.eval()
    phase = time.monotonic()
    with _progress() as bar, torch.inference_mode():
        task = bar.add_task("frozen layers", total=len(texts), note="")
        order = sorted(texts, key=len)
        for start in range(0, len(order), 32):
            chunk = order[start : start + 32]
            batch = tokenizer(
                chunk, padding=True, truncation=True, max_length=config.max_length, return_tensors="pt"
            )
            hidden = model.bert.embeddings(input_ids=batch["input_ids"])
            extended = _extended_mask(batch["attention_mask"], hidden.dtype)
            for layer in model.bert.encoder.layer[:first]:
                out = layer(hidden, attention_mask=extended)
                hidden = out[0] if isinstance(out, tuple) else out
            for text, row, mask in zip(chunk, hidden, batch["attention_mask"], strict=True):
                cache[text] = row[: int(mask.sum())].clone()
            bar.advance(task, len(chunk))
    timings["frozen_pass_s"] = time.monotonic() - phase

    # training: the top layers, the pooler and the head
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not name.startswith(
            ("bert.embeddings.", *(f"bert.encoder.layer.{i}." for i in range(first)))
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    targets = torch.tensor([[float(label in e.labels) for label in LABELS] for e in examples])
    positives = targets.sum(0)
    pos_weight = ((len(examples) - positives) / positives.clamp(min=1)).sqrt()
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight if config.pos_weight else None)
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
    steps = config.epochs * per_epoch
    warmup = max(1, int(steps * config.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    generator = torch.Generator().manual_seed(config.seed)
    lengths = torch.tensor([cache[e.text].shape[0] for e in examples], dtype=torch.float)
    model.train()
    phase = time.monotonic()
    losses = []
    with _progress() as bar:
        task = bar.add_task("training", total=steps, note="")
        for epoch in range(config.epochs):
            # batches of similar length (little padding), in random order, different each epoch
            noisy = lengths + torch.rand(len(examples), generator=generator) * 8
            order = torch.argsort(noisy).tolist()
            batches = [order[s : s + config.batch_size] for s in range(0, len(order), config.batch_size)]
            total = 0.0
            for b in torch.randperm(len(batches), generator=generator).tolist():
                idx = batches[b]
                hidden, mask = _pad([cache[examples[i].text] for i in idx])
                loss = loss_fn(_top(model, first, hidden, mask), targets[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimiser.step()
                scheduler.step()
                optimiser.zero_grad()
                total += loss.item() * len(idx)
                bar.advance(task)
            losses.append(total / len(examples))
            bar.update(task, note=f"epoch {epoch + 1}/{config.epochs} loss {losses[-1]:.4f}")
    timings["training_s"] = time.monotonic() - phase
    progress(
        f"trained {config.epochs} epochs in {timings['training_s']:.0f} s; losses "
        + ", ".join(f"{x:.4f}" for x in losses)
    )
    model.eval()
    _check_whole_model(model, tokenizer, cache, first, texts[:8], config.max_length)
    model.save_pretrained(out_dir)
    (out_dir / "training.json").write_text(
        json.dumps(
            {
                "recipe": "e5-top-layers",
                "base": build.BASE_NAME,
                "config": asdict(config),
                "examples": len(examples),
                "vocabulary": len(keep),
                "losses": losses,
                "timings": {k: round(v, 1) for k, v in timings.items()},
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


def _check_whole_model(model, tokenizer, cache, first: int, texts: Sequence[str], max_length: int) -> None:
    """The saved model run whole gives the logits training saw: the split is exact."""
    with torch.inference_mode():
        for text in texts:
            whole = model(
                **tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            ).logits
            hidden, mask = _pad([cache[text]])
            split = _top(model, first, hidden, mask)
            if not torch.allclose(whole, split, atol=1e-4):
                raise AssertionError(f"e5 training: whole-model logits {whole} differ from {split}")
