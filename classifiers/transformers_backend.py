"""The Hugging Face ``transformers`` backend: any sequence-classification model folder or hub id."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from classifiers.base import Classifier, ClassifierOptions, OutputHead, Scores, length_sorted_chunks
from classifiers.default_model import folder_revision

CHARS_PER_TOKEN_BOUND = 16
"""Texts are cut to ``max_length * 16`` characters before tokenising: no token is longer, and a
1 MiB text then costs no more to tokenise than a page."""


class TransformersClassifier(Classifier):
    """A ``transformers`` sequence classifier whose labels map onto the taxonomy."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: object,
        *,
        name: str,
        revision: str,
        options: ClassifierOptions,
    ) -> None:
        config = model.config  # type: ignore[attr-defined]
        self._head = output_head(config, options)
        self._model = model.eval()
        self._tokenizer = tokenizer
        self._max_length = options.max_length
        self._device = next(model.parameters()).device
        self.name = name
        self.revision = revision
        self.labels = self._head.labels

    @classmethod
    def load(cls, model: str, options: ClassifierOptions) -> TransformersClassifier:
        """Load a local folder or a hub id (from the local cache when offline)."""
        if options.threads:
            torch.set_num_threads(options.threads)
        folder = Path(model)
        tokenizer = AutoTokenizer.from_pretrained(model)
        network = AutoModelForSequenceClassification.from_pretrained(model)
        if torch.cuda.is_available():
            network = network.to("cuda")
        if folder.is_dir():
            name, revision = folder.resolve().name, folder_revision(folder)
        else:
            name = model
            revision = getattr(network.config, "_commit_hash", None) or "unknown"
        return cls(network, tokenizer, name=name, revision=revision, options=options)

    def predict(self, texts: Sequence[str]) -> list[Scores]:
        results: list[Scores] = [{} for _ in texts]
        cut = self._max_length * CHARS_PER_TOKEN_BOUND
        for chunk in length_sorted_chunks(texts):
            encoded = self._tokenizer(  # type: ignore[operator]
                [texts[i][:cut] for i in chunk],
                padding=True,
                truncation=True,
                max_length=self._max_length,
                return_tensors="pt",
            ).to(self._device)
            with torch.inference_mode():
                logits = self._model(**encoded).logits.float()
            for i, scores in zip(chunk, self._head.scores(logits.cpu().numpy()), strict=True):
                results[i] = scores
        return results


def output_head(config: PretrainedConfig, options: ClassifierOptions) -> OutputHead:
    """The output head of a Hugging Face classification model's config."""
    return OutputHead(
        [config.id2label[i] for i in range(config.num_labels)],
        options.label_map,
        multi_label=config.problem_type == "multi_label_classification",
    )
