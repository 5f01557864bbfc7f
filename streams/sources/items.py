"""A :class:`Found` becomes a content item (:class:`ContentItem`) the worker accepts, or a skip with
a counted reason. Whatever a page, feed or export put in it, the item passes
:func:`streams.records.parse_item`:

- text: lone surrogates become U+FFFD and control characters (but tab, newline and carriage
  return) a space; a text longer than ``PROPWATCH_MAX_TEXT_BYTES`` is cut at a character boundary
  (the model reads its first tokens only, and a long page is still worth classifying), and its
  whole size goes to ``metadata.text_bytes``; a text with nothing but blanks is skipped
  (``invalid_content``);
- url: the normalised URL (:func:`streams.sources.urls.normalise_url`), which is also what
  deduplicates; one that does not normalise, or is too long, is skipped (``invalid_url``);
- platform, author and metadata are cleaned and cut to their limits; ``lang`` comes from
  :func:`streams.sources.lang.detect_language`; ``published_at`` is RFC 3339 UTC;
- id: ``src:`` and the SHA-256 of the item's :class:`SentKey` (normalised URL, or source, and the
  content hash): deterministic, so an item sent again after a crash repeats its id, and the
  pipeline's outputs for it theirs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from streams.records.content import CONTROL, CONTROL_OR_BREAK, FIELD_LIMITS, LANG_TAG, SURROGATE, ContentItem
from streams.sources.base import Found
from streams.sources.lang import detect_language
from streams.sources.state import SentKey
from streams.sources.urls import normalise_url

METADATA_KEYS = 16
"""Most metadata entries an item carries from its connector (besides ``source``)."""
METADATA_KEY_CHARS = 64
METADATA_VALUE_CHARS = 1024
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Built:
    """An item ready to send, and what marks it as sent."""

    item: ContentItem
    key: SentKey


@dataclass(frozen=True)
class Skipped:
    """A found piece of content that cannot become an item: ``reason`` is one of
    :data:`streams.metrics.FETCH_ERRORS`."""

    reason: str
    detail: str


def build_item(
    found: Found, *, source: str, platform: str | None, max_text_bytes: int, observed_at: str
) -> Built | Skipped:
    """The content item of ``found``, read by ``source`` at ``observed_at`` (RFC 3339); ``platform``
    overrides the connector's."""
    text, size = _text(found.text, max_text_bytes)
    if not text.strip():
        return Skipped("invalid_content", "no text")
    norm_url = None
    if found.url is not None:
        norm_url = normalise_url(found.url)
        if norm_url is None or len(norm_url) > FIELD_LIMITS["url"] or CONTROL_OR_BREAK.search(norm_url):
            return Skipped("invalid_url", f"cannot normalise {_line(found.url, 200)!r}")
    content_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    key = SentKey.of(norm_url, source, content_sha256)
    metadata: dict[str, str] = {}
    for name, value in list(found.metadata.items())[:METADATA_KEYS]:
        metadata[_line(name, METADATA_KEY_CHARS)] = _line(value, METADATA_VALUE_CHARS)
    metadata["source"] = source
    if size > max_text_bytes:
        metadata["text_bytes"] = str(size)
    lang = detect_language(text)
    item = ContentItem(
        id=item_id(key),
        text=text,
        url=norm_url,
        platform=_line(platform or found.platform, FIELD_LIMITS["platform"]) or None,
        lang=lang
        if lang is not None and len(lang) <= FIELD_LIMITS["lang"] and LANG_TAG.fullmatch(lang)
        else None,
        author=_line(found.author, FIELD_LIMITS["author"]) or None if found.author is not None else None,
        observed_at=observed_at,
        published_at=_rfc3339(found.published_at),
        metadata=metadata,
    )
    return Built(item, key)


def item_id(key: SentKey) -> str:
    """The item's id: the same for the same normalised URL (or source) and content."""
    digest = hashlib.sha256(f"{key.url}\n{key.source}\n{key.content_sha256}".encode()).hexdigest()
    return f"src:{digest}"


def _text(value: str, max_bytes: int) -> tuple[str, int]:
    """The text, made valid, and cut to ``max_bytes`` in UTF-8; with its size before the cut."""
    text = CONTROL.sub(" ", SURROGATE.sub("\ufffd", value))
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text, len(encoded)
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), len(encoded)


def _line(value: str, max_chars: int) -> str:
    """One line of printable text: no control characters or line breaks, no lone surrogates, at
    most ``max_chars`` characters, spaces collapsed."""
    text = CONTROL_OR_BREAK.sub(" ", SURROGATE.sub("\ufffd", str(value)[: max_chars * 4]))
    return _SPACES.sub(" ", text).strip()[:max_chars]


def _rfc3339(moment: datetime | None) -> str | None:
    """``moment`` as RFC 3339 UTC (a naive one taken as UTC), or None if it has no UTC time."""
    if moment is None:
        return None
    try:
        utc = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return utc.isoformat(timespec="seconds").replace("+00:00", "Z")
