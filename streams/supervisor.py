"""``propwatch worker --processes N``: N worker processes under one parent, one per core by default.

One Python process classifies on one core at a time between inferences (the event loop, JSON,
Kafka), so one worker per core with one inference thread each gets the most out of a machine
(docs/performance.md). The parent loads no model: it starts the workers as children, each in the
same consumer group, each with its own web port (``PROPWATCH_WEB_PORT`` + i) for ``/health`` and
``/metrics``, and supervises them:

- SIGTERM or SIGINT to the parent stops every worker (each drains and commits), and the parent
  exits 143 or 130, as every command that starts children does (:mod:`streams.children`).
- A worker that exits on its own ends the group: the parent stops the others and exits with the
  worker's code (70 after a fatal failure, 2 for a bad model or settings at start, 128 + n for a
  worker killed by signal n). The parent does not restart workers itself: whatever restarts a
  failed ``propwatch worker`` (systemd's ``Restart=on-failure``, Kubernetes, compose's
  ``restart:``) restarts the group, with its back-off, and the failure shows where operators look.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from streams import children

WORKER_STOP_TIMEOUT_S = 20.0
"""How long a worker may take to stop after SIGTERM: it drains for at most 10 s (DRAIN_TIMEOUT_S)."""

AUTO = "auto"


def worker_command(processes: int = 1) -> list[str]:
    """The command line of ``propwatch worker --processes N`` in this Python."""
    return [sys.executable, "-m", "streams.cli", "worker", "--processes", str(processes)]


def _cgroup_cpus() -> int | None:
    """The CPUs the cgroup's quota allows (cgroup v2 ``cpu.max``, rounded up), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def process_count(value: str) -> int:
    """``--processes``: a positive number, or ``auto`` for one per available core."""
    if value == AUTO:
        return available_cores()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--processes must be a positive number or {AUTO}, not {value!r}")
    return count


def worker_env(environ: Mapping[str, str], index: int, count: int, web_port: int) -> dict[str, str]:
    """The environment of worker ``index`` of ``count``: its own web port, and one inference
    thread unless ``PROPWATCH_INFERENCE_THREADS`` says otherwise."""
    env = {**environ, "PROPWATCH_WEB_PORT": str(web_port + index)}
    if count > 1 and not environ.get("PROPWATCH_INFERENCE_THREADS"):
        env["PROPWATCH_INFERENCE_THREADS"] = "1"
    return env


def exit_code(returncode: int) -> int:
    """The parent's exit code for a worker that exited on its own with ``returncode``."""
    if returncode < 0:
        return 128 - returncode  # killed by signal n: 128 + n, as shells report it
    return returncode or 1  # a worker that stops by itself with 0 still stopped unasked


def supervise(count: int, web_port: int, *, log: Callable[[str], None], poll_s: float = 0.5) -> int:
    """Run ``count`` workers until one exits (returns the parent's exit code) or a signal stops
    the parent (:class:`streams.children.Stopped` from :func:`streams.children.stopped_on_signals`,
    which the caller runs this inside). Every worker is stopped on the way out."""
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            workers.append(
                children.start(
                    worker_command(1),
                    stop_timeout_s=WORKER_STOP_TIMEOUT_S,
                    env=worker_env(os.environ, index, count, web_port),
                )
            )
        ports = f"{web_port}-{web_port + count - 1}" if count > 1 else str(web_port)
        pids = ", ".join(str(w.pid) for w in workers)
        log(f"started {count} worker processes (pids {pids}; /health and /metrics on ports {ports})")
        while True:
            for index, worker in enumerate(workers):
                returncode = worker.poll()
                if returncode is not None:
                    code = exit_code(returncode)
                    log(
                        f"worker process {index} (pid {worker.pid}, port {web_port + index}) exited "
                        f"with {returncode}: stopping the others, exit {code}"
                    )
                    return code
            time.sleep(poll_s)
    finally:
        children.terminate_together(workers)
