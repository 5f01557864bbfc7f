"""Reading the files a source connector is given (exports, WARC captures): written by adversaries
too, so read within a size cap, and every failure a :class:`~streams.sources.base.Failure`."""

from __future__ import annotations

import os
from pathlib import Path

from streams.safejson import for_terminal
from streams.sources.base import Failure

DETAIL_CHARS = 300
"""The longest ``Failure.detail`` (a log line, not a dump of the file)."""


def detail(text: str) -> str:
    """``text`` bounded and safe to print."""
    text = for_terminal(text)
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."


def read_bounded(path: str | os.PathLike[str], max_bytes: int) -> bytes | Failure:
    """The whole file at ``path``, or a fatal :class:`Failure`: ``too_large`` past ``max_bytes``
    (checked while reading, so a file that grows or a FIFO cannot exceed it), ``read_error`` when
    it cannot be read."""
    where = Path(path)
    try:
        with open(where, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                return too_large(where, max_bytes)
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        return Failure(
            "read_error", detail(f"{where.name}: {exc.strerror or type(exc).__name__}"), fatal=True
        )
    if len(data) > max_bytes:
        return too_large(where, max_bytes)
    return data


def too_large(path: Path, max_bytes: int) -> Failure:
    """The fatal failure of a file over its cap."""
    return Failure("too_large", detail(f"{path.name}: larger than the cap of {max_bytes} bytes"), fatal=True)
