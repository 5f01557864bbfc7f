"""Where the connectors run their parsers (feedparser, trafilatura and htmldate, lxml) on what a
source fetched: :class:`Parsing` here, in a worker thread (tests, tools), or :class:`Parsers`, in
child processes with a deadline on each call (the sources service).

The parsers were not written for adversaries. Some of their paths are quadratic in what a
document holds: one tag with 60,000 attributes (a 1 MB page) keeps libxml2's HTML parser, which
trafilatura and htmldate run several times a page, busy for half a minute, and a feed item with
40,000 attributes keeps feedparser busy for 15 s; five times as many take twenty-five times as
long. A crash in their C code would take the process with it. So the service runs each parse in a
child process: one that has not answered within ``parse_timeout`` is killed and replaced, and the
parse fails with ``timeout``; one that dies fails it with ``read_error``. Either way the failure
is counted like any other, and the service goes on.

The children are started with ``spawn`` (a fresh interpreter: nothing of the service's threads is
inherited) when first needed, and kept. At most :data:`PROCESSES` parses run at once; the others
wait for a free child, and the wait does not count against the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import ParamSpec, TypeVar

from streams.settings import LOG_FORMAT
from streams.sources.base import Failure

log = logging.getLogger(__name__)

PROCESSES = 2
"""Child processes of a :class:`Parsers`: parses that run at once."""
PARSE_TIMEOUT_S = 60.0
"""The default deadline of one parse (``fetch.parse_timeout``)."""
EXIT_WAIT_S = 1.0
"""How long a child whose pipe closed is given to finish dying, for its exit code."""

P = ParamSpec("P")
T = TypeVar("T")


class Parsing:
    """Parsers run in this process, in a worker thread, without a deadline: for tests and tools.
    The service uses :class:`Parsers`."""

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | Failure:
        """``fn(*args, **kwargs)``, blocking: call it from a thread (a file connector's)."""
        return fn(*args, **kwargs)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | Failure:
        """:meth:`call` in a worker thread, for the event loop."""
        return await asyncio.to_thread(self.call, fn, *args, **kwargs)


IN_THREAD = Parsing()


@dataclass(frozen=True)
class _Raised:
    """What a child sends back when the parser raised (or its result could not be sent)."""

    what: str


def _serve(connection: Connection, log_level: int) -> None:
    """A child's loop: a call in, its result out, until the service closes its end (or dies).
    Ctrl-C in a terminal reaches the whole process group: the service stops its children."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    while True:
        try:
            fn, args, kwargs = connection.recv()
        except (EOFError, OSError):
            return
        try:
            result: object = fn(*args, **kwargs)
        except Exception as exc:  # the parsers catch their own; this one is a bug, sent back
            result = _Raised(f"{type(exc).__name__}: {exc}")
        try:
            connection.send(result)
        except (EOFError, OSError):
            return
        except Exception as exc:  # a result that does not pickle
            connection.send(_Raised(f"result not sent: {type(exc).__name__}: {exc}"))


class _Child:
    """One child process and the parent's end of its pipe."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.connection, theirs = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(theirs, logging.getLogger().getEffectiveLevel()), daemon=True
        )
        self.process.start()
        theirs.close()

    def stop(self) -> None:
        self.connection.close()
        self.process.kill()
        self.process.join()


class Parsers(Parsing):
    """Parsers run in :data:`PROCESSES` child processes, each call within ``timeout_s`` (see the
    module). Close it (or use it as a context manager) to stop the children."""

    def __init__(self, timeout_s: float = PARSE_TIMEOUT_S, processes: int = PROCESSES) -> None:
        self.timeout_s = timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._free: queue.SimpleQueue[_Child | None] = queue.SimpleQueue()
        """Children free for a call; None: a child not started (yet, or again after a kill)."""
        for _ in range(processes):
            self._free.put(None)
        self._lock = threading.Lock()
        self._children: set[_Child] = set()
        self._closed = False

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | Failure:
        """``fn(*args, **kwargs)`` in a free child, blocking: a ``timeout`` Failure (the child
        killed) when it takes longer than ``timeout_s``, a ``read_error`` one when the child dies
        or ``fn`` raises. ``fn`` and what goes in and out must pickle (a module's function)."""
        child = self._free.get()
        try:
            if child is None:
                child = self._start()
            if child is None:
                return Failure("read_error", "not parsed: the service is stopping")
            child.connection.send((fn, args, kwargs))
            if not child.connection.poll(self.timeout_s):
                self._stop(child)
                child = None
                log.warning("a parse took over %g s: its process was killed", self.timeout_s)
                return Failure("timeout", f"parsing took over {self.timeout_s:g} s: stopped")
            result = child.connection.recv()
        except (EOFError, OSError) as exc:  # the child died (a crash in a parser), or was stopped
            code = None
            if child is not None:
                child.process.join(EXIT_WAIT_S)
                code = child.process.exitcode
                self._stop(child)
                child = None
            if not self._closed:
                log.warning("a parse process died (exit code %s): %s", code, type(exc).__name__)
            return Failure("read_error", f"the parse process died (exit code {code})")
        finally:
            self._free.put(child)
        if isinstance(result, _Raised):
            log.error("a parser raised: %s", result.what)
            return Failure("read_error", f"parser raised {result.what}"[:300])
        return result  # type: ignore[no-any-return]  # what fn returned, through the pipe

    def _start(self) -> _Child | None:
        with self._lock:
            if self._closed:
                return None
            child = _Child(self._context)
            self._children.add(child)
            return child

    def _stop(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)
        child.stop()

    def close(self) -> None:
        """Stop every child. A parse under way fails with ``read_error``; so does any later call."""
        with self._lock:
            self._closed = True
            busy = set(self._children)
        free = []
        while True:
            try:
                free.append(self._free.get_nowait())
            except queue.Empty:
                break
        for child in free:
            if child is not None:
                busy.discard(child)
                self._stop(child)
            self._free.put(None)
        for child in busy:  # its call gets EOF, and stops it
            child.process.kill()
            child.process.join()

    def __enter__(self) -> Parsers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
