"""Commands that start children (the embedded broker, a worker) stop them all on SIGTERM, as
``docker stop``, systemd or a CI runner sends it, and on Ctrl-C alike: nothing is left running."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifiers.testing import build_tiny_model
from streams.dev.broker import free_port
from tests.integration.conftest import Deployment
from tests.integration.test_console import Visitor

SIGNALS = [pytest.param(signal.SIGTERM, 143, id="SIGTERM"), pytest.param(signal.SIGINT, 130, id="SIGINT")]


def _stat(pid: int) -> tuple[int, str, int] | None:
    """Parent pid, state and start time (clock ticks after boot) of a process, None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid: int) -> dict[tuple[int, int], str]:
    """Every process below ``pid``, as ``{(pid, start time): command line}``: start time tells a
    process from a later one that got the same pid."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents.setdefault(stat[0], []).append(int(entry))
    found: dict[tuple[int, int], str] = {}
    queue = list(parents.get(pid, []))
    while queue:
        child = queue.pop()
        stat = _stat(child)
        if stat is not None:
            cmdline = (
                Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            found[(child, stat[2])] = cmdline
            queue += parents.get(child, [])
    return found


def running(process: tuple[int, int]) -> bool:
    """Whether the process is still there and not a zombie (the same pid and start time)."""
    stat = _stat(process[0])
    return stat is not None and stat[2] == process[1] and stat[1] != "Z"


class Command:
    """``propwatch ARGS`` in its own process group, as a shell runs a foreground job."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.decode(errors="replace"))

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout_s:.0f} s:\n{self.output()}"
            time.sleep(0.2)

    def output(self) -> str:
        return "".join(self.lines)[-4000:]

    def signal(self, signum: int) -> float:
        """SIGTERM to the process (as docker stop sends it), SIGINT to its process group (as
        Ctrl-C in a terminal sends it); returns how long it took to exit."""
        started = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        self.process.wait(timeout=90)
        self._reader.join(timeout=10)
        return time.monotonic() - started


@pytest.fixture
def no_orphans() -> Iterator[dict[tuple[int, int], str]]:
    """Fill it with the processes a test saw; whatever of them still runs at the end is killed,
    so that a failing test leaves nothing behind either."""
    seen: dict[tuple[int, int], str] = {}
    yield seen
    for process in seen:
        if running(process):
            os.kill(process[0], signal.SIGKILL)


def assert_all_stopped(children: dict[tuple[int, int], str]) -> None:
    left = {pid: cmdline for (pid, start), cmdline in children.items() if running((pid, start))}
    assert not left, f"still running after the command exited: {left}"


@pytest.mark.parametrize("signum, exit_code", SIGNALS)
def test_demo_keep_running_serves_the_console_and_stops_everything(
    signum: int,
    exit_code: int,
    tmp_path: Path,
    tiny_model_dir: Path,
    no_orphans: dict[tuple[int, int], str],
) -> None:
    sample = tmp_path / "sample.jsonl"
    lines = [
        json.dumps({"id": f"s-{i}", "text": f"A short post about gardening, number {i}."}) for i in range(3)
    ]
    sample.write_text("\n".join([*lines, "not json"]) + "\n")
    demo = Command(
        "demo",
        "--keep-running",
        "--sample",
        str(sample),
        env={
            "PROPWATCH_MODEL": str(tiny_model_dir),
            "PROPWATCH_BACKEND": "transformers",  # the tiny model has no ONNX export
            "HF_HUB_OFFLINE": "1",
            "TERM": "dumb",
        },
    )
    try:
        demo.wait_for("demo-supervisor / ", timeout_s=300)
        children = descendants(demo.process.pid)
        no_orphans.update(children)
        commands = list(children.values())
        assert any("broker --listener-url" in c for c in commands), commands
        assert any("streams.cli worker" in c for c in commands), commands
        assert any("streams.cli console" in c for c in commands), commands
        [url] = re.findall(r"Review console: (http://127\.0\.0\.1:\d+)/login", demo.output())
        [password] = re.findall(r"demo-reviewer / (\S+)", demo.output())
        reviewer = Visitor(url)
        assert "login-form" in reviewer.get("/queue")
        page, path = reviewer.post("/login", [("username", "demo-reviewer"), ("password", password)])
        assert path == "/queue" and 'data-role="reviewer"' in page, "the demo's login works"

        took = demo.signal(signum)
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait()
    print(f"demo: {signal.Signals(signum).name} -> exit {demo.process.returncode} in {took:.1f} s")
    assert_all_stopped(children)
    assert demo.process.returncode == exit_code, demo.output()
    assert "stopped the console, the worker and the broker" in demo.output()
    assert f"stopped by {signal.Signals(signum).name}" in demo.output()


