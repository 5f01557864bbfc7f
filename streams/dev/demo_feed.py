"""The demo's active-search step: a bundled feed (``data/feed.xml``) served on a free loopback port,
as a site would serve it, read once by the sources service (in a thread, while the worker loads
its model), its items sent to the content topic with the sample's."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from streams.kafka.producer import Producer
from streams.metrics import SourcesMetrics
from streams.records import Cleared, Record, Referral, Review
from streams.settings import Settings
from streams.sources.config import SourcesConfig, load_config
from streams.sources.service import PassResult, SourcesService
from streams.sources.state import SourcesState

PLATFORM = "demo-feed"
"""The ``platform`` of the feed's items, by which the demo finds their verdicts."""
PASS_TIMEOUT_S = 120.0
ROBOTS = b"User-agent: *\nAllow: /\n"


def feed_path() -> Path:
    """The bundled feed: a few synthetic posts and news in English, Dutch and Arabic."""
    return Path(str(files("streams.dev").joinpath("data/feed.xml")))


@contextlib.contextmanager
def serve_feed() -> Iterator[str]:
    """The bundled feed at ``/feed.xml`` (and a robots.txt that allows it) on a free loopback
    port, in a thread; its URL."""
    served = {
        "/feed.xml": (feed_path().read_bytes(), "application/rss+xml"),
        "/robots.txt": (ROBOTS, "text/plain"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, (body, kind) = (
                (200, served[self.path]) if self.path in served else (404, (b"", "text/plain"))
            )
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # the demo prints its own lines
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-feed", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def feed_config(url: str, folder: Path) -> SourcesConfig:
    """A SOURCES.yml in ``folder`` with one source, the feed at ``url`` (on the loopback interface,
    so private addresses are allowed; no delay between requests)."""
    path = folder / "SOURCES.yml"
    path.write_text(
        "unit: propwatch-demo\n"
        "fetch: {per_host_delay: 0s, allow_private_addresses: true}\n"
        f"sources:\n  - {{name: demo-feed, kind: feed, url: '{url}', platform: {PLATFORM}}}\n",
        encoding="utf-8",
    )
    return load_config(path)


def read_feed_once(settings: Settings, workdir: Path) -> list[PassResult]:
    """One pass of the sources service over the served bundled feed, into the content topic."""
    with (
        serve_feed() as url,
        SourcesState(workdir / "sources.sqlite3") as state,
        Producer(settings) as producer,
    ):
        service = SourcesService(feed_config(url, workdir), settings, producer, SourcesMetrics(), state)
        try:
            return asyncio.run(service.run_once())
        finally:
            service.close()


@dataclass
class FeedPass:
    """:func:`read_feed_once` under way in a thread of its own."""

    future: Future[list[PassResult]]

    @classmethod
    def start(cls, settings: Settings, workdir: Path) -> FeedPass:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-sources")
        future = executor.submit(read_feed_once, settings, workdir)
        executor.shutdown(wait=False)
        return cls(future)

    def report(self, console: Console) -> int:
        """Wait for the pass, print what it did, and return how many items it sent."""
        try:
            (result,) = self.future.result(timeout=PASS_TIMEOUT_S)
        except Exception as exc:
            raise RuntimeError(f"the sources service could not read the bundled feed: {exc}") from exc
        found = result.sent + result.duplicates + sum(result.failures.values())
        console.print(
            f"[bold]sources[/] {found} posts found in the bundled feed {feed_path().name} (served on a "
            f"loopback port, read by the sources service), {result.sent} sent"
            + (f"; failures: {dict(result.failures)}" if result.failures else "")
        )
        return result.sent


def feed_outcomes(records: Sequence[tuple[str, Record]]) -> tuple[Counter[str], list[Referral]]:
    """The verdicts on the feed's items: how many of each (referral, cleared, review), and the
    referrals."""
    counts: Counter[str] = Counter()
    referrals = []
    for _, record in records:
        if isinstance(record, Referral | Cleared | Review) and record.platform == PLATFORM:
            counts[type(record).__name__.lower()] += 1
            if isinstance(record, Referral):
                referrals.append(record)
    return counts, sorted(referrals, key=lambda r: r.item_id)


def print_feed_outcomes(console: Console, records: Sequence[tuple[str, Record]]) -> None:
    counts, referrals = feed_outcomes(records)
    if not counts:
        return
    console.print(
        f"[bold]From the bundled feed[/]: referred {counts['referral']}, cleared {counts['cleared']}, "
        f"review {counts['review']}"
    )
    for referral in referrals:
        labels = ", ".join(f"{label} {referral.scores[label]:.2f}" for label in referral.labels)
        console.print(escape(f"  [{referral.lang}, {labels}] {referral.text[:100]!r}"))
    console.print()
