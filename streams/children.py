"""Child processes of a command (the embedded broker, workers, the naive baseline), and how they
stop when the command does.

Each child runs in its own session, so that Ctrl-C in the terminal reaches only the command,
which then stops its children in order (workers drain and commit before their broker goes). The
flip side: no signal sent to the command reaches them by itself. A command that starts children
therefore runs inside :func:`stopped_on_signals`, which makes SIGTERM (``docker stop``, systemd,
a CI runner) do what Ctrl-C does, and stops every child still running on the way out, however
the command ends.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_running: dict[subprocess.Popen[bytes], float] = {}
"""Children started and not yet stopped, in start order, with their stop timeouts."""


def start(args: Sequence[str], *, stop_timeout_s: float, **popen: Any) -> subprocess.Popen[bytes]:
    """Start a child process in its own session. ``stop_timeout_s``: how long it may take to
    stop after SIGTERM before it is killed."""
    process: subprocess.Popen[bytes] = subprocess.Popen(args, start_new_session=True, **popen)
    _running[process] = stop_timeout_s
    return process


def terminate(process: subprocess.Popen[bytes], timeout_s: float | None = None) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after ``timeout_s`` (default: its stop timeout
    from :func:`start`); wait for it either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_running[process] if timeout_s is None else timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _running.pop(process, None)


def terminate_together(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop several children at once: SIGTERM to all of them first, so that they drain side by
    side, then wait for each within its stop timeout and SIGKILL any still running."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + max((_running.get(p, 0.0) for p in processes), default=0.0)
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _running.pop(process, None)


def stop_all() -> None:
    """Stop every child still running, the last started first (workers before their broker)."""
    for process in reversed(list(_running)):
        terminate(process)


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, as KeyboardInterrupt is, so that no ``except
    Exception`` stops it and every ``finally`` on the way runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells report it: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


@contextmanager
def stopped_on_signals() -> Iterator[None]:
    """Run a command that starts children (in the main thread): the first SIGINT or SIGTERM
    raises :class:`Stopped`, so the command unwinds through its ``finally`` blocks, which stop its
    children in order; on the way out, whichever way it is, :func:`stop_all` stops any child left.
    Signals after the first, and during that last step, are ignored: stopping is bounded by the
    children's stop timeouts, and cutting it short is what would leave one running. The previous
    handlers are restored afterwards."""
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        stopping = True
        try:
            stop_all()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