@pytest.mark.parametrize("signum, exit_code", SIGNALS)
def test_broker_stops_the_embedded_broker(
    signum: int, exit_code: int, no_orphans: dict[tuple[int, int], str]
) -> None:
    port = free_port()
    broker = Command("broker", "--port", str(port), env={})
    try:
        broker.wait_for(f"at 127.0.0.1:{port}", timeout_s=60)
        children = descendants(broker.process.pid)
        no_orphans.update(children)
        assert any("broker --listener-url" in c for c in children.values()), children
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

        took = broker.signal(signum)
    finally:
        if broker.process.poll() is None:
            broker.process.kill()
            broker.process.wait()
    print(f"broker: {signal.Signals(signum).name} -> exit {broker.process.returncode} in {took:.1f} s")
    assert_all_stopped(children)
    assert broker.process.returncode == exit_code, broker.output()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


@pytest.mark.parametrize("signum, exit_code", SIGNALS)
def test_worker_processes_are_all_healthy_and_stop_together(
    signum: int, exit_code: int, deployment: Deployment, no_orphans: dict[tuple[int, int], str]
) -> None:
    port = free_port()
    while not all(_port_free(p) for p in (port, port + 1)):
        port = free_port()
    worker = Command("worker", "--processes", "2", env={**deployment.env, "PROPWATCH_WEB_PORT": str(port)})
    try:
        worker.wait_for("started 2 worker processes", timeout_s=30)
        for web_port in (port, port + 1):
            _wait_healthy(worker, web_port, timeout_s=180)
        children = descendants(worker.process.pid)
        no_orphans.update(children)
        commands = [c for c in children.values() if "streams.cli worker --processes 1" in c]
        assert len(commands) == 2, children

        took = worker.signal(signum)
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
    print(
        f"worker --processes 2: {signal.Signals(signum).name} -> exit {worker.process.returncode} "
        f"in {took:.1f} s"
    )
    assert_all_stopped(children)
    assert worker.process.returncode == exit_code, worker.output()
    assert f"stopped by {signal.Signals(signum).name}" in worker.output()


def test_a_worker_process_that_fails_stops_the_others(
    deployment: Deployment, tmp_path: Path, no_orphans: dict[tuple[int, int], str]
) -> None:
    """One worker's model cannot load (its labels are not the taxonomy): it exits 2, and the
    parent stops the other and exits with the same code, for whatever restarts it to see."""
    foreign = build_tiny_model(tmp_path / "toxicity", ["toxic", "insult", "threat"])
    worker = Command(
        "worker",
        "--processes",
        "2",
        env={**deployment.env, "PROPWATCH_MODEL": str(foreign), "PROPWATCH_WEB_PORT": str(free_port())},
    )
    try:
        worker.wait_for("started 2 worker processes", timeout_s=30)
        no_orphans.update(descendants(worker.process.pid))
        assert worker.process.wait(timeout=180) == 2, worker.output()
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
    worker._reader.join(timeout=10)
    assert_all_stopped(no_orphans)
    assert "exited with 2: stopping the others, exit 2" in worker.output()


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_healthy(command: Command, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert command.process.poll() is None, f"exited {command.process.returncode}:\n{command.output()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, (
            f"port {port} not healthy within {timeout_s:.0f} s:\n{command.output()}"
        )
        time.sleep(0.5)
