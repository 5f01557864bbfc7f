"""Web pages, from a list of URLs (:func:`read_urls`) or a sitemap (:func:`read_sitemap`), each
fetched through the polite :class:`Fetcher` and its main text extracted (:func:`extract_page`).

Sitemaps (sitemaps.org: a ``<urlset>`` of pages, or a ``<sitemapindex>`` of sitemaps, either of
them gzipped or not) are parsed with lxml's XML parser set up not to expand entities, not to read
a DTD and not to touch the network (``resolve_entities=False, load_dtd=False, no_network=True``,
and no ``huge_tree``): an external entity is never read, an internal one never expanded (a
``<loc>`` holding an entity reference is skipped), and libxml2 refuses a document whose entities
would amplify it. Depth and counts are bounded: :data:`MAX_SITEMAP_DEPTH`,
:data:`MAX_SITEMAPS`, and ``max_pages``."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

from lxml import etree

from streams.sources.base import Failure, Found
from streams.sources.extract import MAX_HTML_BYTES, extract_page
from streams.sources.fetch import Fetched, Fetcher, NotModified, gunzip
from streams.sources.parsing import IN_THREAD, Parsing
from streams.sources.urls import normalise_url

log = logging.getLogger(__name__)

PAGE_TYPES = frozenset(("text/html", "application/xhtml+xml"))
"""Content types read as pages; a response without one is tried too."""
MAX_SITEMAP_DEPTH = 3
"""A sitemap index may name indexes, down to this many levels below the sitemap given."""
MAX_SITEMAPS = 100
"""Most sitemap files read in one pass of a source."""


async def read_urls(
    fetcher: Fetcher, urls: Iterable[str], *, source: str, parsing: Parsing = IN_THREAD
) -> AsyncIterator[Found | Failure]:
    """Each page of ``urls`` as :class:`Found`, or the :class:`Failure` of it (never fatal: one
    page does not stop the list). A page unchanged since the last pass (304) gives nothing.
    ``parsing``: where the pages are extracted (:mod:`streams.sources.parsing`)."""
    for url in urls:
        fetched = await fetcher.get(url, source=source)
        if isinstance(fetched, NotModified):
            continue
        yield await page_found(fetched, source=source, parsing=parsing)


async def page_found(
    fetched: Fetched | Failure, *, source: str, parsing: Parsing = IN_THREAD
) -> Found | Failure:
    """A fetched page's main text, or why there is none (``invalid_content``: not HTML, or no
    main text; ``too_large``: over what :func:`extract_page` reads; ``timeout``: extraction took
    longer than ``parsing`` allows). Decoded with the response's charset when it names a text
    encoding Python knows; else trafilatura reads the page's own ``<meta charset>``."""
    if isinstance(fetched, Failure):
        return fetched
    if fetched.content_type is not None and fetched.content_type not in PAGE_TYPES:
        return Failure("invalid_content", f"not a web page: {fetched.content_type[:80]}", url=fetched.url)
    if len(fetched.body) > MAX_HTML_BYTES:
        return Failure("too_large", f"page over the {MAX_HTML_BYTES} bytes extracted", url=fetched.url)
    found = await parsing.run(extract_page, _decoded(fetched.body, fetched.charset), fetched.url)
    if isinstance(found, Failure):
        return replace(found, url=fetched.url)
    if found is None:
        return Failure("invalid_content", "no main text found in the page", url=fetched.url)
    return replace(found, metadata={**found.metadata, "source": source})


async def read_sitemap(
    fetcher: Fetcher, url: str, *, source: str, max_pages: int, parsing: Parsing = IN_THREAD
) -> AsyncIterator[Found | Failure]:
    """The pages the sitemap at ``url`` lists (following a sitemap index), at most ``max_pages``
    of them, as :func:`read_urls` gives them. The sitemap at ``url`` unreadable: one fatal
    :class:`Failure`; a sitemap it names unreadable: a failure that is not fatal."""
    pages: list[str] = []
    seen_pages: set[str] = set()
    seen_sitemaps: set[str] = {normalise_url(url) or url}
    queue: deque[tuple[str, int]] = deque([(url, 0)])
    read = 0
    while queue and len(pages) < max_pages and read < MAX_SITEMAPS:
        sitemap_url, depth = queue.popleft()
        read += 1
        listed = await _read_one_sitemap(fetcher, sitemap_url, source=source, parsing=parsing)
        if isinstance(listed, Failure):
            yield replace(listed, fatal=depth == 0)
            if depth == 0:
                return
            continue
        if listed is None:  # unchanged since the last pass
            continue
        kind, locs = listed
        for loc in locs:
            key = normalise_url(loc)
            if key is None:
                continue
            if kind == "sitemapindex":
                if depth < MAX_SITEMAP_DEPTH and key not in seen_sitemaps:
                    seen_sitemaps.add(key)
                    queue.append((loc, depth + 1))
            elif key not in seen_pages and len(pages) < max_pages:
                seen_pages.add(key)
                pages.append(loc)
    async for item in read_urls(fetcher, pages, source=source, parsing=parsing):
        yield item


async def _read_one_sitemap(
    fetcher: Fetcher, url: str, *, source: str, parsing: Parsing
) -> tuple[str, list[str]] | Failure | None:
    fetched = await fetcher.get(url, source=source)
    if isinstance(fetched, Failure):
        return fetched
    if isinstance(fetched, NotModified):
        return None
    body = fetched.body
    if body[:2] == b"\x1f\x8b":  # sitemap.xml.gz, served as a file rather than gzip-encoded
        inflated = gunzip(body, fetcher.policy.max_bytes)
        if isinstance(inflated, Failure):
            return replace(inflated, url=fetched.url)
        body = inflated
    parsed = await parsing.run(parse_sitemap, body, fetched.url)
    return replace(parsed, url=parsed.url or fetched.url) if isinstance(parsed, Failure) else parsed


def parse_sitemap(body: bytes, url: str) -> tuple[str, list[str]] | Failure:
    """The kind (``urlset`` or ``sitemapindex``) and the ``<loc>`` URLs of a sitemap document,
    or an ``invalid_content`` failure. Safe on hostile XML (see the module's docstring)."""
    parser = etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return Failure("invalid_content", f"not XML: {exc}"[:300], url=url)
    kind = etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        return Failure("invalid_content", f"not a sitemap: root element {kind[:50]!r}", url=url)
    entry_name = "url" if kind == "urlset" else "sitemap"
    locs = []
    for entry in root:
        if not isinstance(entry.tag, str) or etree.QName(entry).localname != entry_name:
            continue
        for loc in entry:
            if isinstance(loc.tag, str) and etree.QName(loc).localname == "loc" and len(loc) == 0:
                locs.append((loc.text or "").strip())
    return kind, locs


def _decoded(body: bytes, charset: str | None) -> bytes | str:
    """``body`` as text in ``charset``, or as it is when that names no text encoding (a server
    may say ``charset=base64``, ``zlib_codec`` or nonsense)."""
    if not charset:
        return body
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return body
