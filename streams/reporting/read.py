"""Reading the report's topics from a broker: every record of each, to the end of the topic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from streams.kafka.reader import read_to_end
from streams.safejson import NotJson, parse_object
from streams.settings import Settings

TOPICS: tuple[str, ...] = ("referrals", "cleared", "review", "dlq", "decisions")
"""The topics (short names) the report reads."""
Record = dict[str, Any]
# --- Reading -----------------------------------------------------------------------------------


def read_topics(
    settings: Settings,
    short_names: Iterable[str] = TOPICS,
    *,
    timeout_s: float = 60.0,
    unreadable: dict[str, int] | None = None,
) -> dict[str, list[Record]]:
    """Every record of the topics ``short_names``, from the beginning to their ends
    (:func:`streams.kafka.reader.read_to_end`), as parsed JSON objects; ``{short name: [record,
    ...]}`` in partition order.

    A topic that does not exist yet is empty. Values that :func:`parse_record` cannot read are
    skipped; when ``unreadable`` is given, their count per short name is added to it. Raises
    :class:`TimeoutError` when the end is not reached within ``timeout_s``.
    """
    names = list(dict.fromkeys(short_names))
    result: dict[str, list[Record]] = {name: [] for name in names}
    skipped: Counter[str] = Counter()
    short = {settings.topic(name): name for name in names}
    for message in read_to_end(settings, list(short), timeout_s=timeout_s):
        value = parse_record(message.value)
        if value is None:
            skipped[short[message.topic]] += 1
        else:
            result[short[message.topic]].append(value)
    if unreadable is not None:
        for name, count in skipped.items():
            unreadable[name] = unreadable.get(name, 0) + count
    return result


def parse_record(value: bytes | None) -> Record | None:
    """A message value as a record, or None when it is not one: a tombstone, or anything
    :func:`streams.safejson.parse_object` refuses (not UTF-8 or not JSON, not an object, a number
    out of range, nesting deeper than ``MAX_DEPTH``, a lone surrogate). Never raises: whoever can
    write to a topic must not be able to stop the report for the topic's whole retention."""
    if value is None:
        return None
    parsed = parse_object(value)
    return None if isinstance(parsed, NotJson) else parsed
