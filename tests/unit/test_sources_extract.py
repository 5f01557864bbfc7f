"""What the web sources make of what they fetched, without a server: URLs as dedupe keys, a
page's main text and date, a summary's text, a sitemap's URLs, a gzipped file. All of it on
hostile input too: none of these may raise."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.records.content import CONTROL_OR_BREAK, SURROGATE
from streams.sources.base import Failure
from streams.sources.extract import MAX_HTML_BYTES, clean_field, extract_page, html_to_text
from streams.sources.fetch import gunzip
from streams.sources.pages import parse_sitemap
from streams.sources.urls import normalise_url, platform_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://News.Example:80/a/b?utm_source=x&id=3&fbclid=1#top", "http://news.example/a/b?id=3"),
        ("https://news.example:443/a", "https://news.example/a"),
        ("https://news.example:8443/a", "https://news.example:8443/a"),
        ("https://user:secret@news.example/a", "https://news.example/a"),
        ("https://news.example/p?b=2&a=1", "https://news.example/p?a=1&b=2"),
        ("  https://news.example/a  ", "https://news.example/a"),
        ("http://[::1]:8080/x#y", "http://[::1]:8080/x"),
        ("ftp://files.example/a", None),
        ("javascript:alert(1)", None),
        ("mailto:desk@news.example", None),
        ("//news.example/a", None),
        ("http:///a", None),
        ("http://news.example:port/", None),
        ("http://[::1/", None),
        ("https://a b.example/", None),
        ("https://\ud800.example/", None),
        ("https://B\u00fccher.example/p", "https://b\u00fccher.example/p"),
        ("not a url", None),
        ("https://news.example/" + "a" * 5000, None),
    ],
)
def test_normalise_url(url: str, key: str | None) -> None:
    assert normalise_url(url) == key


def test_normalised_urls_are_stable() -> None:
    once = normalise_url("HTTPS://News.Example/x?utm_medium=y&q=1#f")
    assert once is not None and normalise_url(once) == once


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_normalise_url_never_raises_and_keys_are_clean(text: str) -> None:
    for url in (text, "http://news.example/" + text, "https://" + text):
        key = normalise_url(url)
        assert key is None or key.startswith(("http://", "https://"))
        assert key is None or not (CONTROL_OR_BREAK.search(key) or SURROGATE.search(key))


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://News.Example:8443/a", "news.example"),
        ("not a url", "web"),
        ("http://[::1", "web"),
        ("https://" + "a" * 70 + ".example/", "web"),
    ],
)
def test_platform_of(url: str, platform: str) -> None:
    assert platform_of(url) == platform


def test_a_page_gives_its_main_text_title_author_and_date() -> None:
    found = extract_page(
        (FIXTURES / "article.html").read_bytes(), "https://Courier.example/news/harbour?utm_source=x"
    )
    assert found is not None
    assert found.text.startswith("Harbour reopens after repairs\nThe harbour of Example Town reopened")
    assert "Home" not in found.text and "fictional newspaper" not in found.text  # nav, footer
    assert found.url == "https://courier.example/news/harbour"
    assert found.platform == "courier.example"
    assert found.published_at == datetime.fromisoformat("2024-03-05T10:20:00+01:00")
    assert found.author == "Ada Fictional"
    assert found.metadata == {"title": "Harbour reopens after repairs"}


def test_a_date_without_a_time_is_midnight_utc() -> None:
    html = (
        '<html><head><meta name="date" content="2023-07-01"></head><body><article><p>'
        + "The ferry to Example Island runs twice a day in summer and once in winter. " * 4
        + "</p></article></body></html>"
    )
    found = extract_page(html, "https://ferry.example/timetable")
    assert found is not None and found.published_at == datetime(2023, 7, 1, tzinfo=UTC)


def test_a_page_without_main_text_gives_none() -> None:
    assert extract_page((FIXTURES / "no_text.html").read_bytes(), "https://x.example/") is None


def test_a_page_over_the_limit_is_not_read() -> None:
    big = b"<html><body><p>" + b"word " * (MAX_HTML_BYTES // 5) + b"</p></body></html>"
    assert extract_page(big, "https://x.example/") is None
    assert (
        extract_page(
            b"<p>short enough to read but over the given limit</p>", "https://x.example/", max_bytes=10
        )
        is None
    )


HOSTILE_PAGES = [
    b"",
    b"\x00\x00\x00",
    b"\xff\xfe\x00<\x00h\x00t",
    b"<" * 100_000,
    b"<html><body>" + b"<div>" * 50_000 + b"deep",
    (FIXTURES / "malformed.html").read_bytes(),
    (FIXTURES / "feed_laughs.rss").read_bytes(),
    "<html><body><p>\ud800 lone surrogate</p></body></html>",
    b'<html><head><meta http-equiv="refresh" content="0; url=javascript:x"></head></html>',
]


@pytest.mark.parametrize("html", HOSTILE_PAGES, ids=range(len(HOSTILE_PAGES)))
def test_hostile_pages_never_raise(html: bytes | str) -> None:
    found = extract_page(html, "https://hostile.example/")
    assert found is None or (found.text.strip() and found.platform == "hostile.example")


def test_malformed_html_still_gives_its_text() -> None:
    found = extract_page((FIXTURES / "malformed.html").read_bytes(), "https://bay.example/log")
    assert found is not None and "fog horn could be heard across the whole bay" in found.text


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        (
            "<p>Hello &amp; <b>welcome</b></p><p>Line&nbsp;two<br/>three</p>",
            "Hello & welcome\nLine two\nthree",
        ),
        ("<script>alert(1)</script><style>p{}</style>visible", "visible"),
        ("plain &lt;text&gt;, no tags", "plain <text>, no tags"),
        ("<![if x]>a<!-- comment --><p>b", "a\nb"),
        ("<p>unclosed <b>bold <i>italic", "unclosed bold italic"),
        ("", ""),
    ],
)
def test_html_to_text(fragment: str, text: str) -> None:
    assert html_to_text(fragment) == text


@given(st.text(alphabet=st.sampled_from(list("<>/!-&;#x0a bpscript[]?='\"\x00\u202e")), max_size=200))
@settings(max_examples=300, deadline=None)
def test_html_to_text_never_raises(fragment: str) -> None:
    assert isinstance(html_to_text(fragment), str)


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("  Ada \n Fictional\x00 ", "Ada Fictional"),
        ("\x1b[31m", "[31m"),
        ("   ", None),
        (None, None),
        (7, None),
    ],
)
def test_clean_field(value: object, cleaned: str | None) -> None:
    assert clean_field(value, 512) == cleaned


def test_clean_field_bounds_its_length() -> None:
    assert clean_field("x" * 1000, 512) == "x" * 512


def test_a_sitemap_expands_no_entity_and_reads_no_file() -> None:
    kind, locs = parse_sitemap((FIXTURES / "sitemap_xxe.xml").read_bytes(), "https://xxe.example/sitemap.xml")
    assert kind == "urlset"
    assert locs == ["http://xxe.example/plain?a=1&b=2"]  # the two <loc>s holding entities are skipped


def test_an_entity_expansion_sitemap_is_invalid_content() -> None:
    got = parse_sitemap((FIXTURES / "sitemap_laughs.xml").read_bytes(), "https://laughs.example/")
    assert isinstance(got, Failure) and got.reason == "invalid_content"


def test_a_sitemap_index_lists_its_sitemaps() -> None:
    body = (FIXTURES / "sitemap_index.xml").read_bytes().replace(b"{base}", b"https://courier.example")
    kind, locs = parse_sitemap(body, "https://courier.example/sitemap.xml")
    assert kind == "sitemapindex" and locs[0] == "https://courier.example/sitemap-news.xml" and len(locs) == 4


def test_gunzip_is_bounded() -> None:
    assert gunzip(gzip.compress(b"sitemap"), 100) == b"sitemap"
    too_large = gunzip(gzip.compress(bytes(10_000_000)), 1_000_000)
    assert isinstance(too_large, Failure) and too_large.reason == "too_large"
    corrupt = gunzip(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 10, 100)
    assert isinstance(corrupt, Failure) and corrupt.reason == "invalid_content"
    cut = gunzip(gzip.compress(b"sitemap " * 100)[:-12], 10_000)
    assert isinstance(cut, Failure) and cut.reason == "invalid_content"
