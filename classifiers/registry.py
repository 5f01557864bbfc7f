"""Classifier backends, found by name through Python entry points.

A package adds a backend by declaring, in its own ``pyproject.toml``::

    [project.entry-points."propwatch.classifiers"]
    mybackend = "mypackage.module:factory"

where ``factory(model: str, options: ClassifierOptions) -> Classifier``. propwatch's own
backends are declared the same way, so nothing here names a concrete backend.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from classifiers.base import Classifier, ClassifierOptions
from classifiers.default_model import resolve_model

ENTRY_POINT_GROUP = "propwatch.classifiers"

Factory = Callable[[str, ClassifierOptions], Classifier]


class UnknownBackendError(LookupError):
    """No installed backend has the requested name."""


def backend_names() -> list[str]:
    """The names of every installed backend."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_backend(name: str) -> Factory:
    """The factory of the backend called ``name``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory: Factory = ep.load()
            return factory
    raise UnknownBackendError(
        f"no classifier backend named {name!r}; installed: {backend_names()} "
        f"(entry point group {ENTRY_POINT_GROUP!r})"
    )


def load_classifier(backend: str, model: str, options: ClassifierOptions) -> Classifier:
    """Load ``model`` (``default``: the project's model) with the backend called ``backend``."""
    return load_backend(backend)(resolve_model(model), options)
