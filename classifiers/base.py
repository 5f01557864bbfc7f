"""The classifier interface the stream code depends on, and the label taxonomy.

Labels follow the EU Terrorist Content Online Regulation (2021/784), Art. 2(7): material that
incites, solicits (recruits), instructs, or threatens. A classifier scores texts against the
taxonomy labels it covers; thresholds are applied by the stream, never by a classifier.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

LABELS: tuple[str, ...] = ("incitement", "recruitment", "instruction", "threat")
"""The taxonomy, in a fixed order."""

IGNORE = "ignore"
"""Label-map target that drops a model label (e.g. a toxicity model's ``insult``)."""

Scores = dict[str, float]

SUB_BATCH = 16
"""Backends run a batch as length-sorted sub-batches of this many texts: similar lengths pad
little, and 16 was the fastest batch size of the fp32 default model on 2 CPU cores."""


def length_sorted_chunks(texts: Sequence[str], size: int = SUB_BATCH) -> list[list[int]]:
    """Indices of ``texts`` sorted by length, cut into chunks of ``size``."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start : start + size] for start in range(0, len(order), size)]


class LabelMappingError(ValueError):
    """A model's labels do not map onto the taxonomy."""


@dataclass(frozen=True)
class ClassifierOptions:
    """What a backend factory gets besides the model reference; all from the settings."""

    label_map: Mapping[str, str] = field(default_factory=dict)
    max_length: int = 256
    threads: int = 0


class Classifier(ABC):
    """Scores texts against taxonomy labels.

    ``name`` and ``revision`` identify the model in every output record, so that a referral can
    be reproduced; ``labels`` are the taxonomy labels this classifier scores.
    """

    name: str
    revision: str
    labels: tuple[str, ...]

    @abstractmethod
    def predict(self, texts: Sequence[str]) -> list[Scores]:
        """One mapping ``label -> score in [0, 1]`` per text, in order, with every label in
        ``labels``. May raise; the stream then retries item by item."""


def resolve_label_map(model_labels: Sequence[str], label_map: Mapping[str, str]) -> dict[str, str]:
    """Map each model label to a taxonomy label (or drop it), failing with a readable message.

    A model label maps through ``label_map`` when it is there, else to itself. A target of
    ``ignore`` drops the label. Every other target must be a taxonomy label.
    """
    stale = sorted(set(label_map) - set(model_labels))
    if stale:
        raise LabelMappingError(
            f"label map names labels the model does not have: {stale}; "
            f"the model's labels are {list(model_labels)}"
        )
    resolved: dict[str, str] = {}
    unmapped: list[str] = []
    for label in model_labels:
        target = label_map.get(label, label)
        if target == IGNORE:
            continue
        if target not in LABELS:
            unmapped.append(label)
        else:
            resolved[label] = target
    if unmapped:
        raise LabelMappingError(
            f"model labels {unmapped} are not in the taxonomy {list(LABELS)}; set "
            'PROPWATCH_LABEL_MAP, e.g. {"'
            + unmapped[0]
            + '": "incitement"} or {"'
            + unmapped[0]
            + '": "ignore"}'
        )
    if not resolved:
        raise LabelMappingError(
            f"no model label maps onto the taxonomy {list(LABELS)}; model labels: {list(model_labels)}"
        )
    return resolved


def taxonomy_labels(resolved: Mapping[str, str]) -> tuple[str, ...]:
    """The taxonomy labels a resolved label map covers, in taxonomy order."""
    covered = set(resolved.values())
    return tuple(label for label in LABELS if label in covered)


class OutputHead:
    """How a model's output columns become taxonomy scores: the activation (sigmoid for
    multi-label models, softmax otherwise) and the label map. Shared by every backend that
    runs a Hugging Face classification model."""

    def __init__(
        self, model_labels: Sequence[str], label_map: Mapping[str, str], *, multi_label: bool
    ) -> None:
        self.model_labels = list(model_labels)
        self.mapping = resolve_label_map(self.model_labels, label_map)
        self.multi_label = multi_label
        self.labels = taxonomy_labels(self.mapping)

    def scores(self, logits: np.ndarray) -> list[Scores]:
        """One score map per row of ``logits`` (shape: texts x model labels)."""
        logits = logits.astype(np.float64)
        if self.multi_label:
            probs = 1.0 / (1.0 + np.exp(-logits))
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = shifted / shifted.sum(axis=1, keepdims=True)
        results: list[Scores] = []
        for row in probs.tolist():
            scores: Scores = {}
            for model_label, score in zip(self.model_labels, row, strict=True):
                target = self.mapping.get(model_label)
                if target is not None:
                    scores[target] = max(scores.get(target, 0.0), float(score))
            results.append({label: scores[label] for label in self.labels})
        return results
