"""RSS and Atom feeds: :func:`read_feed`, with feedparser on bytes the :class:`Fetcher` read.

A feed entry carries a title and a summary (sometimes the whole post as ``content``). With
``fetch_pages=False`` (the default) an entry's item is its title and the longer of its summary
and content: one request per poll of the feed, however many entries it has. With
``fetch_pages=True`` each entry's link is fetched too (through the same polite fetcher,
conditionally) and its item is the page's main text (:func:`extract_page`), with the entry's date
and author where the page has none: the whole article, at one more request per entry. An entry
whose page is unchanged since the last poll (304) is skipped; one whose page cannot be had is
counted as a failure and sent with its feed text."""

from __future__ import annotations

import calendar
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import feedparser

from streams.records.content import FIELD_LIMITS
from streams.sources.base import Failure, Found
from streams.sources.extract import TITLE_MAX_CHARS, clean_field, html_to_text
from streams.sources.fetch import Fetched, Fetcher, NotModified
from streams.sources.pages import page_found
from streams.sources.parsing import IN_THREAD, Parsing
from streams.sources.urls import normalise_url, platform_of

log = logging.getLogger(__name__)

HTML_TYPES = frozenset(("text/html", "application/xhtml+xml"))


async def read_feed(
    fetcher: Fetcher, url: str, *, source: str, fetch_pages: bool = False, parsing: Parsing = IN_THREAD
) -> AsyncIterator[Found | Failure]:
    """The entries of the feed at ``url`` as :class:`Found`, and what failed as :class:`Failure`
    (the feed itself: ``fatal``). Nothing when the feed has not changed since the last poll.
    ``parsing``: where feedparser (and a page's extraction) runs (:mod:`streams.sources.parsing`)."""
    fetched = await fetcher.get(url, source=source)
    if isinstance(fetched, Failure):
        yield replace(fetched, fatal=True)
        return
    if isinstance(fetched, NotModified):
        return
    entries = await parsing.run(_entries_of, fetched, source=source)
    if isinstance(entries, Failure):
        yield replace(entries, url=entries.url or fetched.url, fatal=True)
        return
    for found in entries:
        if fetch_pages and found.url is not None:
            async for item in _with_page(fetcher, found, source=source, parsing=parsing):
                yield item
        else:
            yield found


def _entries_of(fetched: Fetched, *, source: str) -> list[Found] | Failure:
    """The entries of a fetched feed (CPU-bound: run it in a thread), or the fatal
    ``invalid_content`` failure of what is not a feed: no entries and no RSS or Atom root, whether
    it is malformed or well-formed XML of another kind (an error page served as XML). A malformed
    feed that still gives entries (feedparser's "bozo") gives them, and is logged."""
    try:
        parsed = _parse(fetched)
    except Exception as exc:  # feedparser is defensive; should it still fail, the feed is unreadable
        log.warning("feedparser failed on %s: %s", fetched.url, type(exc).__name__)
        why = f"feed not parsed: {type(exc).__name__}"
        return Failure("invalid_content", why, url=fetched.url, fatal=True)
    entries = parsed.get("entries") or []
    if not entries and not parsed.get("version"):
        problem = _problem(parsed) if parsed.get("bozo") else "no RSS or Atom root element"
        return Failure("invalid_content", f"not a feed: {problem}", url=fetched.url, fatal=True)
    if parsed.get("bozo"):
        problem = _problem(parsed)
        log.info("feed %s is malformed but readable (%s): %d entries", fetched.url, problem, len(entries))
    feed = parsed.get("feed") or {}
    metadata = {"source": source}
    feed_title = clean_field(feed.get("title"), TITLE_MAX_CHARS)
    if feed_title:
        metadata["feed_title"] = feed_title
    found = (_entry_found(entry, fetched.url, metadata) for entry in entries)
    return [each for each in found if each is not None]


def _parse(fetched: Fetched) -> Any:
    """feedparser on the body, told the response's Content-Type (and so its charset: a feed in
    windows-1252 or ISO-8859-1 decodes right) and its URL (for relative links). The body goes in
    as a stream: feedparser would take a bytes string that names a file for its path."""
    content_type = fetched.content_type or "application/xml"
    if fetched.charset:
        content_type += f"; charset={fetched.charset}"
    headers = {"content-type": content_type, "content-location": fetched.url}
    return feedparser.parse(io.BytesIO(fetched.body), response_headers=headers)


def _problem(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}"[:200] if exc is not None else "unknown"


def _entry_found(entry: Any, feed_url: str, metadata: dict[str, str]) -> Found | None:
    """One entry: its title and the longer of its summary and content, as text."""
    title = clean_field(entry.get("title"), TITLE_MAX_CHARS)
    bodies = [_text_of(entry.get("summary_detail"), entry.get("summary"))]
    bodies += [_text_of(part, None) for part in entry.get("content") or []]
    body = max(bodies, key=len)
    text = "\n\n".join(part for part in (title, body) if part)
    if not text:
        return None
    link = entry.get("link")
    url = normalise_url(link) if isinstance(link, str) else None
    return Found(
        text=text,
        url=url,
        platform=platform_of(url or feed_url),
        published_at=_published_at(entry),
        author=clean_field(entry.get("author"), FIELD_LIMITS["author"]),
        metadata=dict(metadata),
    )


def _text_of(detail: Any, value: Any) -> str:
    """A summary's or content's text, its HTML stripped when it is HTML."""
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    text = detail.get("value", value) if isinstance(detail, dict) else value
    if not isinstance(text, str):
        return ""
    if kind == "text/plain":
        return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    return html_to_text(text)


def _published_at(entry: Any) -> datetime | None:
    """The entry's published (else updated) time, which feedparser gives as UTC."""
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed is None:
            continue
        try:
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            continue
    return None


async def _with_page(
    fetcher: Fetcher, found: Found, *, source: str, parsing: Parsing
) -> AsyncIterator[Found | Failure]:
    assert found.url is not None
    fetched = await fetcher.get(found.url, source=source)
    if isinstance(fetched, NotModified):
        return
    page = await page_found(fetched, source=source, parsing=parsing)
    if isinstance(page, Failure):
        yield page
        yield found
        return
    yield replace(
        page,
        published_at=page.published_at or found.published_at,
        author=page.author or found.author,
        metadata={**page.metadata, **found.metadata},
    )
