"""Channel exports: Telegram Desktop's JSON export of one channel or group (``result.json``), and
DiscordChatExporter's JSON export of one channel. Each message with text becomes a
:class:`~streams.sources.base.Found`, with its permalink when one can be built.

An export is a file an adversary may have shaped (a channel's admins write its messages, and the
file passes through hands): it is read within a size cap, parsed by :mod:`streams.safejson`
(bounded nesting and numbers), and checked field by field. A file that is not an export is one
fatal :class:`~streams.sources.base.Failure`; a malformed message is a Failure of its own and
reading goes on. Nothing raises. Parsing a large export takes a while: read it in a thread from
async code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from streams import safejson
from streams.safejson import NotJson, json_type
from streams.sources.base import Failure, Found
from streams.sources.files import detail, read_bounded

MAX_EXPORT_BYTES = 64 * 2**20
"""The default cap on an export file: parsing JSON takes several times its size in memory."""
MAX_EMBEDS = 10
"""Discord embeds read per message (Discord itself allows 10)."""

_TELEGRAM_LINK = re.compile(
    r"(?:(?:https?://)?(?:www\.)?(?:t|telegram)\.me/(?:s/)?|@)?([A-Za-z][A-Za-z0-9_]{3,31})/?", re.ASCII
)
_SNOWFLAKE = re.compile(r"[0-9]{1,20}", re.ASCII)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


class _Malformed(ValueError):
    """A message that is not what the format says: becomes a non-fatal Failure."""


def telegram_username(channel_url: str) -> str | None:
    """The public username in a channel's address (``https://t.me/name``, ``t.me/s/name``,
    ``@name`` or ``name``), or ``None`` when it is not one. For validating configuration too."""
    match = _TELEGRAM_LINK.fullmatch(channel_url.strip()) if isinstance(channel_url, str) else None
    return match.group(1) if match else None


def read_telegram_export(
    path: str | os.PathLike[str], *, channel_url: str | None, max_bytes: int = MAX_EXPORT_BYTES
) -> Iterator[Found | Failure]:
    """The messages of a Telegram Desktop JSON export of one chat (Export chat history, JSON).

    ``channel_url`` is the channel's public address, which the export does not carry: with it each
    message gets its permalink ``https://t.me/<username>/<id>``; without it, no URL. Service
    messages (joins, pins, renames) and messages without text (a photo without caption) are
    skipped. ``published_at`` is ``date_unixtime`` (older exports have only ``date``, in the
    exporting computer's local time, read as UTC); ``author`` is the post's signature where the
    channel signs posts, else ``from``; ``metadata`` holds the chat's title, the message id and
    where a forwarded message came from.
    """
    username = None
    if channel_url is not None:
        username = telegram_username(channel_url)
        if username is None:
            yield Failure(
                "invalid_url", detail(f"not a Telegram channel address: {channel_url!r}"), fatal=True
            )
            return
    export = _load(path, max_bytes)
    if isinstance(export, Failure):
        yield export
        return
    title = export.get("name")
    metadata = {"channel": title} if isinstance(title, str) and title else {}
    url = None if username is None else f"https://t.me/{username}/{{}}"
    yield from _each(export["messages"], lambda message: _telegram(message, url, metadata))


def read_discord_export(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_EXPORT_BYTES
) -> Iterator[Found | Failure]:
    """The messages of a DiscordChatExporter JSON export of one channel.

    Each message of type ``Default`` or ``Reply`` with text (its content, and the titles and
    descriptions of its embeds) becomes an item with the permalink
    ``https://discord.com/channels/<guild>/<channel>/<message>`` (``@me`` for a direct message's
    guild); system messages (joins, pins, calls) are skipped. ``author`` is the account's user name;
    ``metadata`` holds the server's, the category's and the channel's names and the message id.
    """
    export = _load(path, max_bytes)
    if isinstance(export, Failure):
        yield export
        return
    guild, channel = export.get("guild"), export.get("channel")
    if not isinstance(guild, dict) or not isinstance(channel, dict):
        yield Failure(
            "invalid_content", "not a DiscordChatExporter export: no guild or channel object", fatal=True
        )
        return
    guild_id, channel_id = guild.get("id"), channel.get("id")
    if not _is_snowflake(guild_id) or not _is_snowflake(channel_id):
        yield Failure("invalid_content", "the guild's or the channel's id is not a Discord id", fatal=True)
        return
    metadata = {
        key: value
        for key, value in (
            ("guild", guild.get("name")),
            ("category", channel.get("category")),
            ("channel", channel.get("name")),
        )
        if isinstance(value, str) and value
    }
    url = f"https://discord.com/channels/{'@me' if guild_id == '0' else guild_id}/{channel_id}/{{}}"
    yield from _each(export["messages"], lambda message: _discord(message, url, metadata))


def _load(path: str | os.PathLike[str], max_bytes: int) -> dict[str, Any] | Failure:
    """The export's top-level object, with its ``messages`` array, or a fatal Failure."""
    raw = read_bounded(path, max_bytes)
    if isinstance(raw, Failure):
        return raw
    export = safejson.parse(raw)
    if isinstance(export, NotJson):
        return Failure("invalid_content", detail(export.message), fatal=True)
    if not isinstance(export, dict):
        return Failure(
            "invalid_content", f"a JSON {json_type(export)}, expected an export object", fatal=True
        )
    if not isinstance(export.get("messages"), list):
        return Failure("invalid_content", "not an export of one chat: no 'messages' array", fatal=True)
    return export


