"""The shared way commands stop their children: on SIGTERM as on SIGINT, and never half-way.
No broker: the children are small Python processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams import children
from streams.children import Stopped, stopped_on_signals

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(60)",
]
"""A child that ignores SIGTERM, so that only the escalation to SIGKILL stops it."""


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_command_and_every_child(signum: int, exit_code: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    started: list[subprocess.Popen[bytes]] = []
    with pytest.raises(Stopped) as stopped, stopped_on_signals():
        started += [children.start(SLEEPER, stop_timeout_s=5), children.start(SLEEPER, stop_timeout_s=5)]
        os.kill(os.getpid(), signum)
        time.sleep(30)  # interrupted by the signal
    assert stopped.value.exit_code == exit_code
    assert [process.returncode for process in started] == [-signal.SIGTERM, -signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before, "the previous handlers are back"


def recorder(log: Path, name: str) -> list[str]:
    """A child that, on SIGTERM, appends ``name`` to ``log`` and exits; it prints ``ready`` first."""
    code = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(log)!r}, 'a').write({name!r} + '\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    return [sys.executable, "-c", code]


def test_children_left_running_are_stopped_on_any_way_out_the_last_started_first(tmp_path: Path) -> None:
    log = tmp_path / "stopped"
    with pytest.raises(RuntimeError), stopped_on_signals():
        for name in ("broker", "worker-1", "worker-2"):
            child = children.start(recorder(log, name), stop_timeout_s=5, stdout=subprocess.PIPE)
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            child.stdout.close()
        raise RuntimeError("the command failed")
    assert log.read_text().split() == ["worker-2", "worker-1", "broker"]


def test_a_second_signal_does_not_cut_the_stopping_short() -> None:
    with pytest.raises(Stopped) as stopped, stopped_on_signals():
        child = children.start(STUBBORN, stop_timeout_s=3.0, stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        # While stop_all waits the second for the stubborn child, Ctrl-C: ignored.
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    assert stopped.value.signum == signal.SIGTERM
    assert child.returncode == -signal.SIGKILL, "stopped by the escalation, not left behind"
    child.stdout.close()
