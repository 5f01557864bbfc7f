"""``propwatch consume`` prints any message value as one line of JSON that cannot drive the
terminal: no broker."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.cli import main
from streams.io import consumed_line
from streams.safejson import NotJson, for_terminal, lone_surrogate, parse
from tests import hostile


def check(raw: bytes | None) -> object:
    """The printed line of ``raw``, asserted to be one safe line of JSON; returns its value."""
    line = consumed_line(raw)
    assert line.splitlines() == [line] and "\n" not in line
    assert for_terminal(line) == line, "nothing that drives or reorders a terminal"
    line.encode("utf-8")  # no lone surrogate
    return json.loads(line)


@pytest.mark.parametrize(
    "raw, shown",
    [
        (b'{"id": "a", "n": 1.5, "lang": "en"}', {"id": "a", "n": 1.5, "lang": "en"}),
        (b'"just a string"', "just a string"),
        (b"[" * 1000 + b"]" * 1000, "[" * 1000 + "]" * 1000),
        (b'{"n": ' + b"9" * 5000 + b"}", '{"n": ' + "9" * 5000 + "}"),
        (b'{"n": 1e999}', '{"n": 1e999}'),
        (b'{"lang": "\x1b[31m"}', '{"lang": "\x1b[31m"}'),  # a raw control: not JSON
        (b'{"lang": "\\u001b[31m\\u009b\\u202e"}', {"lang": "\x1b[31m\x9b\u202e"}),
        (b'{"id": "\\ud800"}', '{"id": "\\ud800"}'),
        (b'{"text": "caf\xe9"}', '{"text": "caf\ufffd"}'),
        (b"not json\r\nat all", "not json\r\nat all"),
        (None, None),
    ],
    ids=[
        "object",
        "string",
        "nested-1000",
        "5000-digits",
        "overflow",
        "raw-escape",
        "escaped-controls",
        "lone-surrogate",
        "latin-1",
        "crlf",
        "tombstone",
    ],
)
def test_each_value_is_shown_as_its_json_or_its_text(raw: bytes | None, shown: object) -> None:
    assert check(raw) == shown


def test_controls_bidi_overrides_and_line_separators_are_escaped_on_the_line() -> None:
    line = consumed_line(b'{"lang": "\\u001b[31m\\u009b\\u202e", "text": "a\xe2\x80\xa8b\\n"}')
    assert line == '{"lang":"\\u001b[31m\\u009b\\u202e","text":"a\\u2028b\\n"}'


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | hostile.raw_values(hostile.records({"id": st.just("a")})))
def test_any_value_is_one_safe_line_with_its_value_or_its_text(raw: bytes | None) -> None:
    shown = check(raw)
    if raw is None:
        assert shown is None
        return
    parsed = parse(raw)
    if isinstance(parsed, NotJson) or lone_surrogate(parsed):
        assert shown == raw.decode("utf-8", errors="replace")
    else:
        assert shown == parsed


def test_the_command_prints_every_value_whatever_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.kafka.reader

    values = [b'{"id": "\\u6f22"}', b"[" * 1000 + b"]" * 1000, b"\xff\xfe", None, b'{"id": "\\ud800"}']

    def fake_read(*args: object, **kwargs: object) -> Iterator[SimpleNamespace]:
        for value in values:
            yield SimpleNamespace(topic="propwatch.referrals", value=value)

    monkeypatch.setattr(streams.kafka.reader, "read_to_end", fake_read)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")  # as under LANG=C without coercion
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["consume", "referrals"]) == 0
    lines = stdout.buffer.getvalue().decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "\u6f22"},
        "[" * 1000 + "]" * 1000,
        "\ufffd\ufffd",
        None,
        '{"id": "\\ud800"}',
    ]


def test_a_reader_that_goes_away_ends_the_command_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """`propwatch ... | head -1`: the pipe closes under the command, which exits 141 (128 +
    SIGPIPE) without a traceback, and the interpreter's flush at exit finds /dev/null."""
    import io
    import os

    from streams.cli import EXIT_BROKEN_PIPE, main

    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = io.TextIOWrapper(os.fdopen(write_end, "wb", buffering=0), write_through=True)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        assert main(["settings"]) == EXIT_BROKEN_PIPE
        stdout.write("after the reader went away\n")  # lands in /dev/null
    finally:
        stdout.close()
