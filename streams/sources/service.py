"""The sources service: every configured source read on its schedule, what it found sent to the
content topic once.

One pass of a source forgets what was sent longer ago than ``state.keep_sent``, reads the
source through its connector (:data:`Connector`), turns each :class:`Found` into a content item
(:mod:`streams.sources.items`), drops what was already sent (:mod:`streams.sources.state`), and
sends the rest through the Kafka layer's producer in batches,
marking each batch sent once the broker acknowledged it. Its failures are counted by reason
(``propwatch_source_fetch_errors_total``) and logged, never raised. A pass with a fatal failure
(the source as a whole could not be read, an item could not be sent, or a connector raised: the
per-source boundary) backs the source off: its next attempt waits ``every``, then twice that, and
so on up to :data:`BACKOFF_CAP_S` (or ``every`` if longer); the backoff is kept in the state, so it
survives a restart. Nothing a source does stops the service or another source.

The web connectors share one :class:`~streams.sources.fetch.Fetcher`, which serialises requests
per host, so sources on different hosts run side by side. File connectors (WARC, channel
exports) run in a worker thread, a chunk of records at a time, so that a large file does not block
the event loop; a file whose size and modification time have not changed since its last
successful pass is not read again.

The cache validators a pass receives (ETag, Last-Modified, a file's stamp) are kept aside and
written to the state only when the pass succeeded: a pass whose items could not be sent fetches
its pages in full next time, instead of being told 304 and losing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from streams.kafka.producer import Producer
from streams.kafka.topics import CONTENT
from streams.metrics import FETCH_ERRORS, SourcesMetrics
from streams.records import utc_now
from streams.safejson import for_terminal
from streams.settings import Settings
from streams.sources.base import Failure, Found, Validators
from streams.sources.config import (
    MODELS,
    DiscordSource,
    FeedSource,
    FileSource,
    SitemapSource,
    Source,
    SourcesConfig,
    TelegramSource,
    UrlsSource,
    WarcSource,
)
from streams.sources.exports import read_discord_export, read_telegram_export
from streams.sources.feeds import read_feed
from streams.sources.fetch import Fetcher, FetchPolicy
from streams.sources.items import Built, Skipped, build_item
from streams.sources.pages import read_sitemap, read_urls
from streams.sources.parsing import Parsers
from streams.sources.state import SourcesState
from streams.sources.warc import read_warc

log = logging.getLogger(__name__)

Connector = Callable[[Source], AsyncIterator[Found | Failure]]
"""Reads one source: what it found, and a :class:`Failure` for each thing it could not read."""
SEND_BATCH = 100
"""Items sent, acknowledged and marked together."""
BACKOFF_CAP_S = 6 * 3600.0
FILE_CHUNK = 64
"""Records a file connector's thread reads before the event loop gets them."""
DETAIL_CHARS = 500

T = TypeVar("T")


def backoff_delay(every_s: float, failures: int) -> float:
    """Seconds until a source that failed ``failures`` times in a row is tried again."""
    return min(every_s * 2.0 ** min(failures - 1, 32), max(every_s, BACKOFF_CAP_S))


@dataclass
class PassResult:
    """What one pass of a source did."""

    source: str
    sent: int = 0
    duplicates: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    """Failures by reason (:data:`streams.metrics.FETCH_ERRORS`)."""
    fatal: str | None = None
    """The reason of the first fatal failure; None when the pass succeeded."""
    retry_at: float | None = None
    """When a failed source is tried again (epoch seconds)."""

    def summary(self) -> str:
        failures = ", ".join(f"{reason} {n}" for reason, n in sorted(self.failures.items()))
        text = f"{self.source}: sent {self.sent}, duplicates {self.duplicates}, failures {failures or 0}"
        return text + (f" (source failed: {self.fatal}; backing off)" if self.fatal else "")


# --- validators, kept aside until a pass succeeds ----------------------------------------------------


@dataclass
class _Pass:
    """The pass under way in this task: its source, and the validators it received."""

    source: str
    validators: dict[str, Validators] = field(default_factory=dict)


_current: ContextVar[_Pass | None] = ContextVar("sources_pass", default=None)


