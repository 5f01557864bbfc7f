"""``propwatch worker --processes``: how many, each one's environment, and the parent's exit code.
The processes themselves run in tests/integration/test_signals.py."""

from __future__ import annotations

import argparse
import signal
import sys

import pytest

from streams import children, supervisor
from streams.cli import build_parser


def test_auto_is_one_process_per_available_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(supervisor, "_cgroup_cpus", lambda: None)
    assert supervisor.process_count("auto") == 4
    monkeypatch.setattr(supervisor, "_cgroup_cpus", lambda: 2)  # a container's CPU quota
    assert supervisor.process_count("auto") == 2
    assert supervisor.process_count("3") == 3


@pytest.mark.parametrize("value", ["0", "-1", "many", ""])
def test_a_bad_count_is_a_usage_error(value: str) -> None:
    with pytest.raises(ValueError, match="positive number or auto"):
        supervisor.process_count(value)
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["worker", "--processes", value])
    assert exited.value.code == 2


def test_the_default_is_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "available_cores", lambda: 5)
    args: argparse.Namespace = build_parser().parse_args(["worker"])
    assert args.processes == 5


def test_each_process_gets_its_port_and_one_thread() -> None:
    env = {"PATH": "/bin", "PROPWATCH_WEB_PORT": "7000"}
    second = supervisor.worker_env(env, 1, 2, 7000)
    assert second["PROPWATCH_WEB_PORT"] == "7001" and second["PROPWATCH_INFERENCE_THREADS"] == "1"
    assert second["PATH"] == "/bin" and env["PROPWATCH_WEB_PORT"] == "7000", "the parent's is unchanged"
    chosen = supervisor.worker_env({**env, "PROPWATCH_INFERENCE_THREADS": "2"}, 0, 2, 7000)
    assert chosen["PROPWATCH_INFERENCE_THREADS"] == "2", "an explicit setting wins"
    assert "PROPWATCH_INFERENCE_THREADS" not in supervisor.worker_env(env, 0, 1, 7000)


def test_the_parent_exits_with_the_failed_workers_code() -> None:
    assert supervisor.exit_code(70) == 70, "fatal: restart"
    assert supervisor.exit_code(2) == 2, "bad model or settings"
    assert supervisor.exit_code(-signal.SIGKILL) == 137
    assert supervisor.exit_code(0) == 1, "a worker that stops unasked is a failure of the group"


def test_one_worker_exiting_stops_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """With stand-in workers: the second exits 70 at once; the first, still running, is stopped."""
    commands = iter(
        [
            [sys.executable, "-c", "import time; time.sleep(60)"],
            [sys.executable, "-c", "raise SystemExit(70)"],
        ]
    )
    monkeypatch.setattr(supervisor, "worker_command", lambda processes: next(commands))
    started: list[object] = []
    real_start = children.start
    monkeypatch.setattr(children, "start", lambda *a, **k: started.append(real_start(*a, **k)) or started[-1])
    lines: list[str] = []
    assert supervisor.supervise(2, 7000, log=lines.append, poll_s=0.05) == 70
    assert [p.returncode for p in started] == [-signal.SIGTERM, 70]  # type: ignore[attr-defined]
    assert "worker process 1" in lines[-1] and "exit 70" in lines[-1], lines
