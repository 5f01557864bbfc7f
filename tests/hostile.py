"""Hypothesis strategies for what a hostile producer writes, and ``st.text()`` or
``st.integers()`` never generate.

Values (Python, encodable with ``json.dumps``): lone surrogates, C0 and C1 controls, carriage
returns, bidirectional overrides, Markdown and HTML, long strings, integers of thousands of
digits, the largest floats, nesting up to and one past :data:`streams.safejson.MAX_DEPTH`, and
timestamps at the ends of ``datetime``'s range with offsets that overflow in UTC.

Raw message values (bytes) add what no Python value encodes to: integers past Python's
4,300-digit limit, numbers that overflow to infinity, ``NaN``, lone surrogates as ``\\ud800``
escapes, nesting from 900 to 1,100 levels, and bytes that are not UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from streams.safejson import MAX_DEPTH

SPECIAL_TEXT = (
    "\x00",
    "\x1b[31m",
    "\x9b31m",
    "\r\n",
    "\r",
    "\u202e",
    "\u2066",
    "\u2028",
    "\ufeff",
    "|",
    "\\",
    "`",
    "&amp;",
    "<script>alert(1)</script>",
    "[x](https://example.test)",
    "![x](https://example.test/pixel.png)",
    "evil\r\n| x | <script>alert(1)</script>",
)
"""Fragments that drive a terminal, reorder or hide text, or break Markdown and HTML."""

texts = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.lists(
        st.one_of(
            st.text(max_size=6),
            st.sampled_from(SPECIAL_TEXT),
            st.characters(categories=("Cc", "Cf", "Zl", "Zp")),
        ),
        max_size=6,
    ).map("".join),
    st.integers(81, 400).map(lambda n: "x" * n),
)
"""Strings with controls, bidi overrides, Markdown, HTML, or over 80 characters: text that a
reader must take, and show safely."""
lone_surrogates = st.tuples(st.text(max_size=3), st.characters(categories=("Cs",)), st.text(max_size=3)).map(
    "".join
)
"""Strings with a lone UTF-16 surrogate: not text; a reader must refuse them (or a writer fails)."""

integers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**4299), max_value=10**4299),
    st.sampled_from((10**4299, -(10**4299), 2**63, -(2**63) - 1, 2**64)),
)
"""Integers up to 4,300 digits, the most ``json.dumps`` writes."""

EXTREME_TIMESTAMPS = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+23:59",
    "1970-01-01T00:00:00Z",
    "1989-12-31T23:59:59Z",
    "1990-01-01T00:00:00Z",
)
timestamps = st.one_of(
    st.sampled_from(EXTREME_TIMESTAMPS),
    st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}".format,
        st.sampled_from((1, 2, 1989, 1990, 2026, 9998, 9999)),
        st.sampled_from((1, 12)),
        st.sampled_from((1, 31)),
        st.sampled_from((0, 23)),
        st.sampled_from((0, 59)),
        st.sampled_from((0, 59)),
        st.sampled_from(("Z", "+00:00", "+23:59", "-23:59", "+05:30")),
    ),
    st.sampled_from(("2026-02-30T00:00:00Z", "2026-11-20", "2026-11-20T09:14:03", "now", "")),
)
"""RFC 3339 timestamps at and past the ends of ``datetime``'s range in UTC, and near misses."""


def nest(depth: int, leaf: object = 1) -> object:
    """``leaf`` inside ``depth`` levels of alternating arrays and objects, built without recursion."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    lone_surrogates,
    timestamps,
)
values = st.one_of(
    st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
        max_leaves=6,
    ),
    st.integers(1, MAX_DEPTH).map(nest),
)
"""Any JSON value: hostile scalars, small containers, and nesting up to ``MAX_DEPTH`` levels (so
that inside a record it reaches the limit, and one level past it)."""


def records(
    fields: Mapping[str, st.SearchStrategy[Any]], keys: Sequence[str] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with ``fields``, each missing, or with a plausible value (from ``fields``) or any of
    :data:`values` (wrong types, hostile strings, deep nesting), plus a stray field. The ``keys``
    are always there with a plausible value, so that most records get past a reader's key checks
    and what the other fields hold is put to use; wrong ``keys`` need tests of their own."""
    return st.fixed_dictionaries(
        {name: fields[name] for name in keys},
        optional={name: plausible | values for name, plausible in fields.items() if name not in keys}
        | {"extra": values},
    )


DEEP = st.integers(900, 1100).flatmap(
    lambda depth: st.sampled_from(("[" * depth + "]" * depth, '{"k":' * depth + "1" + "}" * depth))
)
"""Nesting from 900 to 1,100 levels, as JSON text: near and past Python's recursion limit."""
RAW_FRAGMENTS = st.one_of(
    st.sampled_from(
        (
            "9" * 5000,
            "-" + "9" * 4301,
            "1e999",
            "-1e999",
            "NaN",
            "Infinity",
            "-Infinity",
            '"\\ud800"',
            '"x\\udfff"',
        )
    ),
    DEEP,
)
"""JSON text that no Python value encodes to."""


def raw_values(record: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes | None]:
    """A message value as a producer can write it: about half ``record`` encoded (lone
    surrogates as escapes), the rest ``record`` with one field replaced by a :data:`RAW_FRAGMENTS`
    text, bare fragments, bytes, or a tombstone (None)."""
    encoded = record.map(lambda value: json.dumps(value).encode())
    spliced = st.tuples(record, st.text(max_size=12), RAW_FRAGMENTS).map(_splice)
    return encoded | st.one_of(spliced, RAW_FRAGMENTS.map(str.encode), st.binary(max_size=64), st.none())


def _splice(parts: tuple[dict[str, Any], str, str]) -> bytes:
    """``record`` as JSON with ``"name": fragment`` appended: JSON's last duplicate key wins."""
    record, name, fragment = parts
    head = json.dumps(record)[:-1]
    separator = "" if head == "{" else ", "
    return f"{head}{separator}{json.dumps(name)}: {fragment}}}".encode()
