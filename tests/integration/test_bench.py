"""A smoke run of `propwatch bench` on a few items (no timings are asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REQUIRED = {
    "limit_items_per_s",
    "pipeline_items_per_s",
    "naive_items_per_s",
    "pipeline_over_limit",
    "pipeline_over_naive",
    "p50_latency_s",
    "p99_latency_s",
    "reupload_items_per_s",
    "reupload_over_pipeline",
    "backend",
}


def test_bench_runs_on_a_few_items(tiny_model_dir: Path, tmp_path: Path) -> None:
    chart = tmp_path / "bench.png"
    result = subprocess.run(
        [
            sys.executable, "-m", "streams.cli", "bench",
            "--items", "40", "--naive-items", "8", "--latency-seconds", "1", "--workers", "1",
            "--repeats", "2",
            "--json", "--chart", str(chart),
        ],
        env={
            **os.environ,
            "PROPWATCH_MODEL": str(tiny_model_dir),
            "PROPWATCH_BACKEND": "transformers",  # the tiny model has no ONNX export
            "HF_HUB_OFFLINE": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert REQUIRED <= set(report)
    assert report["backend"] == "transformers" and report["items"] == 40
    for key in REQUIRED - {"backend"}:
        assert report[key] > 0, key
    assert report["worker_peak_rss_bytes"] > 50 * 2**20
    assert report["reupload_matched"] >= 18, "re-uploads, exact or lightly edited, are caught"
    assert report["repeats"] == 2 and len(report["runs"]) == 2
    for name in (
        "pipeline_items_per_s",
        "reupload_items_per_s",
        "reupload_over_pipeline",
        "naive_items_per_s",
    ):
        spread = report["spread"][name]
        assert spread["min"] <= spread["mean"] <= spread["max"], name
        assert [run[name] for run in report["runs"]] and all(run[name] > 0 for run in report["runs"]), name
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
