"""The file connectors (streams/sources/exports.py, streams/sources/warc.py) on their fixtures, and
on hostile files built here: every problem a Failure, never an exception."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.warcwriter import WARCWriter

from streams import safejson
from streams.metrics import FETCH_ERRORS
from streams.sources.base import Failure, Found
from streams.sources.exports import read_discord_export, read_telegram_export, telegram_username
from streams.sources.warc import read_warc
from tests import hostile
from tests.fixtures.sources import make_warc
from tests.fixtures.sources.make_warc import response

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sources"
TELEGRAM = FIXTURES / "telegram" / "result.json"
DISCORD = FIXTURES / "discord" / "export.json"
WARC = FIXTURES / "capture.warc.gz"


def _write(tmp_path: Path, content: bytes | str | Any, name: str = "export.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def _telegram(messages: list[Any], **export: Any) -> dict[str, Any]:
    return {"name": "Test channel", "type": "public_channel", "id": 1, "messages": messages, **export}


def _discord(messages: list[Any], guild_id: Any = "1", channel_id: Any = "2") -> dict[str, Any]:
    return {
        "guild": {"id": guild_id, "name": "A server"},
        "channel": {"id": channel_id, "name": "general", "category": None},
        "messages": messages,
    }


def _fatal(results: list[Found | Failure]) -> Failure:
    assert len(results) == 1, results
    (failure,) = results
    assert isinstance(failure, Failure) and failure.fatal, failure
    return failure


# Telegram


def test_telegram_export_gives_each_message_with_text_and_its_permalink() -> None:
    found = list(read_telegram_export(TELEGRAM, channel_url="https://t.me/kestrel_bulletin"))
    assert all(isinstance(item, Found) for item in found)
    assert [item.url for item in found] == [f"https://t.me/kestrel_bulletin/{i}" for i in (2, 3, 5, 7)]
    assert {item.platform for item in found} == {"telegram"}
    first, formatted, forwarded, arabic = found
    assert first.text.startswith("The Kestrel Column salutes")
    assert first.published_at == datetime(2024, 3, 1, 9, 5, tzinfo=UTC)
    assert first.author == "Kestrel Column Bulletin"
    assert first.metadata == {"channel": "Kestrel Column Bulletin", "message_id": "2"}
    # a list of strings and entities is one text; a signed post's author is its signature
    assert formatted.text == (
        "Nieuw bericht: de Kestrel Column zoekt vrijwilligers voor het wervingsformulier. #KestrelColumn"
    )
    assert formatted.author == "Quill"
    assert forwarded.metadata["forwarded_from"] == "Harbour Town Gazette"
    assert arabic.text.startswith("قال عضو سابق")


@pytest.mark.parametrize(
    "channel_url",
    [
        "https://t.me/kestrel_bulletin",
        "t.me/kestrel_bulletin/",
        "https://t.me/s/kestrel_bulletin",
        "@kestrel_bulletin",
    ],
)
def test_telegram_channel_addresses_give_the_username(channel_url: str) -> None:
    assert telegram_username(channel_url) == "kestrel_bulletin"


@pytest.mark.parametrize(
    "channel_url",
    ["", "https://evil.example/kestrel", "https://t.me/kestrel/2", "t.me/ab", "t.me/a b", "t.me/9abc"],
)
def test_a_bad_channel_address_is_a_fatal_failure(channel_url: str) -> None:
    assert telegram_username(channel_url) is None
    failure = _fatal(list(read_telegram_export(TELEGRAM, channel_url=channel_url)))
    assert failure.reason == "invalid_url"


def test_without_a_channel_address_messages_have_no_url() -> None:
    found = list(read_telegram_export(TELEGRAM, channel_url=None))
    assert len(found) == 4
    assert all(isinstance(item, Found) and item.url is None for item in found)


def test_telegram_dates_without_unixtime_are_read_as_utc(tmp_path: Path) -> None:
    path = _write(
        tmp_path, _telegram([{"id": 1, "type": "message", "date": "2024-01-02T03:04:05", "text": "hello"}])
    )
    (item,) = read_telegram_export(path, channel_url=None)
    assert isinstance(item, Found)
    assert item.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_message_with_odd_entities_is_a_failure_and_reading_goes_on(tmp_path: Path) -> None:
    odd = [
        ["plain ", {"type": "bold"}],
        ["plain ", {"type": "bold", "text": 5}],
        ["plain ", ["nested", ["list"]]],
        [None],
        {"type": "bold", "text": "an object, not a list"},
        7,
    ]
    messages = [{"id": i + 1, "type": "message", "text": text} for i, text in enumerate(odd)]
    messages.append(
        {"id": 99, "type": "message", "text": ["fine ", {"type": "unknown_kind", "text": "text"}]}
    )
    results = list(read_telegram_export(_write(tmp_path, _telegram(messages)), channel_url="@chan_name"))
    failures, (found,) = results[:-1], results[-1:]
    assert len(failures) == len(odd)
    assert all(isinstance(f, Failure) and f.reason == "invalid_content" and not f.fatal for f in failures)
    assert isinstance(found, Found)
    assert (found.text, found.url) == ("fine text", "https://t.me/chan_name/99")


def test_telegram_wrong_types_everywhere(tmp_path: Path) -> None:
    messages = [
        1,
        "a string",
        None,
        [],
        {"type": 5, "id": 1, "text": "x"},
        {"type": "message", "id": "7", "text": "string id"},
        {"type": "message", "id": True, "text": "boolean id"},
        {"type": "message", "id": -3, "text": "negative id"},
        {"type": "message", "id": 2**70, "text": "huge id"},
        {"type": "message", "id": 1.5, "text": "float id"},
        {"type": "message", "id": 8, "text": {"not": "text"}},
        {
            "type": "message",
            "id": 9,
            "text": "kept, its other fields ignored",
            "date_unixtime": [1],
            "date": 5,
            "from": 7,
            "author": {},
            "forwarded_from": ["x"],
        },
        {
            "type": "message",
            "id": 10,
            "text": "bad dates",
            "date_unixtime": "99999999999999999",
            "date": "yesterday",
        },
        {"type": "service", "id": "anything", "text": 5},
        {"type": "some_future_type", "id": 11, "text": "skipped"},
    ]
    path = _write(tmp_path, _telegram(messages, name=["not", "a", "title"]))
    results = list(read_telegram_export(path, channel_url="t.me/chan_name"))
    failures = [r for r in results if isinstance(r, Failure)]
    found = [r for r in results if isinstance(r, Found)]
    assert len(failures) == 11
    assert all(f.reason == "invalid_content" and not f.fatal for f in failures)
    assert [(f.text, f.published_at, f.author, f.metadata) for f in found] == [
        ("kept, its other fields ignored", None, None, {"message_id": "9"}),
        ("bad dates", None, None, {"message_id": "10"}),
    ]


def test_a_lone_surrogate_fails_its_message_only(tmp_path: Path) -> None:
    raw = (
        '{"messages": [{"id": 1, "type": "message", "text": "bad \\ud800"},'
        ' {"id": 2, "type": "message", "text": "ok"}]}'
    )
    results = list(read_telegram_export(_write(tmp_path, raw), channel_url=None))
    assert isinstance(results[0], Failure) and not results[0].fatal
    assert isinstance(results[1], Found) and results[1].text == "ok"


# Discord


def test_discord_export_gives_each_message_with_text_and_its_permalink() -> None:
    found = list(read_discord_export(DISCORD))
    assert all(isinstance(item, Found) for item in found)
    base = "https://discord.com/channels/900000000000000001/900000000000000002/"
    assert [item.url for item in found] == [base + f"9000000000000000{i}" for i in (11, 12, 13)]
    assert {item.platform for item in found} == {"discord"}
    assert [item.author for item in found] == ["ember_fox", "grey_kestrel#4821", "newsbot"]
    chat, reply, news = found
    assert chat.text == "Anyone up for the co-op raid tonight? We need a healer."
    assert chat.published_at == datetime(2024, 3, 10, 8, 5, 12, 345000, tzinfo=UTC)
    assert reply.published_at == datetime(2024, 3, 10, 8, 15, tzinfo=UTC)  # +01:00 as UTC
    assert chat.metadata == {
        "guild": "Harbour Lights Gaming",
        "category": "Text Channels",
        "channel": "general",
        "message_id": "900000000000000011",
    }
    # a bot's post with only an embed: its title and description
    assert news.text.startswith("Researchers publish guide on leaving extremist groups\n\nThe guide collects")


def test_a_direct_message_export_links_to_me(tmp_path: Path) -> None:
    message = {"id": "5", "type": "Default", "content": "hi there", "author": {"name": "someone"}}
    (item,) = read_discord_export(_write(tmp_path, _discord([message], guild_id="0")))
    assert isinstance(item, Found)
    assert item.url == "https://discord.com/channels/@me/2/5"


@pytest.mark.parametrize(
    "export",
    [
        {"messages": []},
        {"guild": "x", "channel": {"id": "2"}, "messages": []},
        _discord([], guild_id=1),
        _discord([], guild_id="12a"),
        _discord([], channel_id="1" * 21),
        _discord([], channel_id=None),
    ],
)
def test_a_discord_export_without_its_guild_or_channel_is_a_fatal_failure(
    tmp_path: Path, export: Any
) -> None:
    failure = _fatal(list(read_discord_export(_write(tmp_path, export))))
    assert failure.reason == "invalid_content"


def test_discord_wrong_types_everywhere(tmp_path: Path) -> None:
    messages = [
        5,
        {"id": "1", "type": None, "content": "x"},
        {"id": 1, "type": "Default", "content": "int id"},
        {"id": "-1", "type": "Default", "content": "signed id"},
        {"id": "2", "type": "Default", "content": 12},
        {"id": "3", "type": "Default", "content": "x", "embeds": {"title": "not a list"}},
        {"id": "4", "type": "Default", "content": "x", "embeds": ["not an object"]},
        {"id": "5", "type": "Default", "content": ["x"]},
        {
            "id": "6",
            "type": "Reply",
            "content": None,
            "timestamp": "2024-13-45T99:00:00",
            "author": "not an object",
            "embeds": [{"title": 5, "description": None}, {"title": "kept title"}],
        },
        {
            "id": "7",
            "type": "Default",
            "content": "x",
            "timestamp": 17,
            "author": {"name": 5, "discriminator": 1},
        },
        {"id": "8", "type": "Default", "content": "   ", "embeds": []},
        {"id": "9", "type": "GuildMemberJoin", "content": 5},
    ]
    results = list(read_discord_export(_write(tmp_path, _discord(messages))))
    failures = [r for r in results if isinstance(r, Failure)]
    found = [r for r in results if isinstance(r, Found)]
    assert len(failures) == 8
    assert all(f.reason == "invalid_content" and not f.fatal for f in failures)
    assert [(f.text, f.published_at, f.author, f.url) for f in found] == [
        ("kept title", None, None, "https://discord.com/channels/1/2/6"),
        ("x", None, None, "https://discord.com/channels/1/2/7"),
    ]


# Both: files that are not exports


READERS = {
    "telegram": lambda path, **kw: read_telegram_export(path, channel_url="@chan_name", **kw),
    "discord": lambda path, **kw: read_discord_export(path, **kw),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b'{"messages": [',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"messages": [' + b"[" * 70 + b"]" * 70 + b"]}",
        b'{"messages": [{"id": ' + b"9" * 5_000 + b"}]}",
        b'{"messages": [{"id": 1e999}]}',
        b'{"messages": NaN}',
        b"[]",
        b'"a string"',
        b'{"messages": {"1": "an object"}}',
        b'{"chats": {"list": []}}',
    ],
)
def test_a_file_that_is_no_export_is_one_fatal_failure(tmp_path: Path, reader: str, content: bytes) -> None:
    failure = _fatal(list(READERS[reader](_write(tmp_path, content))))
    assert failure.reason == "invalid_content"
    assert len(failure.detail) <= 300


@pytest.mark.parametrize("reader", READERS)
def test_a_file_over_the_cap_is_refused_unread(tmp_path: Path, reader: str) -> None:
    path = _write(tmp_path, _telegram([{"id": 1, "type": "message", "text": "x" * 5_000}]))
    failure = _fatal(list(READERS[reader](path, max_bytes=4_096)))
    assert failure.reason == "too_large"


@pytest.mark.parametrize("reader", READERS)
def test_a_missing_file_or_a_folder_is_a_read_error(tmp_path: Path, reader: str) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        failure = _fatal(list(READERS[reader](path)))
        assert failure.reason == "read_error"


ENTITY = st.fixed_dictionaries({"type": hostile.texts, "text": hostile.texts})
AUTHOR = hostile.records({"name": hostile.texts, "discriminator": st.sampled_from(["0", "0000", "1234"])})
EMBED = hostile.records({"title": hostile.texts, "description": hostile.texts})
TELEGRAM_MESSAGES = hostile.records(
    {
        "id": st.integers(1, 10**6),
        "type": st.sampled_from(["message", "service"]),
        "text": hostile.texts | st.lists(hostile.texts | ENTITY, max_size=4),
        "date_unixtime": st.integers(-(10**12), 10**13).map(str),
        "date": hostile.timestamps,
        "from": hostile.texts,
        "author": hostile.texts,
        "forwarded_from": hostile.texts,
    },
    keys=("type", "id"),
)
DISCORD_MESSAGES = hostile.records(
    {
        "id": st.integers(0, 2**70).map(str),
        "type": st.sampled_from(["Default", "Reply", "GuildMemberJoin"]),
        "content": hostile.texts,
        "timestamp": hostile.timestamps,
        "author": AUTHOR,
        "embeds": st.lists(EMBED, max_size=3),
    },
    keys=("type", "id"),
)
EXPORTS = st.fixed_dictionaries(
    {
        "name": hostile.texts,
        "guild": hostile.records({"id": st.sampled_from(["0", "1"]), "name": hostile.texts}, keys=("id",)),
        "channel": hostile.records({"id": st.just("2"), "name": hostile.texts}, keys=("id",)),
        "messages": st.lists(TELEGRAM_MESSAGES | DISCORD_MESSAGES | hostile.values, max_size=5),
    }
)


def _check(results: list[Found | Failure]) -> None:
    for result in results:
        if isinstance(result, Found):
            assert result.text.strip() and not safejson.lone_surrogate(result.text)
            assert result.published_at is None or result.published_at.tzinfo is not None
            assert all(isinstance(v, str) for v in result.metadata.values())
        else:
            assert isinstance(result, Failure) and result.reason in FETCH_ERRORS
            assert len(result.detail) <= 300
    assert all(not r.fatal for r in results[:-1] if isinstance(r, Failure))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(export=EXPORTS)
def test_any_export_gives_found_items_or_failures(tmp_path: Path, export: dict[str, Any]) -> None:
    path = _write(tmp_path, export)
    for reader in READERS.values():
        _check(list(reader(path)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=hostile.raw_values(EXPORTS))
def test_any_bytes_give_found_items_or_failures(tmp_path: Path, raw: bytes | None) -> None:
    path = _write(tmp_path, raw or b"")
    for reader in READERS.values():
        _check(list(reader(path)))


# WARC


def _records(
    tmp_path: Path, *responses: tuple[str, bytes, list[tuple[str, str]]], compressed: bool = True
) -> Path:
    """A WARC file of HTTP responses: (url, body as sent, headers)."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=compressed)
    for number, (url, body, headers) in enumerate(responses, 1):
        response(writer, url, body, headers, number)
    return _write(tmp_path, out.getvalue(), "records.warc.gz" if compressed else "records.warc")


