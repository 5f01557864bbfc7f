"""Where a partition ends: the one rule every reader of whole topics uses, the tools' synchronous
reader (:mod:`streams.kafka.reader`) and the worker's followers (:mod:`streams.kafka.follower`).

The end is the high watermark the latest fetch returned, or the end offset listed before reading
when that is larger; it is unknown until a fetch of the partition has answered. The listed end
offset alone will not do: the embedded broker (Tansu 0.6) lists less than the high watermark once
one produce request carried several records to a partition (measured: 1 listed, high watermark 5,
after one request of 5 records), so a reader that stopped there would stop short.
"""

from __future__ import annotations


def partition_end(highwater: int | None, listed: int | None = None) -> int | None:
    """The offset after a partition's last record, or None before a fetch of it has answered.
    ``highwater``: the latest fetch's high watermark; ``listed``: the end offset listed before
    reading, if the reader asked for one."""
    if highwater is None:
        return None
    return highwater if listed is None else max(listed, highwater)


def at_end(position: int, highwater: int | None, listed: int | None = None) -> bool:
    """Whether a reader at ``position`` has read every record of the partition (see
    :func:`partition_end`)."""
    end = partition_end(highwater, listed)
    return end is not None and position >= end
