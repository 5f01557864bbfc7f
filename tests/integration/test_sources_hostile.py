"""``propwatch sources run``, the long-running service, against sources written by an adversary,
beside two good feeds: a server that never answers, an endless redirect chain, a gzip body that
inflates to 4 GiB, malformed pages, a page that would keep the HTML parser busy for minutes, an
entity-expansion feed, a page that is not a feed, a Telegram export that is not JSON and a
cut-short WARC file. Over several passes of each, the
service keeps answering /health, counts each failure by its reason, stays small after the bombs,
sends the good feeds' items (one in windows-1252) exactly once, and stops cleanly on SIGTERM. A
second configuration with the address guard on (the default) never reaches the local server.

No timing is asserted: everything is polled for with a deadline."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from streams.dev.broker import free_port
from streams.dev.worker_process import ServiceProcess
from streams.records import ContentItem
from tests.integration.conftest import Deployment
from tests.integration.test_sources import FIXTURES, content, page, rss
from tests.unit.test_sources_http import gzip_bomb

ERRORS = "propwatch_source_fetch_errors_total"
HOSTILE = {
    "slow": "timeout",
    "loop": "too_many_redirects",
    "bomb": "too_large",
    "scraps": "invalid_content",
    "broken": "invalid_content",
    "notjson": "invalid_content",
    "cut": "read_error",
    "tangle": "timeout",
}
"""Each hostile source, and the reason its failures are counted with."""
TANGLE = (
    "<html><body><p " + " ".join(f"a{n}='{n}'" for n in range(100_000)) + ">A tangle of attributes.</p>"
).encode()
"""A page with one tag of 100,000 attributes: libxml2's HTML parser is quadratic in them, so
extracting it would keep a process busy for minutes; the service stops it at ``parse_timeout``."""
PASSES = 2
"""Failures of each hostile source seen before the service is stopped: it read each again."""
MAX_RSS_BYTES = 400 * 2**20
DEADLINE_S = 120.0
NEWS = (
    ("/news/1", "Bridge reopens in Voorbeelddorp", "De brug is na één jaar weer open, zegt de gemeente."),
    ("/news/2", "Market moves to the quay", "The Saturday market of Example Town moves to the quay."),
)
LATE = ("/news/3", "Ferry timetable changes", "The fictional ferry leaves at 07:30 from next week.")
"""An entry the good feed adds after its first answer: a later pass sends it, and only it."""
LEGACY_TITLE = "Caf\u00e9 op de kade \u2013 \u201ckoffie\u201d voor \u20ac 2"
"""The title of the windows-1252 feed's entry (``feed_cp1252.rss``), decoded."""
SCRAPS = (
    ("malformed", (FIXTURES / "malformed.html").read_bytes()),  # still has a main text: sent once
    ("no-text", (FIXTURES / "no_text.html").read_bytes()),
    ("binary", bytes(range(256)) * 64),
    ("empty", b""),
)


