"""The worker's package keeps its shape: ``streams/pipeline`` imports no operator tool, report,
development harness or concrete classifier backend, and no module of it compares a score with a
threshold (the flag rule lives once, in :mod:`classifiers.policy`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINE = Path(__file__).parents[2] / "streams" / "pipeline"
FORBIDDEN = (
    "streams.cli",
    "streams.reporting",
    "streams.dev",
    "classifiers.transformers_backend",
    "classifiers.onnx_backend",
    "classifiers.training",
)
POLICY_MODULES = {"policy.py"}
"""Where a threshold comparison may live in ``streams/pipeline`` (the rule itself is in
``classifiers/policy.py``; this names a pipeline-side home for it should one appear)."""


def problems(source: str, filename: str) -> list[str]:
    """Forbidden imports, and ``>=``/``<`` (and the like) involving a name with "threshold"."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for module in modules:
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN):
                found.append(f"{filename}:{node.lineno} imports {module}")
        if (
            isinstance(node, ast.Compare)
            and filename not in POLICY_MODULES
            and any(isinstance(op, ast.GtE | ast.Gt | ast.Lt | ast.LtE) for op in node.ops)
        ):
            names = [
                n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
                for side in (node.left, *node.comparators)
                for n in ast.walk(side)
            ]
            if any("threshold" in name.lower() for name in names):
                found.append(f"{filename}:{node.lineno} compares with a threshold outside the policy")
    return found


def test_the_pipeline_imports_no_tool_and_compares_no_threshold() -> None:
    modules = sorted(PIPELINE.glob("*.py"))
    assert len(modules) > 5
    found = [p for path in modules for p in problems(path.read_text(), path.name)]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from streams.cli import main",
        "import streams.reporting.build",
        "from streams.dev import bench",
        "from streams import dev",
        "from classifiers.onnx_backend import OnnxClassifier",
        "flagged = score >= self.thresholds[label]",
        "low = scores[label] < threshold",
        "x = [s for s in scores if review_threshold <= s]",
    ],
)
def test_the_check_catches_what_it_forbids(source: str) -> None:
    assert problems(source, "processor.py"), source
