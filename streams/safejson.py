"""JSON from bytes that other systems wrote: parsing that cannot raise, encoding that cannot lie.

Every topic propwatch reads carries bytes a producer chose. :func:`parse` turns any byte sequence
into either a value or a :class:`NotJson` that says why not, and never raises: not UTF-8,
syntax errors, integers past Python's digit limit (4,300 digits), ``NaN``/``Infinity`` and
numbers that overflow to infinity, and nesting deeper than :data:`MAX_DEPTH` (so that nothing
parsed can later exhaust the recursion limit when it is encoded again). Lone UTF-16 surrogates
(``"\\ud800"`` escapes) parse, since JSON allows them, but are reported by :func:`lone_surrogate`:
they are not text and cannot be written back as UTF-8.

:func:`encode` is the wire form of every record propwatch writes; it refuses NaN, infinities and
lone surrogates instead of writing something that is not JSON or not UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

MAX_DEPTH = 64
"""Deepest nesting accepted (an object or array inside another counts one level)."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# C0 controls but tab, newline and carriage return, DEL, C1 controls, and the Unicode controls
# that reorder or hide text on a terminal or page (bidirectional overrides and isolates), and lone
# surrogates, which cannot be printed at all.
_TERMINAL_UNSAFE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@dataclass(frozen=True)
class NotJson:
    """Why a byte sequence is not an acceptable JSON value."""

    kind: Literal["utf8", "json"]
    """``utf8``: not UTF-8; ``json``: UTF-8 but not acceptable JSON."""
    message: str


class _Rejected(ValueError):
    pass


def _constant(name: str) -> float:
    raise _Rejected(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected(f"number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def parse(raw: bytes | str) -> Any | NotJson:
    """The JSON value of ``raw``, or why it is not one. Never raises."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return NotJson("utf8", f"not valid UTF-8: {exc.reason} at byte {exc.start}")
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except json.JSONDecodeError as exc:
        return NotJson("json", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return NotJson("json", f"nested deeper than {MAX_DEPTH} levels")
    except _Rejected as exc:
        return NotJson("json", f"not JSON: {exc}")
    except ValueError as exc:  # integers past the digit limit, and whatever else json refuses
        return NotJson("json", f"not JSON: {str(exc)[:200]}")
    if depth(value) > MAX_DEPTH:
        return NotJson("json", f"nested deeper than {MAX_DEPTH} levels")
    return value


def depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def lone_surrogate(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a lone UTF-16 surrogate."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def parse_object(raw: bytes | str) -> dict[str, Any] | NotJson:
    """Like :func:`parse`, but only a JSON object with no lone surrogates is a value."""
    value = parse(raw)
    if isinstance(value, NotJson):
        return value
    if not isinstance(value, dict):
        return NotJson("json", f"a JSON {json_type(value)}, expected an object")
    if lone_surrogate(value):
        return NotJson("json", "escapes an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is not text")
    return value


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def encode(record: Any) -> bytes:
    """The wire form of an output record: compact UTF-8 JSON. Raises ``ValueError`` on NaN or an
    infinity and ``UnicodeEncodeError`` on a lone surrogate: such a record is a bug, never sent."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def for_terminal(text: str) -> str:
    """``text`` with the characters that would drive a terminal or reorder what it shows (control
    characters, bidirectional overrides) written as ``\\uXXXX``; tab and newlines kept."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
