"""propwatch's classifiers: the interface the stream depends on, the backend registry, backends,
training of the default model and evaluation."""

from classifiers.base import LABELS, Classifier, ClassifierOptions, LabelMappingError
from classifiers.registry import backend_names, load_classifier

__all__ = [
    "LABELS",
    "Classifier",
    "ClassifierOptions",
    "LabelMappingError",
    "backend_names",
    "load_classifier",
]
