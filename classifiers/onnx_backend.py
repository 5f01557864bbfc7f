"""The ONNX Runtime backend: a Hugging Face model folder exported with ``torch.onnx`` and
quantised to int8 with onnxruntime's dynamic quantisation (``propwatch model export-onnx``).

Roughly 2-5x the fp32 torch throughput on CPU at a small cost in accuracy; ``propwatch
evaluate`` with ``PROPWATCH_BACKEND=onnx`` shows the cost on your data.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifiers.base import Classifier, ClassifierOptions, Scores
from classifiers.default_model import ModelNotBuiltError

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(folder: Path) -> Path:
    """Export ``folder``'s model to ``folder/onnx/model.onnx`` and quantise it to
    ``folder/onnx/model.int8.onnx``; returns the int8 file."""
    write_onnx(folder)
    return quantise_onnx(folder)


def write_onnx(folder: Path) -> Path:
    """Export ``folder``'s model to ``folder/onnx/model.onnx`` (fp32)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    sample = tokenizer(["an example", "a second, longer example text"], padding=True, return_tensors="pt")
    inputs = [name for name in INPUTS if name in sample]  # XLM-R tokenizers give no token types
    target = folder / ONNX_DIR
    target.mkdir(exist_ok=True)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with torch.inference_mode(), warnings.catch_warnings():
        # torch's exporter warns about its own internals (deprecations inside torch.export,
        # axis-name notes); nothing here can act on them
        for category in (UserWarning, FutureWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        program = torch.onnx.export(
            model,
            (),
            kwargs={name: sample[name] for name in inputs},
            dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
            input_names=inputs,
            output_names=["logits"],
            dynamo=True,
            verbose=False,
        )
        program.save(str(target / FP32_FILE))
    return target / FP32_FILE


def quantise_onnx(folder: Path) -> Path:
    """Quantise ``folder/onnx/model.onnx`` to ``folder/onnx/model.int8.onnx``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / ONNX_DIR
    # per-channel weight scales: within 1 point of the fp32 macro-F1 on the held-out split, where
    # per-tensor scales lost 2. reduce_range keeps weights to 7 bits: without AVX-512 VNNI,
    # onnxruntime's u8s8 kernels add pairs of products in int16 and saturate on 8-bit weights.
    quantize_dynamic(
        str(target / FP32_FILE),
        str(target / INT8_FILE),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
    )
    return target / INT8_FILE


class OnnxClassifier(Classifier):
    """The int8 ONNX export of a local model folder, run by onnxruntime on the CPU."""

    def __init__(self, folder: Path, options: ClassifierOptions) -> None:
        import onnxruntime
        from transformers import AutoConfig, AutoTokenizer

        from classifiers.transformers_backend import output_head

        path = folder / ONNX_DIR / INT8_FILE
        if not path.is_file():
            raise ModelNotBuiltError(
                f"no ONNX export at {path}: run `propwatch model export-onnx --model {folder}`"
            )
        session_options = onnxruntime.SessionOptions()
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        self._session = onnxruntime.InferenceSession(
            str(path), session_options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._head = output_head(AutoConfig.from_pretrained(folder), options)
        self._max_length = options.max_length
        self.name = f"{folder.resolve().name}+onnx-int8"
        self.revision = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        self.labels = self._head.labels

    @classmethod
    def load(cls, model: str, options: ClassifierOptions) -> OnnxClassifier:
        return cls(Path(model), options)

    def predict(self, texts: Sequence[str]) -> list[Scores]:
        """One text per session call: dynamic quantisation scales the activations over the whole
        input, so in a padded batch a text's score depended on its neighbours (by up to 0.2 on
        the e5 model); one at a time it does not, and it was no slower (no padding)."""
        from classifiers.transformers_backend import CHARS_PER_TOKEN_BOUND

        cut = self._max_length * CHARS_PER_TOKEN_BOUND
        results: list[Scores] = []
        for text in texts:
            encoded = self._tokenizer(
                [text[:cut]], truncation=True, max_length=self._max_length, return_tensors="np"
            )
            feed = {name: encoded[name].astype(np.int64) for name in INPUTS if name in self._inputs}
            (logits,) = self._session.run(["logits"], feed)
            results.extend(self._head.scores(logits))
        return results