def _summary(results: list[Found | Failure]) -> list[tuple[str, str | None, bool]]:
    return [
        ("found", r.url, False) if isinstance(r, Found) else (r.reason, r.detail, r.fatal) for r in results
    ]


def test_the_fixture_is_what_make_warc_writes() -> None:
    out = io.BytesIO()
    make_warc.write(out)
    assert out.getvalue() == WARC.read_bytes()
    assert WARC.stat().st_size < 50_000


def test_warc_gives_its_html_and_text_pages() -> None:
    found = list(read_warc(WARC))
    assert all(isinstance(item, Found) for item in found)
    news, statement, story, note = found
    # chunked and gzip-encoded; the URL normalised (the tracking parameter dropped)
    assert news.url == "https://gazette.example/local/library-study-rooms"
    assert news.platform == "gazette.example"
    assert "four study rooms open until midnight" in news.text
    assert "Home" not in news.text  # the page's main text, not its navigation
    assert news.published_at == datetime(2024, 5, 2, 8, 30, tzinfo=UTC)  # the page's date, not the capture's
    assert news.metadata == {
        "title": "Harbour Town library opens late-night study rooms",
        "warc_date": "2024-05-06T07:08:09Z",
        "warc_record_id": "<urn:uuid:00000000-0000-4000-8000-000000000002>",
    }
    assert (statement.url, statement.published_at) == ("https://kestrel.example/verklaring", None)
    assert "roept alle sympathisanten op" in statement.text
    # text/plain in windows-1252, as its header says
    assert story.url == "http://exit-help.example/verhaal.txt"
    assert story.text.startswith("Waarom ik de Kestrel Column verliet") and "Café De Haven" in story.text
    assert story.metadata["warc_record_id"] == "<urn:uuid:00000000-0000-4000-8000-000000000004>"
    # a resource record; request, metadata, revisit, 404, image and DNS records are skipped
    assert (note.url, note.platform) == ("https://forum.example/board/notes", "forum.example")


