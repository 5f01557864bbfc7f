"""The file connectors (streams/sources/exports.py, streams/sources/warc.py) on their fixtures, and
on hostile files built here: every problem a Failure, never an exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.sources.base import Failure, Found
from streams.sources.exports import read_discord_export, read_telegram_export, telegram_username

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sources"
TELEGRAM = FIXTURES / "telegram" / "result.json"
DISCORD = FIXTURES / "discord" / "export.json"


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


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
MESSAGE_KEYS = [
    "id",
    "type",
    "text",
    "content",
    "date",
    "date_unixtime",
    "timestamp",
    "from",
    "author",
    "embeds",
]
MESSAGES = st.lists(
    st.dictionaries(st.sampled_from(MESSAGE_KEYS), JSON_VALUES | st.sampled_from(["message", "Default", "1"]))
    | JSON_VALUES,
    max_size=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=MESSAGES, guild=JSON_VALUES)
def test_any_json_gives_found_items_or_failures(tmp_path: Path, messages: list[Any], guild: Any) -> None:
    export = {**_discord(messages), "guild": {"id": "1"} if guild is None else guild}
    path = _write(tmp_path, export)
    for reader in READERS.values():
        for result in reader(path):
            assert isinstance(result, Found | Failure)
            if isinstance(result, Found):
                assert isinstance(result.text, str) and result.text.strip()
                assert all(isinstance(v, str) for v in result.metadata.values())