def _each(messages: list[Any], read: Callable[[dict[str, Any]], Found | None]) -> Iterator[Found | Failure]:
    """Each message read, a malformed one as a non-fatal Failure."""
    for index, message in enumerate(messages):
        where = f"message {index}"
        try:
            if not isinstance(message, dict):
                raise _Malformed(f"a JSON {json_type(message)}, expected an object")
            if safejson.lone_surrogate(message):
                raise _Malformed("an unpaired UTF-16 surrogate, which is not text")
            found = read(message)
        except _Malformed as exc:
            yield Failure("invalid_content", detail(f"{where}: {exc}"))
        except Exception as exc:  # a message must never stop its export
            yield Failure("invalid_content", detail(f"{where}: {type(exc).__name__}: {exc}"))
        else:
            if found is not None:
                yield found


def _telegram(message: dict[str, Any], url: str | None, metadata: dict[str, str]) -> Found | None:
    kind = message.get("type")
    if not isinstance(kind, str):
        raise _Malformed(f"'type' is a {json_type(kind)}")
    if kind != "message":
        return None
    message_id = message.get("id")
    if not _is_id(message_id):
        raise _Malformed(f"'id' is not a message id: a {json_type(message_id)}")
    text = _telegram_text(message.get("text")).strip()
    if not text:
        return None
    signature, sender = message.get("author"), message.get("from")
    author = next((name for name in (signature, sender) if isinstance(name, str) and name), None)
    extra = {"message_id": str(message_id)}
    forwarded = message.get("forwarded_from")
    if isinstance(forwarded, str) and forwarded:
        extra["forwarded_from"] = forwarded
    return Found(
        text=text,
        url=None if url is None else url.format(message_id),
        platform="telegram",
        published_at=_telegram_date(message),
        author=author,
        metadata={**metadata, **extra},
    )


def _telegram_text(text: Any) -> str:
    """A message's text: a string, or a list of strings and entity objects (``{"type": "bold",
    "text": "..."}``, links with an ``href`` beside their text) that together make it; none when
    absent."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    if not isinstance(text, list):
        raise _Malformed(f"'text' is a {json_type(text)}")
    parts = []
    for number, part in enumerate(text):
        if isinstance(part, dict):
            part = part.get("text")
        if not isinstance(part, str):
            raise _Malformed(f"'text' part {number} is a {json_type(part)}, expected a string or an entity")
        parts.append(part)
    return "".join(parts)


def _telegram_date(message: dict[str, Any]) -> datetime | None:
    unix = message.get("date_unixtime")
    if isinstance(unix, str) and unix.isascii() and unix.isdigit() and len(unix) <= 12:
        unix = int(unix)
    if isinstance(unix, int) and not isinstance(unix, bool) and 0 < unix < _LATEST:
        return datetime.fromtimestamp(unix, UTC)
    return _iso_date(message.get("date"))


def _discord(message: dict[str, Any], url: str, metadata: dict[str, str]) -> Found | None:
    kind = message.get("type")
    if not isinstance(kind, str):
        raise _Malformed(f"'type' is a {json_type(kind)}")
    if kind not in ("Default", "Reply"):
        return None
    message_id = message.get("id")
    if not _is_snowflake(message_id):
        raise _Malformed(f"'id' is not a Discord id: a {json_type(message_id)}")
    content = message.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise _Malformed(f"'content' is a {json_type(content)}")
    text = "\n\n".join(part for part in (content.strip(), *_embed_texts(message.get("embeds"))) if part)
    if not text:
        return None
    return Found(
        text=text,
        url=url.format(message_id),
        platform="discord",
        published_at=_iso_date(message.get("timestamp")),
        author=_discord_author(message.get("author")),
        metadata={**metadata, "message_id": message_id},
    )


def _embed_texts(embeds: Any) -> list[str]:
    """The titles and descriptions of a message's embeds (what a bot's post or a link preview
    shows), in order."""
    if embeds is None:
        return []
    if not isinstance(embeds, list):
        raise _Malformed(f"'embeds' is a {json_type(embeds)}")
    texts = []
    for embed in embeds[:MAX_EMBEDS]:
        if not isinstance(embed, dict):
            raise _Malformed(f"an embed is a {json_type(embed)}")
        texts += [
            value.strip()
            for value in (embed.get("title"), embed.get("description"))
            if isinstance(value, str)
        ]
    return [text for text in texts if text]


def _discord_author(author: Any) -> str | None:
    if not isinstance(author, dict):
        return None
    name, discriminator = author.get("name"), author.get("discriminator")
    if not isinstance(name, str) or not name:
        return None
    # Accounts from before Discord's unique user names (2023) are name#1234; theirs now "0000".
    if isinstance(discriminator, str) and discriminator not in ("", "0", "0000"):
        return f"{name}#{discriminator}"
    return name


def _iso_date(value: Any) -> datetime | None:
    """An ISO 8601 date and time, as UTC when it names no offset; ``None`` when it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _is_snowflake(value: Any) -> bool:
    return isinstance(value, str) and _SNOWFLAKE.fullmatch(value) is not None
