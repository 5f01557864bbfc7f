"""The command line's input and output: content items from JSON Lines to the content topic, and
records as lines a terminal can show safely. Kafka itself is :mod:`streams.kafka`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from kafka.errors import MessageSizeTooLargeError

from streams.kafka.producer import Producer
from streams.kafka.topics import CONTENT
from streams.records import ContentItem, parse_item
from streams.safejson import NotJson, encode, for_terminal, lone_surrogate, parse
from streams.settings import Settings


@dataclass
class ProduceReport:
    sent: int = 0
    invalid: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def produce_lines(
    settings: Settings,
    lines: Iterable[bytes],
    *,
    strict: bool = False,
    on_reject: Callable[[int, str], None] | None = None,
) -> ProduceReport:
    """Send JSON Lines to the content topic, keyed by item id when one can be read.

    Invalid lines are sent too (the worker dead-letters them, so nothing is lost) unless
    ``strict``, which rejects them here instead. A line larger than a produce request can take
    (``max_message_bytes``) is rejected here whatever ``strict`` says. Blank lines are skipped.
    Returns once the broker acknowledged every line sent; raises
    :class:`kafka.errors.KafkaError` when a send failed.
    """
    report = ProduceReport()
    topic = settings.topic(CONTENT.name)
    with Producer(settings) as producer:
        for number, line in enumerate(lines, 1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            parsed = parse_item(raw, max_text_bytes=settings.max_text_bytes)
            key = None
            if isinstance(parsed, ContentItem):
                key = parsed.id.encode()
            else:
                report.invalid += 1
                report.reasons[str(parsed.code)] = report.reasons.get(str(parsed.code), 0) + 1
                if parsed.item_id is not None:
                    key = parsed.item_id.encode()
                if strict:
                    report.rejected += 1
                    if on_reject:
                        on_reject(number, f"{parsed.code}: {parsed.message}")
                    continue
            try:
                producer.send(topic, key=key, value=raw)
            except MessageSizeTooLargeError:  # no broker takes it: nothing could dead-letter it
                report.rejected += 1
                report.reasons["too_large"] = report.reasons.get("too_large", 0) + 1
                if on_reject:
                    on_reject(number, f"too_large: {len(raw)} bytes, over PROPWATCH_MAX_MESSAGE_BYTES")
                continue
            report.sent += 1
        producer.flush()
    return report


_LINE_BREAKS = str.maketrans({"\n": "\\u000a", "\t": "\\u0009", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def one_line(text: str) -> str:
    """``text`` as one line that cannot drive or reorder a terminal: :func:`for_terminal`, and
    newline, tab and the Unicode line and paragraph separators (``str.splitlines`` and some
    viewers break lines there) as ``\\uXXXX`` too."""
    return for_terminal(text).translate(_LINE_BREAKS)


def json_line(value: object) -> str:
    """``value`` as one line of JSON that is safe to print: :func:`streams.safejson.encode` (never
    NaN, never a lone surrogate) through :func:`one_line`. What that rewrites occurs only inside
    strings, as ``\\uXXXX`` escapes, so the line is still JSON with the same value."""
    return one_line(encode(value).decode("utf-8"))


def read_lines(path: str) -> Iterator[bytes]:
    """Lines of a file, or of standard input for ``-``."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as handle:
        yield from handle


def consumed_line(value: bytes | None) -> str:
    """One message value as ``propwatch consume`` prints it: a line of JSON that cannot drive the
    terminal (:func:`json_line`), whatever the value holds. An acceptable JSON value (see
    :func:`streams.safejson.parse`, and no lone surrogate) is printed re-encoded, compactly; any
    other value (not UTF-8, not JSON, a number out of range, nesting past ``MAX_DEPTH``, a lone
    surrogate) as a JSON string of its text, bytes that are not UTF-8 replaced by U+FFFD; a
    tombstone as ``null``. Never raises: a topic's records are written by whoever may write it."""
    if value is None:
        return "null"
    parsed = parse(value)
    if isinstance(parsed, NotJson) or lone_surrogate(parsed):
        parsed = value.decode("utf-8", errors="replace")
    return json_line(parsed)
