"""A web page's main text, publication date, title and author: :func:`extract_page`, with
trafilatura (main text, title, author) and htmldate (publication date). Pages are written by
adversaries: it never raises and bounds what it reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from html.parser import HTMLParser

import htmldate
import trafilatura

from streams.records.content import CONTROL_OR_BREAK, FIELD_LIMITS
from streams.sources.base import Found
from streams.sources.urls import normalise_url, platform_of

log = logging.getLogger(__name__)

MAX_HTML_BYTES = 5_000_000
"""Most bytes (or characters) of HTML :func:`extract_page` reads; a longer page is not extracted."""
TITLE_MAX_CHARS = 512
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header "
    "hr li main nav ol p pre section table td th tr ul".split()
)
"""Tags that break a line in :func:`html_to_text`."""
HIDDEN_TAGS = frozenset(("script", "style", "template", "noscript"))
"""Tags whose content is not text a reader sees."""


def clean_field(value: object, max_chars: int) -> str | None:
    """``value`` as one line of at most ``max_chars`` characters (control characters and line
    breaks become spaces, runs of white space one), or None when it is not a string or is blank."""
    if not isinstance(value, str):
        return None
    line = " ".join(CONTROL_OR_BREAK.sub(" ", value).split())
    return line[:max_chars] or None


def extract_page(html: bytes | str, url: str, *, max_bytes: int = MAX_HTML_BYTES) -> Found | None:
    """The page at ``url`` as :class:`Found`: trafilatura's main text (the page's title in
    ``metadata["title"]``, its author when trafilatura finds one), htmldate's publication date
    (timezone-aware; UTC when the page gives no offset), ``url`` normalised (:func:`normalise_url`),
    ``platform`` the URL's host. None when
    the page has no main text, is over ``max_bytes``, or cannot be parsed. Never raises.

    CPU-bound (up to a second on a large page): call it in an executor from async code."""
    if len(html) > max_bytes:
        log.info("page not extracted: %d bytes, the limit is %d: %s", len(html), max_bytes, url)
        return None
    try:
        document = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
        )
    except Exception as exc:  # a hostile page may break any parser; no page stops a source
        log.info("page not extracted: %s: %s", type(exc).__name__, url)
        return None
    if document is None or isinstance(document, dict) or not (document.text or "").strip():
        return None
    metadata: dict[str, str] = {}
    title = clean_field(document.title, TITLE_MAX_CHARS)
    if title:
        metadata["title"] = title
    return Found(
        text=document.text.strip(),
        url=normalise_url(url),
        platform=platform_of(url),
        published_at=_published_at(html, url),
        author=clean_field(document.author, FIELD_LIMITS["author"]),
        metadata=metadata,
    )


def _published_at(html: bytes | str, url: str) -> datetime | None:
    """The page's original publication date by htmldate, with its time and offset where the
    page gives them, else midnight UTC of the day; None when htmldate finds none."""
    try:
        found = htmldate.find_date(html, url=url, original_date=True, outputformat=DATE_FORMAT)
        if not found:
            return None
        published = datetime.fromisoformat(found)
    except Exception as exc:  # as above: the date is optional
        log.info("no publication date: %s: %s", type(exc).__name__, url)
        return None
    return published if published.tzinfo is not None else published.replace(tzinfo=UTC)


def html_to_text(fragment: str) -> str:
    """The text a reader sees in an HTML ``fragment`` (a feed entry's summary): tags dropped,
    character references decoded, scripts and styles left out, one line per block, white space
    collapsed. The standard library's tolerant tokenizer: no tree, no entity declarations,
    nothing fetched. Never raises (a fragment it cannot finish gives what it read so far)."""
    parser = _TextOf()
    try:
        parser.feed(fragment)
        parser.close()
    except Exception as exc:  # html.parser on hostile input: keep what was read
        log.info("HTML fragment not read whole: %s", type(exc).__name__)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN_TAGS:
            self._hidden += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