@pytest.fixture
def site() -> Iterator[HTTPServer]:
    """The good feeds and the hostile answers, on one threaded local server."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    base = server.url_for("/").rstrip("/")
    release = threading.Event()
    bomb = gzip_bomb(4096)  # 4 MiB that inflate to 4 GiB
    news_answers = []

    def news(request: Request) -> Response:
        news_answers.append(request)
        entries = NEWS if len(news_answers) == 1 else (*NEWS, LATE)
        return Response(rss(base, entries), content_type="application/rss+xml; charset=utf-8")

    def slow(request: Request) -> Response:
        release.wait(60)  # far past the read timeout; set when the test ends
        return Response(rss(base, NEWS), content_type="application/rss+xml")

    def loop(request: Request) -> Response:
        hop = int(request.path.rsplit("/", 1)[1])
        return Response(status=302, headers={"Location": f"/loop/{hop + 1}"})

    def bombed(request: Request) -> Response:
        # No Content-Length: the cap is reached while inflating, not refused up front.
        pieces = (bomb[start : start + 16_384] for start in range(0, len(bomb), 16_384))
        return Response(pieces, content_type="text/html", headers={"Content-Encoding": "gzip"})

    server.expect_request("/robots.txt").respond_with_data("no rules", status=404)
    server.expect_request("/news.xml").respond_with_handler(news)
    server.expect_request("/legacy.xml").respond_with_data(
        (FIXTURES / "feed_cp1252.rss").read_bytes(), content_type="application/rss+xml; charset=windows-1252"
    )
    server.expect_request("/laughs.xml").respond_with_data(
        (FIXTURES / "feed_laughs.rss").read_bytes(), content_type="application/rss+xml"
    )
    server.expect_request("/broken.xml").respond_with_data(
        (FIXTURES / "feed_broken.xml").read_bytes(), content_type="application/rss+xml"
    )
    server.expect_request("/slow.xml").respond_with_handler(slow)
    server.expect_request(re.compile(r"/loop/\d+")).respond_with_handler(loop)
    server.expect_request("/bomb.html").respond_with_handler(bombed)
    server.expect_request("/tangle.html").respond_with_data(TANGLE, content_type="text/html")
    for name, body in SCRAPS:
        server.expect_request(f"/scraps/{name}").respond_with_data(body, content_type="text/html")
    server.expect_request("/sitemap.xml").respond_with_data(
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<url><loc>http://169.254.169.254/latest/meta-data/</loc></url>"
        f"<url><loc>{base}/news/1</loc></url></urlset>",
        content_type="application/xml",
    )
    server.expect_request(re.compile(r"/news/\d")).respond_with_data(
        page("News", "A synthetic page of the fictional Voorbeelddorp Bode."), content_type="text/html"
    )
    yield server
    release.set()
    server.clear()
    server.stop()


def sources_yml(folder: Path, base: str) -> Path:
    (folder / "result.json").write_text("this is not { JSON", encoding="utf-8")
    warc = (FIXTURES / "capture.warc.gz").read_bytes()
    (folder / "cut.warc.gz").write_bytes(warc[: len(warc) * 2 // 3])
    scraps = ", ".join(f"'{base}/scraps/{name}'" for name, _ in SCRAPS)
    path = folder / "SOURCES.yml"
    path.write_text(
        "unit: IRU-Test\n"
        "fetch: {per_host_delay: 0s, connect_timeout: 2s, read_timeout: 1s, total_timeout: 5s,"
        " max_bytes: 2097152, max_redirects: 3, parse_timeout: 2s, allow_private_addresses: true}\n"
        "sources:\n"
        f"  - {{name: news, kind: feed, url: '{base}/news.xml', every: 1s}}\n"
        f"  - {{name: legacy, kind: feed, url: '{base}/legacy.xml', every: 1s}}\n"
        f"  - {{name: laughs, kind: feed, url: '{base}/laughs.xml', every: 1s}}\n"
        f"  - {{name: broken, kind: feed, url: '{base}/broken.xml', every: 1s}}\n"
        f"  - {{name: slow, kind: feed, url: '{base}/slow.xml', every: 1s}}\n"
        f"  - {{name: loop, kind: feed, url: '{base}/loop/0', every: 1s}}\n"
        f"  - {{name: bomb, kind: urls, urls: ['{base}/bomb.html'], every: 1s}}\n"
        f"  - {{name: scraps, kind: urls, urls: [{scraps}], every: 1s}}\n"
        f"  - {{name: tangle, kind: urls, urls: ['{base}/tangle.html'], every: 1s}}\n"
        "  - {name: notjson, kind: telegram, path: result.json, every: 1s}\n"
        "  - {name: cut, kind: warc, path: cut.warc.gz, every: 1s}\n",
        encoding="utf-8",
    )
    return path


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and sorted labels."""
    status, body = get(f"{url}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def errors(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], source: str) -> dict[str, float]:
    """A source's fetch errors by reason (those above zero)."""
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in metrics.items()
        if name == ERRORS and dict(labels)["source"] == source and value > 0
    }


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def test_hostile_sources_are_counted_and_the_service_goes_on(
    deployment: Deployment, site: HTTPServer, tmp_path: Path
) -> None:
    base = site.url_for("/").rstrip("/")
    config = sources_yml(tmp_path, base)
    env = {
        **deployment.env,
        "PROPWATCH_SOURCES_PORT": str(free_port()),
        "PROPWATCH_DATA_DIR": str(tmp_path / "sources-data"),
    }
    service = ServiceProcess(
        [sys.executable, "-m", "streams.cli", "sources", "run", str(config)],
        env,
        tmp_path / "sources.log",
        port=int(env["PROPWATCH_SOURCES_PORT"]),
        stop_timeout_s=30.0,
    )
    try:
        service.wait_healthy(timeout_s=60)
        deadline = time.monotonic() + DEADLINE_S
        peak_rss = 0
        while True:
            status, body = get(f"{service.url}/health")
            assert status == 200, f"/health answered {status}:\n{service.log_tail()}"
            health = json.loads(body)
            peak_rss = max(peak_rss, rss_bytes(service.process.pid))
            metrics = scrape(service.url)
            counted = {name: errors(metrics, name).get(reason, 0) for name, reason in HOSTILE.items()}
            news_sent = metrics[("propwatch_source_items_total", (("source", "news"),))]
            news_repeats = metrics[("propwatch_source_duplicates_total", (("source", "news"),))]
            if min(counted.values()) >= PASSES and news_sent >= len(NEWS) + 1 and news_repeats >= len(NEWS):
                break
            assert service.process.poll() is None, service.log_tail()
            assert time.monotonic() < deadline, (counted, news_sent, news_repeats, service.log_tail())
            time.sleep(0.5)
        peak_rss = max(peak_rss, rss_bytes(service.process.pid))
    finally:
        service.stop()
    assert service.process.returncode == 0, service.log_tail()
    assert "stopped by SIGTERM" in service.log_path.read_text()

    # Each hostile source failed with its reason and nothing else; the others did not fail.
    for name, reason in HOSTILE.items():
        assert set(errors(metrics, name)) == {reason}, (name, errors(metrics, name))
    for name in ("news", "legacy", "laughs"):
        assert errors(metrics, name) == {}, (name, errors(metrics, name))
        assert health["sources"][name]["last_pass"] == "ok"
    assert health["sources"]["slow"]["last_pass"] == "failed: timeout"
    assert health["sources"]["scraps"]["last_pass"] == "ok", "a bad page does not fail its list"
    assert peak_rss < MAX_RSS_BYTES, f"{peak_rss / 2**20:.0f} MiB after {counted['bomb']:.0f} bombs"

    items = content(deployment)
    assert len({item.id for item in items}) == len(items), "nothing sent twice"
    by_source: dict[str, list[ContentItem]] = {}
    for item in items:
        by_source.setdefault(item.metadata["source"], []).append(item)
    news = sorted(by_source["news"], key=lambda item: item.url or "")
    assert [(item.url, item.text) for item in news] == [
        (f"{base}{path}", f"{title}\n\n{text}") for path, title, text in (*NEWS, LATE)
    ]
    (legacy,) = by_source["legacy"]
    assert legacy.text.startswith(LEGACY_TITLE + "\n\n") and "\ufffd" not in legacy.text
    (laughs,) = by_source["laughs"]
    assert "lollol" not in laughs.text and len(laughs.text) < 200, "no entity was expanded"
    (scrap,) = by_source["scraps"]
    assert "fog horn could be heard" in scrap.text
    assert len(by_source["cut"]) > 0, "the records before the cut were sent"
    assert set(by_source) == {"news", "legacy", "laughs", "scraps", "cut"}, set(by_source)


def test_the_address_guard_keeps_the_service_off_a_local_server(
    deployment: Deployment, site: HTTPServer, tmp_path: Path
) -> None:
    """By default (``allow_private_addresses: false``) a sitemap on the loopback address, which
    names the cloud's metadata address, is refused before any request is made."""
    base = site.url_for("/").rstrip("/")
    config = tmp_path / "SOURCES.yml"
    config.write_text(
        f"unit: IRU-Test\nsources:\n  - {{name: internal, kind: sitemap, url: '{base}/sitemap.xml'}}\n"
    )
    done = deployment.cli("sources", "once", str(config), PROPWATCH_DATA_DIR=str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert done.stdout.decode().splitlines() == [
        "internal: sent 0, duplicates 0, failures blocked_address 1"
        " (source failed: blocked_address; backing off)"
    ]
    assert site.log == [], "no request reached the server"
    assert content(deployment) == []