class PassValidators:
    """The fetcher's :class:`~streams.sources.base.ValidatorStore`, per source: inside a pass (a
    context variable: each pass is a task), what it is told to remember waits in the pass, and
    the service writes it to the state only when the pass succeeded."""

    def __init__(self, state: SourcesState) -> None:
        self.state = state

    def validators(self, url: str) -> Validators | None:
        current = _current.get()
        if current is None:
            return self.state.validators(url)
        if url in current.validators:
            return current.validators[url]
        return self.state.validators(url, source=current.source)

    def remember(self, url: str, validators: Validators) -> None:
        current = _current.get()
        if current is None:
            self.state.remember(url, validators)
        else:
            current.validators[url] = validators


# --- connectors ----------------------------------------------------------------------------------------


async def iterate_in_thread(
    make: Callable[[], Iterator[T]], chunk: int = FILE_CHUNK
) -> AsyncGenerator[T, None]:
    """What the iterator ``make`` returns yields, each chunk read in a worker thread."""
    loop = asyncio.get_running_loop()
    iterator = await loop.run_in_executor(None, lambda: iter(make()))
    try:
        while True:
            items = await loop.run_in_executor(None, lambda: list(itertools.islice(iterator, chunk)))
            for item in items:
                yield item
            if len(items) < chunk:
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await loop.run_in_executor(None, close)


def file_connector(
    read: Callable[[FileSource], Iterator[Found | Failure]], store: PassValidators, metrics: SourcesMetrics
) -> Connector:
    """A connector for a local file read by ``read`` in a worker thread; an unchanged file (same
    size and modification time as at its last successful pass) is not read again."""

    async def connect(source: Source) -> AsyncIterator[Found | Failure]:
        if not isinstance(source, FileSource):
            raise TypeError(f"not a file source: {source.kind}")
        path = source.path
        try:
            stat = path.stat()
        except OSError as exc:
            yield Failure("read_error", f"cannot read {path}: {exc.strerror}", fatal=True)
            return
        key, stamp = path.resolve().as_uri(), Validators(etag=f"{stat.st_size}:{stat.st_mtime_ns}")
        if store.validators(key) == stamp:
            metrics.not_modified.labels(source=source.name).inc()
            return
        async with contextlib.aclosing(iterate_in_thread(lambda: read(source))) as records:
            async for found in records:
                yield found
        store.remember(key, stamp)

    return connect


def fetch_policy(config: SourcesConfig) -> FetchPolicy:
    """The fetcher's policy from SOURCES.yml's ``fetch`` (and ``unit``, in the User-Agent)."""
    fetch = config.fetch
    return FetchPolicy(
        user_agent=config.user_agent,
        connect_timeout_s=fetch.connect_timeout,
        read_timeout_s=fetch.read_timeout,
        total_timeout_s=fetch.total_timeout,
        max_bytes=fetch.max_bytes,
        max_redirects=fetch.max_redirects,
        per_host_delay_s=fetch.per_host_delay,
        allow_private_addresses=fetch.allow_private_addresses,
    )


@contextlib.asynccontextmanager
async def default_connectors(
    config: SourcesConfig, store: PassValidators, metrics: SourcesMetrics
) -> AsyncIterator[Mapping[str, Connector]]:
    """The connector of each kind: one fetcher for every web source, a worker thread for files,
    and child processes that parse feeds, sitemaps and pages (:class:`Parsers`), with a deadline."""
    async with Fetcher(fetch_policy(config), validators=store, metrics=metrics) as fetcher:
        parsers = Parsers(timeout_s=config.fetch.parse_timeout)

        def read_web(source: Source) -> AsyncIterator[Found | Failure]:
            if isinstance(source, FeedSource):
                return read_feed(
                    fetcher, source.url, source=source.name, fetch_pages=source.fetch_pages, parsing=parsers
                )
            if isinstance(source, UrlsSource):
                return read_urls(fetcher, source.urls, source=source.name, parsing=parsers)
            if isinstance(source, SitemapSource):
                return read_sitemap(
                    fetcher, source.url, source=source.name, max_pages=source.max_pages, parsing=parsers
                )
            raise TypeError(f"not a web source: {source.kind}")

        def read_file(source: FileSource) -> Iterator[Found | Failure]:
            if isinstance(source, WarcSource):
                return read_warc(source.path, max_record_bytes=source.max_record_bytes, parsing=parsers)
            if isinstance(source, TelegramSource):
                return read_telegram_export(
                    source.path, channel_url=source.channel_url, max_bytes=source.max_bytes
                )
            if isinstance(source, DiscordSource):
                return read_discord_export(source.path, max_bytes=source.max_bytes)
            raise TypeError(f"no reader for {source.kind}")

        files = file_connector(read_file, store, metrics)
        with parsers:
            yield {
                kind: files if issubclass(model, FileSource) else read_web for kind, model in MODELS.items()
            }


