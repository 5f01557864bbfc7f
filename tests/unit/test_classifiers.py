"""The classifier interface, the backend registry, label mapping, and the tiny test model."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.base import LABELS, Classifier, ClassifierOptions, LabelMappingError, resolve_label_map
from classifiers.default_model import DEFAULT_MODEL, ModelNotBuiltError, resolve_model, staged_folder
from classifiers.onnx_backend import export_onnx
from classifiers.registry import UnknownBackendError, backend_names, load_classifier
from classifiers.testing import ClassifierContract, build_tiny_model
from classifiers.transformers_backend import TransformersClassifier


class TestTinyTransformersClassifier(ClassifierContract):
    @pytest.fixture
    def classifier(self, tiny_classifier: TransformersClassifier) -> TransformersClassifier:
        return tiny_classifier


class TestMappedToxicityModel(ClassifierContract):
    """A differently labelled, single-label model used through the label map."""

    @pytest.fixture(scope="class")
    @classmethod
    def classifier(cls, tmp_path_factory: pytest.TempPathFactory) -> TransformersClassifier:
        folder = build_tiny_model(
            tmp_path_factory.mktemp("tox") / "toxicity",
            ["toxic", "insult", "threat", "neutral"],
            multi_label=False,
        )
        options = ClassifierOptions(
            label_map={"toxic": "incitement", "insult": "ignore", "neutral": "ignore"}
        )
        return load_classifier("transformers", str(folder), options)

    def test_only_mapped_labels_are_scored(self, classifier: TransformersClassifier) -> None:
        assert classifier.labels == ("incitement", "threat")


def test_backends_are_found_through_entry_points() -> None:
    assert "transformers" in backend_names()
    with pytest.raises(UnknownBackendError, match="no classifier backend named 'onnx-nope'"):
        load_classifier("onnx-nope", "x", ClassifierOptions())


def test_unmapped_labels_fail_with_their_names() -> None:
    with pytest.raises(LabelMappingError, match=r"\['toxic', 'insult'\].*PROPWATCH_LABEL_MAP"):
        resolve_label_map(["toxic", "insult", "threat"], {})
    with pytest.raises(LabelMappingError, match="does not have"):
        resolve_label_map(list(LABELS), {"hate": "incitement"})
    with pytest.raises(LabelMappingError, match="no model label maps"):
        resolve_label_map(["a", "b"], {"a": "ignore", "b": "ignore"})


def test_loading_a_model_with_foreign_labels_fails_at_start(tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / "sentiment", ["positive", "negative"])
    with pytest.raises(LabelMappingError, match=r"\['positive', 'negative'\]"):
        load_classifier("transformers", str(folder), ClassifierOptions())


def test_revision_is_the_folder_content_hash(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", seed=1)
    b = build_tiny_model(tmp_path / "b", seed=2)
    load = lambda p: TransformersClassifier.load(str(p), ClassifierOptions())  # noqa: E731
    assert load(a).revision == load(a).revision
    assert load(a).revision != load(b).revision
    assert load(a).revision.startswith("sha256:")
    assert load(a).name == "a"


def test_default_model_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("classifiers.default_model.models_dir", lambda: tmp_path)
    with pytest.raises(ModelNotBuiltError, match="make model"):
        resolve_model(DEFAULT_MODEL)
    assert resolve_model("some/hub-id") == "some/hub-id"
    with pytest.raises(ModelNotBuiltError, match="no model folder"):
        resolve_model(str(tmp_path / "missing"))


def test_long_texts_are_cut_before_tokenising(tiny_classifier: TransformersClassifier) -> None:
    huge = "word " * 200_000  # 1 MB
    assert tiny_classifier.predict([huge])[0] == pytest.approx(tiny_classifier.predict([huge[:5000]])[0])


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_model(tmp_path_factory.mktemp("onnx") / "tiny-onnx")
    export_onnx(folder)
    return folder


class TestOnnxInt8Classifier(ClassifierContract):
    """The ONNX backend on the tiny model's int8 export."""

    SCORE_TOLERANCE = 0.05  # dynamic quantisation scales activations per batch

    @pytest.fixture
    def classifier(self, onnx_folder: Path) -> Classifier:
        return load_classifier("onnx", str(onnx_folder), ClassifierOptions(max_length=64))

    def test_close_to_the_fp32_model(self, classifier: Classifier, onnx_folder: Path) -> None:
        fp32 = TransformersClassifier.load(str(onnx_folder), ClassifierOptions(max_length=64))
        texts = list(self.TEXTS)
        for quantised, exact in zip(classifier.predict(texts), fp32.predict(texts), strict=True):
            assert quantised == pytest.approx(exact, abs=0.05)
        assert classifier.name == "tiny-onnx+onnx-int8"


def test_onnx_backend_needs_an_export(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelNotBuiltError, match="export-onnx"):
        load_classifier("onnx", str(tiny_model_dir), ClassifierOptions())


def test_a_staged_folder_replaces_its_target_whole_or_not_at_all(tmp_path: Path) -> None:
    """Every model build writes through ``staged_folder``: a finished build replaces the old
    folder (readable by all), a failed one leaves the old folder as it was and nothing beside it."""
    target = tmp_path / "models" / "m"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("the build failed")
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with staged_folder(target) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "new.txt").write_text("new")
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]
    assert [p.relative_to(target).as_posix() for p in sorted(target.rglob("*"))] == ["sub", "sub/new.txt"]
    assert (target / "sub").stat().st_mode & 0o777 == 0o755
    assert (target / "sub" / "new.txt").stat().st_mode & 0o777 == 0o644