def test_an_uncompressed_warc_gives_the_same_pages(tmp_path: Path) -> None:
    out = io.BytesIO()
    make_warc.write(out, compressed=False)
    path = _write(tmp_path, out.getvalue(), "capture.warc")
    assert list(read_warc(path)) == list(read_warc(WARC))


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_a_cut_short_warc_gives_what_it_holds_then_a_fatal_failure(
    tmp_path: Path, compressed: bool, fraction: float
) -> None:
    out = io.BytesIO()
    make_warc.write(out, compressed=compressed)
    whole = out.getvalue()
    path = _write(tmp_path, whole[: int(len(whole) * fraction)], "cut.warc.gz" if compressed else "cut.warc")
    *found, failure = read_warc(path)
    assert isinstance(failure, Failure) and failure.fatal and failure.reason == "read_error", failure
    assert found == list(read_warc(WARC))[: len(found)]


def test_a_corrupt_member_ends_the_file_after_the_records_before_it(tmp_path: Path) -> None:
    data = bytearray(WARC.read_bytes())
    data[1_700:1_800] = bytes(100)  # inside the fourth record's gzip member
    *found, failure = read_warc(_write(tmp_path, bytes(data), "corrupt.warc.gz"))
    assert [item.url for item in found] == ["https://gazette.example/local/library-study-rooms"]
    assert isinstance(failure, Failure) and failure.fatal