# --- the service -----------------------------------------------------------------------------------


class SourcesService:
    """Reads the configured sources and sends what they find (see the module).

    ``connectors`` maps each kind to its connector; None: :func:`default_connectors`, opened for
    each :meth:`run_once` or :meth:`run`. The producer is used from one thread of the service's
    own, so its sends and flushes never interleave."""

    def __init__(
        self,
        config: SourcesConfig,
        settings: Settings,
        producer: Producer,
        metrics: SourcesMetrics,
        state: SourcesState,
        *,
        connectors: Mapping[str, Connector] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.state = state
        self.validators = PassValidators(state)
        self._connectors = connectors
        self._topic = settings.topic(CONTENT.name)
        self._sending = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sources-producer")
        self.started_at = time.time()
        self.results: dict[str, PassResult] = {}
        """Each source's latest pass."""
        for source in config.enabled:
            activity = state.activity(source.name)
            metrics.declare(
                source.name,
                source.expect_items_within,
                last_item=self.started_at if activity.last_item is None else activity.last_item,
                last_success=self.started_at if activity.last_success is None else activity.last_success,
            )

    @contextlib.asynccontextmanager
    async def connectors(self) -> AsyncIterator[Mapping[str, Connector]]:
        if self._connectors is not None:
            yield self._connectors
            return
        async with default_connectors(self.config, self.validators, self.metrics) as connectors:
            yield connectors

    async def run_once(self) -> list[PassResult]:
        """One pass of every enabled source, side by side (backoff or not), in the config's order."""
        async with self.connectors() as connectors:
            return list(await asyncio.gather(*(self.read(s, connectors) for s in self.config.enabled)))

    async def run(self, stop: asyncio.Event) -> None:
        """Every enabled source on its schedule until ``stop`` is set; a pass under way then is
        cancelled (what it sent and was not yet marked is sent again after the restart)."""
        async with self.connectors() as connectors:
            tasks = [asyncio.create_task(self._schedule(s, connectors, stop)) for s in self.config.enabled]
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Wait for a send under way; the caller closes the producer and the state afterwards."""
        self._sending.shutdown(wait=True)

    async def _schedule(
        self, source: Source, connectors: Mapping[str, Connector], stop: asyncio.Event
    ) -> None:
        backoff = self.state.backoff(source.name)
        due = backoff.next_attempt if backoff is not None else time.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.time()))
                return
            started = time.time()
            result = await self.read(source, connectors)
            due = result.retry_at if result.retry_at is not None else started + source.every

    async def read(self, source: Source, connectors: Mapping[str, Connector]) -> PassResult:
        """One pass of ``source``. Never raises (but for cancellation)."""
        result = PassResult(source.name)
        current = _Pass(source.name)
        token = _current.set(current)
        try:
            await self._read(source, connectors[source.kind], result)
        except Exception as exc:  # the per-source boundary: a bug in a connector or below
            log.exception("source %s: pass failed with an exception", source.name)
            self._count(source, result, Failure("read_error", f"{type(exc).__name__}: {exc}", fatal=True))
        finally:
            _current.reset(token)
        now = time.time()
        if result.fatal is None:
            for url, validators in current.validators.items():
                self.state.remember(url, validators, source=source.name)
            self.state.succeeded(source.name, at=now)
            self.metrics.last_success.labels(source=source.name).set(now)
        else:
            backoff = self.state.failed(
                source.name, result.fatal, lambda failures: backoff_delay(source.every, failures), now=now
            )
            result.retry_at = backoff.next_attempt
            log.warning(
                "source %s: failed %d time(s) in a row (%s); next attempt in %.0f s",
                source.name,
                backoff.failures,
                backoff.reason,
                backoff.next_attempt - now,
            )
        self.results[source.name] = result
        log.info("source %s", result.summary())
        return result

    async def _read(self, source: Source, connector: Connector, result: PassResult) -> None:
        self._forget_sent()
        batch: list[Built] = []
        seen: set[object] = set()
        found_items = connector(source)
        try:
            async for found in found_items:
                if isinstance(found, Failure):
                    self._count(source, result, found)
                    continue
                built = build_item(
                    found,
                    source=source.name,
                    platform=source.platform,
                    max_text_bytes=self.settings.max_text_bytes,
                    observed_at=utc_now(),
                )
                if isinstance(built, Skipped):
                    self._count(source, result, Failure(built.reason, built.detail, url=found.url))
                    continue
                if built.key in seen or self.state.is_sent(built.key):
                    result.duplicates += 1
                    self.metrics.duplicates.labels(source=source.name).inc()
                    continue
                seen.add(built.key)
                batch.append(built)
                if len(batch) >= SEND_BATCH:
                    if not await self._send(source, batch, result):
                        return
                    batch = []
            await self._send(source, batch, result)
        finally:
            aclose = getattr(found_items, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send(self, source: Source, batch: list[Built], result: PassResult) -> bool:
        """Send ``batch``, wait for the broker's acknowledgement, then mark it sent; False (a fatal
        ``produce_error``, nothing marked) if the broker did not take it."""
        if not batch:
            return True
        try:
            await asyncio.get_running_loop().run_in_executor(self._sending, self._produce, batch)
        except Exception as exc:  # a KafkaError, or a record the producer refused
            self._count(source, result, Failure("produce_error", f"{type(exc).__name__}: {exc}", fatal=True))
            return False
        now = time.time()
        self.state.mark_sent((built.key for built in batch), at=now, source=source.name)
        result.sent += len(batch)
        self.metrics.items.labels(source=source.name).inc(len(batch))
        self.metrics.last_item.labels(source=source.name).set(now)
        return True

    def _forget_sent(self) -> None:
        """Forget the items sent longer ago than ``state.keep_sent`` (once a pass, at most
        :data:`~streams.sources.state.FORGET_BATCH` of them); found again, they are sent again."""
        keep = self.config.state.keep_sent
        forgotten = self.state.forget_sent(time.time() - keep)
        if forgotten:
            log.info("state: forgot %d items sent more than %g days ago", forgotten, keep / 86400)

    def _produce(self, batch: list[Built]) -> None:
        for built in batch:
            self.producer.send(self._topic, built.item.to_json(), key=built.item.id.encode())
        self.producer.flush()

    def _count(self, source: Source, result: PassResult, failure: Failure) -> None:
        reason = failure.reason if failure.reason in FETCH_ERRORS else "read_error"
        self.metrics.fetch_errors.labels(source=source.name, reason=reason).inc()
        result.failures[reason] += 1
        if failure.fatal and result.fatal is None:
            result.fatal = reason
        detail = for_terminal(str(failure.detail))[:DETAIL_CHARS]
        where = f" {for_terminal(failure.url)[:300]}" if failure.url else ""
        log.warning(
            "source %s: %s%s%s: %s", source.name, reason, " (fatal)" if failure.fatal else "", where, detail
        )

    def health(self) -> dict[str, object]:
        """What /health says: each enabled source's latest pass and backoff."""
        sources: dict[str, object] = {}
        for source in self.config.enabled:
            latest = self.results.get(source.name)
            backoff = self.state.backoff(source.name)
            sources[source.name] = {
                "last_pass": None
                if latest is None
                else ("failed: " + latest.fatal if latest.fatal else "ok"),
                "failures_in_a_row": 0 if backoff is None else backoff.failures,
                "next_attempt": None if backoff is None else backoff.next_attempt,
            }
        return {"status": "ok", "started_at": self.started_at, "sources": sources}


def web_app(service: SourcesService) -> web.Application:
    """/metrics (Prometheus) and /health (200 while the service runs, with each source's state)."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=service.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(request: web.Request) -> web.Response:
        return web.json_response(service.health(), dumps=json.dumps)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app


async def serve(service: SourcesService, stop: asyncio.Event) -> None:
    """:meth:`SourcesService.run` with its /health and /metrics on ``PROPWATCH_WEB_BIND`` and
    ``PROPWATCH_SOURCES_PORT``, until ``stop`` is set."""
    runner = web.AppRunner(web_app(service), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, service.settings.web_bind, service.settings.sources_port).start()
        log.info(
            "sources service: %d sources; /health and /metrics on %s:%d",
            len(service.config.enabled),
            service.settings.web_bind,
            service.settings.sources_port,
        )
        await service.run(stop)
    finally:
        await runner.cleanup()
