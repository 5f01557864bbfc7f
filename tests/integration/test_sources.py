"""``propwatch sources once`` as an operator runs it: a local web server (a feed, pages, a URL list's
targets, a sitemap, a robots.txt that disallows ``/private/``) and the bundled WARC file and channel
exports, into the content topic of the real broker, where a running worker gives every item a
verdict. A second pass sends nothing (the feed answers 304), and the disallowed path is never
requested. All offline: the sources service is allowed the loopback address its server is on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from streams.kafka.reader import read_to_end
from streams.kafka.topics import CONTENT
from streams.records import ContentItem
from tests.integration.conftest import Deployment

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sources"
ETAG = '"feed-v1"'
SUMMARY = re.compile(r"^(\S+): sent (\d+), duplicates (\d+), failures (.+)$")


def page(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f'<body><nav><a href="/">Home</a> | <a href="/news">News</a></nav>'
        f"<article><h1>{title}</h1>{body}</article><footer>A fictional site for tests.</footer></body></html>"
    )


PAGES = {
    "/pages/harbour.html": page(
        "Harbour reopens after repairs",
        "The harbour of Example Town reopened on Tuesday after repairs to the old quay took three "
        "months longer than planned.",
        "Fishermen said the new quay is wider and the cranes are faster, and the town council "
        "thanked residents for their patience during the works.",
    ),
    "/pages/library.html": page(
        "The library extends its opening hours",
        "From next month the public library of Example Town opens on Sunday afternoons, the "
        "council announced after a survey of its readers.",
        "Volunteers from the reading club will run a weekly story hour for children in the new "
        "room on the first floor.",
    ),
    "/pages/festival.html": page(
        "Folk festival returns to the market square",
        "The fictional Example Town folk festival returns to the market square this summer with "
        "three evenings of music and a craft fair.",
        "The organisers expect more visitors than last year and ask residents to come by bicycle, "
        "as parking near the square will be closed.",
    ),
}
PRIVATE = ("/private/notes.html", "/private/hidden.html")
"""Disallowed by robots.txt: named by the URL list and by the sitemap, never to be requested."""
FEED_ENTRIES = (
    ("/news/1", "Council approves the new bridge", "The council of Example Town approved the bridge."),
    (
        "/news/2",
        "Fictional group posts a threat",
        "The Black Lantern Cell says it will strike the town fair.",
    ),
    ("/news/3", "Gemeente opent nieuw zwembad", "Het nieuwe zwembad van Voorbeelddorp opent in mei."),
)


def rss(base: str, entries: tuple[tuple[str, str, str], ...] = FEED_ENTRIES) -> str:
    """A feed of ``entries`` (path, title, text), its links on ``base``."""
    items = "".join(
        f"<item><title>{title}</title><link>{base}{path}</link><description>{text}</description>"
        "<pubDate>Tue, 05 Mar 2024 09:20:00 GMT</pubDate></item>"
        for path, title, text in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Example Town Courier</title><link>{base}/</link>{items}</channel></rss>"
    )


@pytest.fixture
def site() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    base = server.url_for("/").rstrip("/")

    def feed(request: Request) -> Response:
        if request.headers.get("If-None-Match") == ETAG:
            return Response(status=304, headers={"ETag": ETAG})
        return Response(rss(base), content_type="application/rss+xml", headers={"ETag": ETAG})

    server.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    server.expect_request("/feed.xml").respond_with_handler(feed)
    for path, html in PAGES.items():
        server.expect_request(path).respond_with_data(html, content_type="text/html; charset=utf-8")
    for path in PRIVATE:
        server.expect_request(path).respond_with_data(
            page("Private", "Not for crawlers."), content_type="text/html"
        )
    server.expect_request("/sitemap.xml").respond_with_data(
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{base}/pages/festival.html</loc></url><url><loc>{base}{PRIVATE[1]}</loc></url></urlset>",
        content_type="application/xml",
    )
    yield server
    server.clear()
    server.stop()


def sources_yml(folder: Path, base: str) -> Path:
    (folder / "watchlist.txt").write_text(
        f"# watched pages\n{base}/pages/harbour.html\n{base}/pages/library.html\n{base}{PRIVATE[0]}\n"
    )
    path = folder / "SOURCES.yml"
    path.write_text(
        "unit: IRU-Test\n"
        "fetch: {per_host_delay: 0s, connect_timeout: 5s, read_timeout: 10s, allow_private_addresses: true}\n"
        "sources:\n"
        f"  - {{name: news, kind: feed, url: '{base}/feed.xml', every: 15m}}\n"
        "  - {name: watchlist, kind: urls, urls_file: watchlist.txt}\n"
        f"  - {{name: site, kind: sitemap, url: '{base}/sitemap.xml'}}\n"
        f"  - {{name: capture, kind: warc, path: '{FIXTURES / 'capture.warc.gz'}'}}\n"
        f"  - {{name: channel, kind: telegram, path: '{FIXTURES / 'telegram' / 'result.json'}',"
        " channel_url: 'https://t.me/examplechannel'}\n"
        f"  - {{name: server, kind: discord, path: '{FIXTURES / 'discord' / 'export.json'}'}}\n",
        encoding="utf-8",
    )
    return path


def run_once(deployment: Deployment, config: Path) -> dict[str, tuple[int, int, str]]:
    """``propwatch sources once``: each source's (sent, duplicates, failures) from its summary."""
    done = deployment.cli("sources", "once", str(config), timeout_s=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    summaries = {}
    for line in done.stdout.decode().splitlines():
        match = SUMMARY.match(line)
        assert match, line
        summaries[match.group(1)] = (int(match.group(2)), int(match.group(3)), match.group(4))
    return summaries


def content(deployment: Deployment) -> list[ContentItem]:
    topic = deployment.topic(CONTENT.name)
    return [ContentItem.from_json(m.value) for m in read_to_end(deployment.settings, [topic], timeout_s=30)]


def test_sources_once_reaches_verdicts_sends_nothing_twice_and_obeys_robots(
    deployment: Deployment, site: HTTPServer, tmp_path: Path
) -> None:
    deployment.start_worker()
    base = site.url_for("/").rstrip("/")
    config = sources_yml(tmp_path, base)

    first = run_once(deployment, config)
    assert set(first) == {"news", "watchlist", "site", "capture", "channel", "server"}
    assert first["news"] == (len(FEED_ENTRIES), 0, "0")
    assert first["watchlist"] == (2, 0, "robots_disallowed 1")
    assert first["site"] == (1, 0, "robots_disallowed 1")
    for name in ("capture", "channel", "server"):
        assert first[name][0] > 0 and first[name][2] == "0", (name, first[name])

    items = content(deployment)
    assert len(items) == sum(sent for sent, _, _ in first.values()) == len({i.id for i in items})
    web = {item.url for item in items if item.metadata["source"] in ("news", "watchlist", "site")}
    expected = {f"{base}{path}" for path, _, _ in FEED_ENTRIES} | {f"{base}{path}" for path in PAGES}
    assert web == expected
    assert {item.lang for item in items} >= {"en", "nl"}

    ids = {item.id for item in items}
    outputs = deployment.read_outputs(expected=0, ids=ids, timeout_s=90)
    verdicts = {r["item_id"] for name in ("referrals", "cleared", "review") for _, r in outputs[name]}
    assert ids <= verdicts, f"no verdict for {sorted(ids - verdicts)}; dead letters: {outputs['dlq']}"

    second = run_once(deployment, config)
    assert {name: sent for name, (sent, _, _) in second.items()} == dict.fromkeys(first, 0)
    assert second["news"] == (0, 0, "0"), "the feed answered 304: nothing to read again"
    assert second["watchlist"][1] == 2 and second["site"][1] == 1, "the pages were read again, and known"
    assert len(content(deployment)) == len(items), "nothing sent twice"

    requested = [request for request, _ in site.log]
    assert not [r.path for r in requested if r.path.startswith("/private/")], "robots.txt disallows it"
    feeds = [r for r in requested if r.path == "/feed.xml"]
    assert [r.headers.get("If-None-Match") for r in feeds] == [None, ETAG]
    assert all(
        r.headers["User-Agent"].startswith("propwatch/") and "IRU-Test" in r.headers["User-Agent"]
        for r in requested
    )
