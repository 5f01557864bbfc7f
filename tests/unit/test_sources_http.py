"""The web side of the sources: the polite, bounded fetcher, feeds, pages and sitemaps, against a
local HTTP server (threaded, so that a fetcher that did not keep to one request per host would
be seen overlapping), with good fixtures and hostile ones. No test asserts how long anything took."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import re
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from streams.metrics import SourcesMetrics
from streams.sources.base import Failure, Found, Validators
from streams.sources.feeds import read_feed
from streams.sources.fetch import Fetched, Fetcher, FetchPolicy, NotModified
from streams.sources.pages import MAX_SITEMAPS, read_sitemap, read_urls

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources"
UA = "propwatch-test/1.0 (+https://iru.example/contact)"
SOURCE = "test-source"


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


@pytest.fixture
def release(server: HTTPServer) -> Iterator[threading.Event]:
    """Set when the test ends, so that a handler that stalls on it lets the server stop."""
    event = threading.Event()
    yield event
    event.set()


def policy(**overrides: Any) -> FetchPolicy:
    settings: dict[str, Any] = {
        "user_agent": UA,
        "connect_timeout_s": 10.0,
        "read_timeout_s": 10.0,
        "per_host_delay_s": 0.0,
        "max_bytes": 1_000_000,
        "allow_private_addresses": True,  # the test server is on the loopback interface
    }
    return FetchPolicy(**{**settings, **overrides})


def robots(server: HTTPServer, text: str | None = None, status: int = 200) -> None:
    """Serve robots.txt: ``text``, or a 404 (no rules) when None."""
    if text is None:
        server.expect_request("/robots.txt").respond_with_data("not found", status=404)
    else:
        server.expect_request("/robots.txt").respond_with_data(text, status=status, content_type="text/plain")


def fixture(name: str, base: str = "") -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"{base}", base.encode())


def requested(server: HTTPServer) -> list[str]:
    return [request.path for request, _ in server.log]


async def collect(items: AsyncIterator[Found | Failure]) -> list[Found | Failure]:
    return [item async for item in items]


class MemoryValidators:
    """A ValidatorStore in a dict (the service's is SQLite)."""

    def __init__(self) -> None:
        self.kept: dict[str, Validators] = {}

    def validators(self, url: str) -> Validators | None:
        return self.kept.get(url)

    def remember(self, url: str, validators: Validators) -> None:
        self.kept[url] = validators


def base_of(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


# -- the fetcher ----------------------------------------------------------------------------------


async def test_a_page_comes_with_its_type_charset_validators_and_our_user_agent(
    server: HTTPServer,
) -> None:
    robots(server)
    server.expect_request("/a").respond_with_data(
        "<p>caf\u00e9</p>".encode("cp1252"),
        content_type="text/html; charset=windows-1252",
        headers={"ETag": '"v1"', "Last-Modified": "Tue, 05 Mar 2024 09:20:00 GMT"},
    )
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/a"), source=SOURCE)
    assert isinstance(got, Fetched)
    assert (got.status, got.body, got.content_type, got.charset) == (
        200,
        b"<p>caf\xe9</p>",
        "text/html",
        "windows-1252",
    )
    assert got.validators == Validators(etag='"v1"', last_modified="Tue, 05 Mar 2024 09:20:00 GMT")
    assert requested(server) == ["/robots.txt", "/a"]
    assert {request.headers["User-Agent"] for request, _ in server.log} == {UA}


async def test_conditional_requests_send_the_etag_and_get_not_modified(server: HTTPServer) -> None:
    robots(server)

    def feed(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response("<rss/>", headers={"ETag": '"v1"'}, content_type="application/rss+xml")

    server.expect_request("/feed").respond_with_handler(feed)
    store = MemoryValidators()
    metrics = SourcesMetrics(CollectorRegistry())
    url = server.url_for("/feed")
    async with Fetcher(policy(), validators=store, metrics=metrics) as fetcher:
        first = await fetcher.get(url, source=SOURCE)
        second = await fetcher.get(url, source=SOURCE)
        unconditional = await fetcher.get(url, source=SOURCE, conditional=False)
    assert isinstance(first, Fetched) and store.kept[url].etag == '"v1"'
    assert second == NotModified(url)
    assert isinstance(unconditional, Fetched)
    sent = [request.headers.get("If-None-Match") for request, _ in server.log if request.path == "/feed"]
    assert sent == [None, '"v1"', None]
    assert metrics.registry.get_sample_value("propwatch_source_not_modified_total", {"source": SOURCE}) == 1
    observed = metrics.registry.get_sample_value("propwatch_source_fetch_seconds_count", {"source": SOURCE})
    assert observed == 4  # robots.txt and three fetches of the feed


async def test_last_modified_is_sent_back_as_if_modified_since(server: HTTPServer) -> None:
    robots(server)
    stamp = "Tue, 05 Mar 2024 09:20:00 GMT"

    def page(request: Request) -> Response:
        if request.headers.get("If-Modified-Since") == stamp:
            return Response(status=304)
        return Response("<p>x</p>", headers={"Last-Modified": stamp}, content_type="text/html")

    server.expect_request("/page").respond_with_handler(page)
    async with Fetcher(policy(), validators=MemoryValidators()) as fetcher:
        await fetcher.get(server.url_for("/page"), source=SOURCE)
        again = await fetcher.get(server.url_for("/page"), source=SOURCE)
    assert isinstance(again, NotModified)


async def test_a_disallowed_path_is_never_requested_and_robots_txt_is_read_once(server: HTTPServer) -> None:
    robots(server, "User-agent: *\nDisallow: /private\n")
    server.expect_request("/public").respond_with_data("ok", content_type="text/html")
    async with Fetcher(policy()) as fetcher:
        denied = await fetcher.get(server.url_for("/private/notes"), source=SOURCE)
        allowed = await fetcher.get(server.url_for("/public"), source=SOURCE)
    assert isinstance(denied, Failure) and denied.reason == "robots_disallowed" and not denied.fatal
    assert isinstance(allowed, Fetched)
    assert requested(server) == ["/robots.txt", "/public"]


async def test_robots_txt_rules_for_our_user_agent_apply(server: HTTPServer) -> None:
    robots(server, "User-agent: propwatch-test\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/anything"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "robots_disallowed"
    assert requested(server) == ["/robots.txt"]


async def test_a_robots_txt_answering_5xx_disallows_all_with_its_reason(
    server: HTTPServer,
) -> None:
    robots(server, "down", status=503)
    async with Fetcher(policy()) as fetcher:
        first = await fetcher.get(server.url_for("/a"), source=SOURCE)
        second = await fetcher.get(server.url_for("/b"), source=SOURCE)
    for got in (first, second):
        assert isinstance(got, Failure) and got.reason == "http_status" and "robots.txt" in got.detail
    assert requested(server) == ["/robots.txt"]  # kept: not asked again at once


async def test_a_redirect_to_a_disallowed_path_is_not_followed(server: HTTPServer) -> None:
    robots(server, "User-agent: *\nDisallow: /private\n")
    server.expect_request("/go").respond_with_data("", status=302, headers={"Location": "/private/x"})
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/go"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "robots_disallowed"
    assert "/private/x" not in requested(server)


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://files.example/x", "gopher://old.example/", "data:text/html,hi"]
)
async def test_a_redirect_to_another_scheme_is_refused(server: HTTPServer, location: str) -> None:
    robots(server)
    server.expect_request("/go").respond_with_data("", status=301, headers={"Location": location})
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/go"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "invalid_url"
    assert requested(server) == ["/robots.txt", "/go"]


async def test_redirects_are_followed_and_the_final_url_is_given(server: HTTPServer) -> None:
    robots(server)
    server.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/middle"})
    server.expect_request("/middle").respond_with_data("", status=307, headers={"Location": "/new"})
    server.expect_request("/new").respond_with_data("here", content_type="text/plain")
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/old"), source=SOURCE)
    assert isinstance(got, Fetched) and got.url == server.url_for("/new") and got.body == b"here"


async def test_an_endless_redirect_chain_stops_at_the_limit(server: HTTPServer) -> None:
    robots(server)

    def onwards(request: Request) -> Response:
        step = int(request.path.rsplit("/", 1)[1])
        return Response(status=302, headers={"Location": f"/loop/{step + 1}"})

    server.expect_request(re.compile(r"/loop/\d+")).respond_with_handler(onwards)
    async with Fetcher(policy(max_redirects=4)) as fetcher:
        got = await fetcher.get(server.url_for("/loop/0"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "too_many_redirects"
    assert requested(server) == ["/robots.txt"] + [f"/loop/{step}" for step in range(5)]


async def test_a_server_that_does_not_answer_times_out(server: HTTPServer, release: threading.Event) -> None:
    robots(server)

    def stall(request: Request) -> Response:
        release.wait(30)
        return Response("late")

    server.expect_request("/slow").respond_with_handler(stall)
    async with Fetcher(policy(read_timeout_s=0.2)) as fetcher:
        got = await fetcher.get(server.url_for("/slow"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "timeout"


async def test_a_server_that_trickles_is_cut_off(server: HTTPServer, release: threading.Event) -> None:
    robots(server)

    def trickle(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            while not release.is_set():
                yield b"x"
                release.wait(0.02)

        return Response(body(), content_type="text/html")

    server.expect_request("/trickle").respond_with_handler(trickle)
    async with Fetcher(policy(read_timeout_s=10.0, total_timeout_s=0.5)) as fetcher:
        got = await fetcher.get(server.url_for("/trickle"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "timeout"


async def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(f"http://127.0.0.1:{port}/feed", source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "connect_error"


async def test_an_error_status_is_a_failure_with_it(server: HTTPServer) -> None:
    robots(server)
    server.expect_request("/gone").respond_with_data("gone", status=410)
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/gone"), source=SOURCE)
    assert isinstance(got, Failure) and (got.reason, got.detail) == ("http_status", "HTTP 410")


@pytest.mark.parametrize("url", ["", "not a url", "ftp://files.example/x", "mailto:a@b.example", "http://"])
async def test_what_is_not_an_http_url_is_refused_without_a_request(url: str) -> None:
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(url, source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "invalid_url"


def gzip_bomb(mebibytes: int) -> bytes:
    """A valid gzip file of ``mebibytes`` MiB of zeros, built from one compressed MiB repeated
    (a full flush makes each copy stand alone), so that making it is cheap: ~1 KiB a MiB."""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    one = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + one * mebibytes + end + struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)


def test_the_gzip_bomb_is_a_gzip_file() -> None:
    assert gzip.decompress(gzip_bomb(3)) == bytes(3 << 20)


async def serve_bomb(bomb: bytes, *, chunked: bool, sent: list[int]) -> asyncio.Server:
    """A minimal HTTP server in this event loop that answers robots.txt with 404 and anything
    else with ``bomb``, gzip-encoded, 16 KiB at a time; ``sent`` gets the bytes it handed the
    socket. (pytest-httpserver's werkzeug reads 10 MB at a time after each request, which would
    drown the fetcher's own memory in the measurement.)"""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            if request.split(b" ", 2)[1] == b"/robots.txt":
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(bomb)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n")
            writer.write(framing + b"\r\nConnection: close\r\n\r\n")
            for start in range(0, len(bomb), 16_384):
                piece = bomb[start : start + 16_384]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
                sent.append(len(piece))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the fetcher hung up: what it should do
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_gzip_bomb_stops_at_the_cap_in_bounded_memory(chunked: bool) -> None:
    bomb = gzip_bomb(1100)  # 1.1 MB that inflate to 1.07 GiB
    sent: list[int] = []
    cap = 2_000_000
    async with await serve_bomb(bomb, chunked=chunked, sent=sent) as bomber:
        port = bomber.sockets[0].getsockname()[1]
        async with Fetcher(policy(max_bytes=cap)) as fetcher:
            tracemalloc.start()
            try:
                got = await fetcher.get(f"http://127.0.0.1:{port}/bomb", source=SOURCE)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert isinstance(got, Failure) and got.reason == "too_large"
    # In memory at once: the body up to one inflated step (64 KiB) over the cap, a network read
    # and, on a first fetch, the modules' first allocations (measured: 2.7 to 4.1 MB): not the
    # GiB the stream inflates to, nor the 64 MiB one network read of it would inflate to at once.
    assert peak < 2 * cap + (1 << 20), peak


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_a_deflate_bomb_is_stopped_too(server: HTTPServer, wbits: int) -> None:
    robots(server)
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    bomb = compressor.compress(bytes(50 << 20)) + compressor.flush()
    server.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "deflate"})
    async with Fetcher(policy(max_bytes=1_000_000)) as fetcher:
        got = await fetcher.get(server.url_for("/bomb"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "too_large"


async def test_compressed_bodies_under_the_cap_are_decoded(server: HTTPServer) -> None:
    robots(server)
    text = b"<p>Example Bay ferry timetable</p>" * 100
    two_members = gzip.compress(text[:1000]) + gzip.compress(text[1000:])
    server.expect_request("/gz").respond_with_data(two_members, headers={"Content-Encoding": "gzip"})
    server.expect_request("/deflate").respond_with_data(
        zlib.compress(text), headers={"Content-Encoding": "deflate"}
    )
    async with Fetcher(policy()) as fetcher:
        for path in ("/gz", "/deflate"):
            got = await fetcher.get(server.url_for(path), source=SOURCE)
            assert isinstance(got, Fetched) and got.body == text
    assert all(request.headers["Accept-Encoding"] == "gzip, deflate" for request, _ in server.log)


async def test_a_content_length_over_the_cap_is_refused_before_reading(server: HTTPServer) -> None:
    robots(server)
    server.expect_request("/big").respond_with_data(b"x" * 2_000_000, content_type="text/html")
    server.expect_request("/big-chunked").respond_with_handler(
        lambda request: Response(iter([b"x" * 600_000] * 4), content_type="text/html")
    )
    async with Fetcher(policy(max_bytes=1_000_000)) as fetcher:
        declared = await fetcher.get(server.url_for("/big"), source=SOURCE)
        streamed = await fetcher.get(server.url_for("/big-chunked"), source=SOURCE)
    assert isinstance(declared, Failure) and declared.reason == "too_large"
    assert "Content-Length" in declared.detail
    assert isinstance(streamed, Failure) and streamed.reason == "too_large"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("br", b"\x0b\x02\x80hello\x03"),
        ("gzip, gzip", b""),
        ("gzip", gzip.compress(b"x")[:10] + b"\xff" * 20),  # an invalid block
        ("gzip", gzip.compress(b"Example Bay " * 100)[:-12]),  # cut off
        ("deflate", b"not deflate at all"),
    ],
)
async def test_unknown_or_corrupt_encodings_are_invalid_content(
    server: HTTPServer, encoding: str, body: bytes
) -> None:
    robots(server)
    server.expect_request("/x").respond_with_data(body, headers={"Content-Encoding": encoding})
    async with Fetcher(policy()) as fetcher:
        got = await fetcher.get(server.url_for("/x"), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "invalid_content"


async def test_one_request_at_a_time_per_host(server: HTTPServer) -> None:
    robots(server)
    spans: list[tuple[str, float, float]] = []

    def slow(request: Request) -> Response:
        start = time.monotonic()
        time.sleep(0.2)  # room for a second request to overlap, were it sent
        spans.append((request.path, start, time.monotonic()))
        return Response("ok", content_type="text/plain")

    for path in ("/one", "/two", "/three"):
        server.expect_request(path).respond_with_handler(slow)
    async with Fetcher(policy()) as fetcher:
        got = await asyncio.gather(
            *(fetcher.get(server.url_for(path), source=SOURCE) for path in ("/one", "/two", "/three"))
        )
    assert all(isinstance(each, Fetched) for each in got)
    spans.sort(key=lambda span: span[1])
    for (_, _, end), (_, next_start, _) in itertools.pairwise(spans):
        assert end <= next_start  # the server saw each request end before the next began


async def test_the_per_host_delay_separates_requests(server: HTTPServer) -> None:
    robots(server)
    starts: list[float] = []
    ends: list[float] = []

    def page(request: Request) -> Response:
        starts.append(time.monotonic())
        ends.append(time.monotonic())
        return Response("ok", content_type="text/plain")

    server.expect_request("/a").respond_with_handler(page)
    server.expect_request("/b").respond_with_handler(page)
    async with Fetcher(policy(per_host_delay_s=0.3)) as fetcher:
        await asyncio.gather(
            fetcher.get(server.url_for("/a"), source=SOURCE), fetcher.get(server.url_for("/b"), source=SOURCE)
        )
    # A lower bound the fetcher's sleep guarantees (the client's end follows the server's).
    assert starts[1] - ends[0] >= 0.3


# -- feeds ----------------------------------------------------------------------------------------


async def feed_items(
    server: HTTPServer, body: bytes | str, content_type: str, status: int = 200
) -> list[Found | Failure]:
    """What read_feed gives for a feed served with ``content_type`` (robots.txt: none)."""
    robots(server)
    server.expect_request("/feed").respond_with_data(body, status=status, content_type=content_type)
    async with Fetcher(policy()) as fetcher:
        return await collect(read_feed(fetcher, server.url_for("/feed"), source=SOURCE))


async def test_an_rss_feed_gives_one_item_per_entry(server: HTTPServer) -> None:
    items = await feed_items(server, fixture("feed.rss"), "application/rss+xml")
    first, second = items
    assert isinstance(first, Found) and isinstance(second, Found)
    assert first.text == "Harbour reopens after repairs\n\nThe harbour of Example Town reopened on Tuesday."
    assert first.url == "https://courier.example/news/harbour?id=7"
    assert first.platform == "courier.example"
    assert first.published_at == datetime(2024, 3, 5, 9, 20, tzinfo=UTC)
    assert first.author == "ada@courier.example (Ada Fictional)"
    assert first.metadata == {"source": SOURCE, "feed_title": "Example Town Courier"}
    assert second.url == server.url_for("/news/market")  # a relative link, resolved against the feed
    assert second.author is None


async def test_an_atom_entry_uses_its_fuller_content(server: HTTPServer) -> None:
    (item,) = await feed_items(server, fixture("feed.atom"), "application/atom+xml")
    assert isinstance(item, Found)
    assert item.text == (
        "Fog over the bay\n\nFog lasted three days over Example Bay.\nThe ferry waited in port until Sunday."
    )
    assert (item.author, item.metadata["feed_title"]) == ("Lighthouse Keeper", "Example Bay Weather Log")


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        (
            "feed_cp1252.rss",
            "application/rss+xml; charset=windows-1252",
            "Caf\u00e9 op de kade \u2013 \u201ckoffie\u201d voor \u20ac 2",
        ),
        ("feed_latin1.rss", "application/xml", "L'\u00e9t\u00e9 au march\u00e9"),
    ],
)
async def test_a_feed_in_a_legacy_encoding_is_decoded_right(
    server: HTTPServer, name: str, content_type: str, expected: str
) -> None:
    (item,) = await feed_items(server, fixture(name), content_type)
    assert isinstance(item, Found) and item.text.startswith(expected + "\n\n")
    assert "\ufffd" not in item.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (fixture("feed_broken.xml"), "text/html"),
        # well-formed XML, so not "bozo": an error page served as the feed was, or other XML
        (fixture("feed_broken.xml"), "application/rss+xml"),
        (b'<?xml version="1.0"?><catalog><book id="1">A fictional title</book></catalog>', "application/xml"),
    ],
    ids=["html", "html-as-rss", "other-xml"],
)
async def test_what_is_not_a_feed_is_a_fatal_failure(
    server: HTTPServer, body: bytes, content_type: str
) -> None:
    items = await feed_items(server, body, content_type)
    assert len(items) == 1
    assert isinstance(items[0], Failure) and items[0].reason == "invalid_content" and items[0].fatal


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet Courier</title></channel></rss>',
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet Courier</title></feed>',
    ],
    ids=["rss", "atom"],
)
async def test_a_feed_without_entries_is_no_failure(server: HTTPServer, body: str) -> None:
    assert await feed_items(server, body, "application/xml") == []


async def test_a_feed_that_cannot_be_fetched_is_a_fatal_failure(server: HTTPServer) -> None:
    (item,) = await feed_items(server, "", "text/plain", status=500)
    assert isinstance(item, Failure) and (item.reason, item.fatal) == ("http_status", True)


async def test_a_malformed_but_readable_feed_gives_its_entries(server: HTTPServer) -> None:
    (item,) = await feed_items(server, fixture("feed_bozo.rss"), "application/rss+xml")
    assert isinstance(item, Found) and item.url == "https://courier.example/news/bridge"
    assert item.text.startswith("Bridge repainted\n\nThe old bridge was repainted green")


async def test_an_entity_expansion_feed_expands_nothing(server: HTTPServer) -> None:
    items = await feed_items(server, fixture("feed_laughs.rss"), "application/xml")
    for item in items:
        if isinstance(item, Found):
            assert "lollol" not in item.text and len(item.text) < 200
            assert "localhost" not in item.text  # nor read a local file (/etc/hostname)
        else:
            assert item.reason == "invalid_content"


async def test_a_feed_with_a_hostile_charset_does_not_break(server: HTTPServer) -> None:
    robots(server)
    server.expect_request("/feed").respond_with_data(
        fixture("feed.rss"), content_type="application/rss+xml; charset=zlib_codec"
    )
    server.expect_request("/page").respond_with_data(
        fixture("article.html"), content_type="text/html; charset=base64"
    )
    async with Fetcher(policy()) as fetcher:
        feed = await collect(read_feed(fetcher, server.url_for("/feed"), source=SOURCE))
        pages = await collect(read_urls(fetcher, [server.url_for("/page")], source=SOURCE))
    assert feed and all(isinstance(item, Found | Failure) for item in feed)
    assert isinstance(pages[0], Found) and "harbour of Example Town" in pages[0].text


async def test_an_unchanged_feed_gives_nothing(server: HTTPServer) -> None:
    robots(server)

    def feed(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"f1"':
            return Response(status=304)
        return Response(fixture("feed.rss"), headers={"ETag": '"f1"'}, content_type="application/rss+xml")

    server.expect_request("/feed").respond_with_handler(feed)
    async with Fetcher(policy(), validators=MemoryValidators()) as fetcher:
        first = await collect(read_feed(fetcher, server.url_for("/feed"), source=SOURCE))
        second = await collect(read_feed(fetcher, server.url_for("/feed"), source=SOURCE))
    assert len(first) == 2 and second == []


async def test_fetch_pages_reads_each_entry_page(server: HTTPServer) -> None:
    base = base_of(server)
    robots(server, "User-agent: *\nDisallow: /private\n")
    feed = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Courier</title>
    <item><title>Harbour</title><link>{base}/news/harbour</link><description>Short.</description>
    <pubDate>Tue, 05 Mar 2024 09:20:00 GMT</pubDate></item>
    <item><title>Hidden</title><link>{base}/private/x</link><description>Teaser only.</description></item>
    </channel></rss>"""
    server.expect_request("/feed").respond_with_data(feed, content_type="application/rss+xml")
    server.expect_request("/news/harbour").respond_with_data(
        fixture("article.html"), content_type="text/html"
    )
    async with Fetcher(policy()) as fetcher:
        items = await collect(read_feed(fetcher, f"{base}/feed", source=SOURCE, fetch_pages=True))
    page, denied, teaser = items
    assert isinstance(page, Found) and "quay will open every Saturday" in page.text
    assert page.metadata == {
        "title": "Harbour reopens after repairs",
        "source": SOURCE,
        "feed_title": "Courier",
    }
    assert page.author == "Ada Fictional"
    assert isinstance(denied, Failure) and denied.reason == "robots_disallowed" and not denied.fatal
    assert isinstance(teaser, Found) and teaser.text == "Hidden\n\nTeaser only."
    assert "/private/x" not in requested(server)


# -- pages and sitemaps ---------------------------------------------------------------------------


async def test_pages_from_a_url_list(server: HTTPServer) -> None:
    robots(server, "User-agent: *\nDisallow: /private\n")
    server.expect_request("/article").respond_with_data(fixture("article.html"), content_type="text/html")
    server.expect_request("/menu").respond_with_data(fixture("no_text.html"), content_type="text/html")
    server.expect_request("/broken").respond_with_data(fixture("malformed.html"), content_type="text/html")
    server.expect_request("/image").respond_with_data(b"\x89PNG\r\n", content_type="image/png")
    paths = ["/article", "/menu", "/broken", "/image", "/private/notes"]
    async with Fetcher(policy()) as fetcher:
        items = await collect(read_urls(fetcher, [server.url_for(p) for p in paths], source=SOURCE))
    article, menu, broken, image, private = items
    assert isinstance(article, Found) and article.url == server.url_for("/article")
    assert article.published_at == datetime.fromisoformat("2024-03-05T10:20:00+01:00")
    assert article.metadata == {"title": "Harbour reopens after repairs", "source": SOURCE}
    assert isinstance(menu, Failure) and menu.reason == "invalid_content" and not menu.fatal
    assert isinstance(broken, Found) and "fog horn could be heard" in broken.text
    assert isinstance(image, Failure) and image.reason == "invalid_content"
    assert isinstance(private, Failure) and private.reason == "robots_disallowed"
    assert "/private/notes" not in requested(server)


async def test_a_sitemap_index_leads_to_its_pages(server: HTTPServer) -> None:
    base = base_of(server)
    robots(server, "User-agent: *\nDisallow: /private\n")
    server.expect_request("/sitemap.xml").respond_with_data(fixture("sitemap_index.xml", base))
    server.expect_request("/sitemap-news.xml").respond_with_data(fixture("sitemap_news.xml", base))
    server.expect_request("/sitemap-more.xml.gz").respond_with_data(
        gzip.compress(fixture("sitemap_more.xml", base)), content_type="application/gzip"
    )
    server.expect_request("/sitemap-missing.xml").respond_with_data("", status=404)
    for path in ("/news/harbour", "/news/market", "/news/bridge", "/news/ferry"):
        server.expect_request(path).respond_with_data(fixture("article.html"), content_type="text/html")
    async with Fetcher(policy()) as fetcher:
        items = await collect(read_sitemap(fetcher, f"{base}/sitemap.xml", source=SOURCE, max_pages=3))
    failures = [item for item in items if isinstance(item, Failure)]
    found = [item for item in items if isinstance(item, Found)]
    assert [(f.reason, f.fatal) for f in failures] == [("http_status", False), ("robots_disallowed", False)]
    assert [f.url for f in found] == [server.url_for("/news/harbour"), server.url_for("/news/market")]
    pages = [path for path in requested(server) if path.startswith(("/news", "/private"))]
    assert pages == ["/news/harbour", "/news/market"]  # three pages at most, one of them disallowed
    assert requested(server).count("/sitemap.xml") == 1  # the index naming itself is not read again


async def test_sitemaps_read_are_bounded(server: HTTPServer) -> None:
    base = base_of(server)
    robots(server)

    def index(request: Request) -> Response:
        n = int(request.path.removeprefix("/index-").removesuffix(".xml"))
        children = "".join(
            f"<sitemap><loc>{base}/index-{n * 10 + k}.xml</loc></sitemap>" for k in range(1, 4)
        )
        return Response(f"<sitemapindex>{children}</sitemapindex>", content_type="application/xml")

    server.expect_request(re.compile(r"/index-\d+\.xml")).respond_with_handler(index)
    async with Fetcher(policy()) as fetcher:
        items = await collect(read_sitemap(fetcher, f"{base}/index-0.xml", source=SOURCE, max_pages=10))
    assert items == []
    read = [path for path in requested(server) if path.startswith("/index-")]
    assert len(read) == 1 + 3 + 9 + 27 <= MAX_SITEMAPS  # down to three levels below the first


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<urlset><url><loc>http://a.example/</loc></url>", "not XML"),
        (b"<html><body>Not found</body></html>", "not a sitemap"),
        (b"", "not XML"),
    ],
)
async def test_a_broken_sitemap_is_a_fatal_failure(server: HTTPServer, body: bytes, why: str) -> None:
    robots(server)
    server.expect_request("/sitemap.xml").respond_with_data(body, content_type="application/xml")
    async with Fetcher(policy()) as fetcher:
        items = await collect(
            read_sitemap(fetcher, server.url_for("/sitemap.xml"), source=SOURCE, max_pages=5)
        )
    (failure,) = items
    assert isinstance(failure, Failure) and failure.reason == "invalid_content" and failure.fatal
    assert failure.detail.startswith(why)


async def test_an_entity_expansion_sitemap_is_refused(server: HTTPServer) -> None:
    robots(server)
    server.expect_request("/sitemap.xml").respond_with_data(fixture("sitemap_laughs.xml"))
    async with Fetcher(policy()) as fetcher:
        items = await collect(
            read_sitemap(fetcher, server.url_for("/sitemap.xml"), source=SOURCE, max_pages=5)
        )
    (failure,) = items
    assert isinstance(failure, Failure) and failure.reason == "invalid_content" and failure.fatal
