"""Where the project's default model lives, and how a model reference is resolved."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_MODEL = "default"
"""The value of ``PROPWATCH_MODEL`` that means the project's own model."""

MODELS = {"minilm": "propwatch-tco-minilm", "e5": "propwatch-tco-e5"}
"""The models ``propwatch model build --recipe`` builds, by recipe, into ``models/<name>``."""

DEFAULT_RECIPE = "e5"
MODEL_NAME = MODELS[DEFAULT_RECIPE]


class ModelNotBuiltError(FileNotFoundError):
    """The default model has not been built on this machine."""


def models_dir() -> Path:
    """The git-ignored folder of built models: ``models/`` in the checkout."""
    return Path(__file__).resolve().parents[1] / "models"


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to build a model (or its shipped part) in. When the block
    ends without an exception it replaces ``target`` at once, its files readable by every user (a
    container's own user too); otherwise it is removed: a half-built folder never stands at
    ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        for path in (staging, *staging.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def default_model_path(recipe: str = DEFAULT_RECIPE) -> Path:
    """The folder of the default model, or of another recipe's (it may not be built yet)."""
    return models_dir() / MODELS[recipe]


def resolve_model(reference: str) -> str:
    """A model reference for a backend: ``default`` becomes the built default model's folder; a
    path (absolute, or starting with ``.`` or ``~``) must be a folder with a ``config.json``."""
    if reference.startswith(("/", ".", "~")):
        folder = Path(reference).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelNotBuiltError(f"no model folder with a config.json at {folder}")
        return str(folder)
    if reference != DEFAULT_MODEL:
        return reference
    path = default_model_path()
    if not (path / "config.json").is_file():
        raise ModelNotBuiltError(
            f"the default model is not built at {path}: run `make model` (or set PROPWATCH_MODEL "
            "to a model folder or hub id)"
        )
    return str(path)


def folder_revision(folder: Path) -> str:
    """A content hash of a model folder: the revision of a model that has no hub commit."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]