@pytest.mark.parametrize(
    "content",
    [
        b"hello world\nthis is not a WARC file\n",
        bytes(range(256)) * 4,
        b'{"messages": []}',
        gzip.compress(b"not a WARC either\n" * 10),
    ],
)
def test_a_file_that_is_no_warc_is_one_fatal_failure(tmp_path: Path, content: bytes) -> None:
    failure = _fatal(list(read_warc(_write(tmp_path, content, "x.warc.gz"))))
    assert failure.reason == "invalid_content"
    assert len(failure.detail) <= 300


def test_a_warc_gzipped_whole_is_refused_with_the_reason(tmp_path: Path) -> None:
    out = io.BytesIO()
    make_warc.write(out, compressed=False)
    *_, failure = read_warc(_write(tmp_path, gzip.compress(out.getvalue()), "whole.warc.gz"))
    assert isinstance(failure, Failure) and failure.fatal
    assert "non-chunked gzip" in failure.detail


def test_a_missing_warc_or_a_folder_is_a_read_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.warc.gz", tmp_path):
        assert _fatal(list(read_warc(path))).reason == "read_error"


def test_an_empty_file_holds_nothing(tmp_path: Path) -> None:
    assert list(read_warc(_write(tmp_path, b"", "empty.warc"))) == []


