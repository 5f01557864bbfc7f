"""``propwatch worker`` as a child process: what the demo, the benchmark and the tests run; and the
base of every such child that serves /health (:class:`ServiceProcess`)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from streams import children
from streams.supervisor import WORKER_STOP_TIMEOUT_S, worker_command


class ServiceProcess:
    """A propwatch command that serves /health, as a child process with its own log file."""

    name = "process"

    def __init__(
        self, command: Sequence[str], env: dict[str, str], log_path: Path, *, port: int, stop_timeout_s: float
    ) -> None:
        """Start ``command`` with ``PROPWATCH_*`` variables from ``env`` over this process's own."""
        self.log_path = log_path
        self.web_port = port
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = children.start(
                command,
                stop_timeout_s=stop_timeout_s,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Wait until /health answers 200; fail with the log's tail if the process exits."""
        url = f"{self.url}/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"the {self.name} exited with {code}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the {self.name} was not healthy within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: a crash, for fault tests."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s`` (default: the stop timeout it was started with)."""
        children.terminate(self.process, timeout_s)


class WorkerProcess(ServiceProcess):
    """``propwatch worker`` (one process) on ``PROPWATCH_WEB_PORT``."""

    name = "worker"

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(
            worker_command(processes=1),  # one process: the harness starts as many as it wants
            env,
            log_path,
            port=int(env.get("PROPWATCH_WEB_PORT", "6066")),
            stop_timeout_s=WORKER_STOP_TIMEOUT_S,
        )