PAGE = "<html><body><article><p>" + "A quiet week at the harbour market, with fresh fish and bread. " * 8
PAGE += "</p></article></body></html>"


def test_a_record_over_the_cap_is_a_failure_and_reading_goes_on(tmp_path: Path) -> None:
    html = [("Content-Type", "text/html; charset=utf-8")]
    bomb = gzip.compress(bytes(64 * 2**20))  # 64 MiB of zeros in 64 KiB
    path = _records(
        tmp_path,
        ("https://big.example/page", PAGE.encode() * 10, html),
        ("https://bomb.example/page", bomb, [*html, ("Content-Encoding", "gzip")]),
        ("https://small.example/page", PAGE.encode(), html),
    )
    results = list(read_warc(path, max_record_bytes=4_096))
    assert _summary(results)[:2] == [
        ("too_large", "https://big.example/page: payload over 4096 bytes", False),
        ("too_large", "https://bomb.example/page: payload over 4096 bytes", False),
    ]
    assert isinstance(results[2], Found) and results[2].url == "https://small.example/page"
    assert len(results) == 3


def test_records_without_a_page_are_skipped(tmp_path: Path) -> None:
    path = _records(
        tmp_path,
        ("https://a.example/empty", b"<html><body></body></html>", [("Content-Type", "text/html")]),
        ("https://a.example/blank", b"  \n\t ", [("Content-Type", "text/plain")]),
        ("https://a.example/data", b'{"a": 1}', [("Content-Type", "application/json")]),
        ("https://a.example/none", b"text without a type", []),
        ("https://a.example/text", b"Plain words.", [("Content-Type", "TEXT/PLAIN; Charset=rot13")]),
    )
    results = list(read_warc(path))
    assert _summary(results) == [("found", "https://a.example/text", False)]
    assert results[0].text == "Plain words."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        ("Zürich café".encode(), "text/plain", "Zürich café"),
        ("Zürich café".encode("windows-1252"), "text/plain", "Zürich café"),
        ("Zürich café".encode("utf-16"), "text/plain", "Zürich café"),
        ("Zürich café".encode("iso-8859-1"), "text/plain; charset=x-no-such-charset", "Zürich café"),
        ("Zürich café".encode(), 'text/plain; charset="utf-8"', "Zürich café"),
        ("مرحبا بالعالم".encode("cp1256"), "text/plain; charset=windows-1256", "مرحبا بالعالم"),
        (b"\x80\x81 not text", "text/plain; charset=utf-8", "\ufffd\ufffd not text"),
    ],
)
def test_plain_text_is_decoded_as_its_header_says(
    tmp_path: Path, body: bytes, content_type: str, text: str
) -> None:
    (item,) = read_warc(_records(tmp_path, ("https://a.example/t", body, [("Content-Type", content_type)])))
    assert isinstance(item, Found) and item.text == text


def test_a_record_with_a_length_that_is_no_number_ends_the_file(tmp_path: Path) -> None:
    out = io.BytesIO()
    make_warc.write(out, compressed=False)
    data = out.getvalue().replace(b"Content-Length: 432\r\n", b"Content-Length: x32\r\n")
    *found, failure = read_warc(_write(tmp_path, data, "bad.warc"))
    assert len(found) == 2
    assert isinstance(failure, Failure) and failure.fatal
