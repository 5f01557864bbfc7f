"""The sources service with connectors built in the test from lists of what they find: items sent
once, failures counted and never raised, one source's exception stopping no other, items valid for
the worker whatever a source put in them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from streams.metrics import SourcesMetrics
from streams.records import ContentItem, parse_item
from streams.settings import Settings
from streams.sources.base import Failure, Found, Validators
from streams.sources.config import (
    FeedSource,
    FetchConfig,
    Source,
    SourcesConfig,
    StateConfig,
    UrlsSource,
    WarcSource,
    load_config,
)
from streams.sources.items import Built, Skipped, build_item
from streams.sources.service import (
    BACKOFF_CAP_S,
    Connector,
    PassValidators,
    SourcesService,
    backoff_delay,
    fetch_policy,
    file_connector,
    web_app,
)
from streams.sources.state import Activity, SourcesState

TOPIC = "propwatch.content"
Yield = Found | Failure


class RecordingProducer:
    """The :class:`streams.kafka.producer.Producer` interface, keeping what it was given; ``fail``
    makes the next flush raise as an unreachable broker does."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, bytes, bytes]] = []
        self.acknowledged: list[tuple[str, bytes, bytes]] = []
        self.flushes: list[int] = []
        self.fail = False

    def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        assert value is not None and key is not None
        self.queued.append((topic, value, key))

    def flush(self) -> int:
        queued, self.queued = self.queued, []
        if self.fail:
            raise KafkaTimeoutError("broker did not acknowledge")
        self.acknowledged.extend(queued)
        self.flushes.append(len(queued))
        return len(queued)

    def items(self) -> list[ContentItem]:
        return [
            ContentItem.from_json(value, max_text_bytes=Settings().max_text_bytes)
            for _, value, _ in self.acknowledged
        ]


def found(n: int, *, host: str = "news.example", text: str = "A short synthetic post number {n}.") -> Found:
    return Found(
        text=text.format(n=n),
        url=f"https://{host}/posts/{n}?utm_source=feed",
        platform=host,
        published_at=datetime(2026, 11, 1, 12, n % 60, tzinfo=UTC),
        author=f"author_{n}",
        metadata={"feed_title": "Example News"},
    )


def listed(*batches: Sequence[Yield]) -> Connector:
    """A connector whose pass i yields ``batches[i]`` (the last batch again after them)."""
    calls = [0]

    async def connect(source: Source) -> AsyncIterator[Yield]:
        batch = batches[min(calls[0], len(batches) - 1)]
        calls[0] += 1
        for thing in batch:
            await asyncio.sleep(0)
            yield thing

    return connect


def feed(name: str, **kwargs: object) -> FeedSource:
    return FeedSource(name=name, url=f"https://{name}.example/feed.xml", **kwargs)  # type: ignore[arg-type]


def config(*sources: Source) -> SourcesConfig:
    return SourcesConfig(path=Path("SOURCES.yml"), unit="IRU-Test", fetch=FetchConfig(), sources=sources)


@pytest.fixture
def metrics() -> SourcesMetrics:
    return SourcesMetrics(CollectorRegistry())


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SourcesState]:
    with SourcesState(tmp_path / "sources.sqlite3") as state:
        yield state


def service(
    sources: Sequence[Source],
    connectors: dict[str, Connector],
    state: SourcesState,
    metrics: SourcesMetrics,
    producer: RecordingProducer | None = None,
    **settings: object,
) -> SourcesService:
    return SourcesService(
        config(*sources),
        Settings(**settings),  # type: ignore[arg-type]
        producer or RecordingProducer(),  # type: ignore[arg-type]
        metrics,
        state,
        connectors=connectors,
    )


def sample(metrics: SourcesMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


# --- dedupe ---------------------------------------------------------------------------------------


async def test_items_are_sent_once_across_passes_and_restarts(
    state: SourcesState, metrics: SourcesMetrics
) -> None:
    producer = RecordingProducer()
    connectors = {"feed": listed([found(1), found(2), found(1)], [found(1), found(2), found(3)])}
    svc = service([feed("news")], connectors, state, metrics, producer)

    [first] = await svc.run_once()
    assert (first.sent, first.duplicates, first.fatal) == (2, 1, None), "the same entry twice in a pass"
    [second] = await svc.run_once()
    assert (second.sent, second.duplicates) == (1, 2)
    svc.close()

    items = producer.items()
    assert [item.url for item in items] == [f"https://news.example/posts/{n}" for n in (1, 2, 3)]
    assert [key for _, _, key in producer.acknowledged] == [item.id.encode() for item in items]
    assert {topic for topic, _, _ in producer.acknowledged} == {TOPIC}
    assert sample(metrics, "propwatch_source_items_total", source="news") == 3
    assert sample(metrics, "propwatch_source_duplicates_total", source="news") == 3

    again = service([feed("news")], {"feed": listed([found(1), found(2), found(3)])}, state, metrics)
    [third] = await again.run_once()
    assert (third.sent, third.duplicates) == (0, 3), "the state remembers across a restart"


async def test_item_ids_are_deterministic_and_content_changes_are_new_items(
    state: SourcesState, metrics: SourcesMetrics, tmp_path: Path
) -> None:
    producer = RecordingProducer()
    edited = found(1, text="The same post, edited.")
    svc = service([feed("news")], {"feed": listed([found(1)], [edited])}, state, metrics, producer)
    await svc.run_once()
    await svc.run_once()
    first, second = producer.items()
    assert first.url == second.url and first.id != second.id, "new content at a URL is a new item"

    with SourcesState(tmp_path / "other.sqlite3") as elsewhere:
        other = RecordingProducer()
        await service([feed("news")], {"feed": listed([found(1)])}, elsewhere, metrics, other).run_once()
    assert other.items()[0].id == first.id, "the same URL and content always get the same id"


async def test_items_without_a_url_dedupe_per_source(state: SourcesState, metrics: SourcesMetrics) -> None:
    message = Found(text="A synthetic channel message.", url=None, platform="telegram")
    producer = RecordingProducer()
    svc = service([feed("one"), feed("two")], {"feed": listed([message])}, state, metrics, producer)
    assert [r.sent for r in await svc.run_once()] == [1, 1]
    assert [r.duplicates for r in await svc.run_once()] == [1, 1]
    items = {item.metadata["source"]: item for item in producer.items()}
    assert items["one"].id != items["two"].id and items["one"].url is None


async def test_items_sent_longer_ago_than_keep_sent_are_forgotten_and_sent_again(
    state: SourcesState, metrics: SourcesMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    day, now = 86400.0, time.time()
    for n, sent_days_ago in ((1, 31), (2, 29)):
        built = build_item(
            found(n), source="news", platform=None, max_text_bytes=1000, observed_at="2026-11-01T12:00:00Z"
        )
        assert isinstance(built, Built)
        state.mark_sent([built.key], at=now - sent_days_ago * day)
    producer = RecordingProducer()
    svc = SourcesService(
        dataclasses.replace(config(feed("news")), state=StateConfig.model_validate({"keep_sent": "30d"})),
        Settings(),
        producer,  # type: ignore[arg-type]
        metrics,
        state,
        connectors={"feed": listed([found(1), found(2)])},
    )
    with caplog.at_level(logging.INFO, logger="streams.sources.service"):
        [first] = await svc.run_once()
    assert (first.sent, first.duplicates) == (1, 1), "the item sent 31 days ago is sent again"
    assert [item.url for item in producer.items()] == ["https://news.example/posts/1"]
    assert "state: forgot 1 items sent more than 30 days ago" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="streams.sources.service"):
        [second] = await svc.run_once()
    assert (second.sent, second.duplicates) == (0, 2), "sent again, it is remembered again"
    assert "forgot" not in caplog.text, "nothing to forget: nothing logged"
    svc.close()


# --- the items are what the worker accepts ------------------------------------------------------


async def test_every_sent_item_is_valid_for_the_worker(state: SourcesState, metrics: SourcesMetrics) -> None:
    producer = RecordingProducer()
    svc = service(
        [feed("news", platform="news-override")],
        {"feed": listed([found(n) for n in range(5)])},
        state,
        metrics,
        producer,
    )
    await svc.run_once()
    assert len(producer.acknowledged) == 5
    for _, value, key in producer.acknowledged:
        item = parse_item(value, max_text_bytes=Settings().max_text_bytes)
        assert isinstance(item, ContentItem), item
        assert item.id == key.decode() and item.id.startswith("src:")
        assert item.platform == "news-override" and item.author and item.lang == "en"
        assert item.published_at is not None and item.published_at.startswith("2026-11-01T12:")
        assert item.metadata == {"feed_title": "Example News", "source": "news"}
        observed = datetime.fromisoformat(item.observed_at or "")
        assert abs(observed - datetime.now(UTC)) < timedelta(hours=1)


HOSTILE = [
    Found(
        text="text with \x00 nul, \x1b[31m escape, \x85 next-line and \ud800 a lone surrogate",
        url=None,
        platform="web",
    ),
    Found(text="ok", url="https://a.example/p", platform="p\x00" * 100, author="a\nb\x7f" * 400),
    Found(text="ok", url=None, platform="", author="   ", metadata={"k\n" * 100: "v\ud83d" * 5000}),
    Found(text="ok", url=None, platform="web", metadata={f"key{i}": str(i) for i in range(1000)}),
    Found(
        text="ok",
        url=None,
        platform="web",
        published_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    ),
    Found(
        text="ok",
        url=None,
        platform="web",
        published_at=datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
    ),
    Found(text="ok", url=None, platform="web", published_at=datetime(2026, 1, 1)),  # naive: taken as UTC
    Found(text="\u00e9" * 300_000, url="https://a.example/long", platform="web"),  # 600,000 bytes
    Found(text="\U0001f525" * 100_001, url=None, platform="web"),  # cut inside a 4-byte character
    Found(text="\u202eright-to-left override \u2066 isolate", url="https://a.example/bidi", platform="web"),
]


@pytest.mark.parametrize("thing", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_found_values_become_valid_items(thing: Found) -> None:
    limit = Settings().max_text_bytes
    built = build_item(
        thing, source="s", platform=None, max_text_bytes=limit, observed_at="2026-11-20T09:14:03.000Z"
    )
    assert isinstance(built, Built), built
    item = parse_item(built.item.to_json(), max_text_bytes=limit)
    assert isinstance(item, ContentItem), item
    assert item == built.item
    assert len(built.item.to_json()) < Settings().max_message_bytes
    if len(thing.text.encode("utf-8", errors="surrogatepass")) > limit:
        assert len(item.text.encode()) <= limit and thing.text.startswith(item.text)
        assert int(item.metadata["text_bytes"]) > limit


@pytest.mark.parametrize(
    "thing, reason",
    [
        (Found(text=" \n\t\x00 ", url=None, platform="web"), "invalid_content"),
        (Found(text="ok", url="javascript:alert(1)", platform="web"), "invalid_url"),
        (Found(text="ok", url="https://a.example/" + "x" * 5000, platform="web"), "invalid_url"),
        (Found(text="ok", url="https://a.example:99999/", platform="web"), "invalid_url"),
    ],
)
def test_what_cannot_be_an_item_is_skipped_with_a_reason(thing: Found, reason: str) -> None:
    built = build_item(
        thing, source="s", platform=None, max_text_bytes=1000, observed_at="2026-11-20T09:14:03Z"
    )
    assert isinstance(built, Skipped) and built.reason == reason


# --- failures are counted, never raised -------------------------------------------------------------


async def test_failures_are_counted_by_reason_and_a_fatal_one_backs_the_source_off(
    state: SourcesState, metrics: SourcesMetrics
) -> None:
    pages = [
        Failure("timeout", "read timed out", url="https://pages.example/slow"),
        found(1, host="pages.example"),
        Failure("too_large", "inflates past 5000000 bytes", url="https://pages.example/bomb"),
        Failure("made_up_reason", "a connector's typo"),
        Found(text="", url="https://pages.example/empty", platform="pages.example"),
    ]
    connectors = {
        "feed": listed([Failure("http_status", "HTTP 503", url="https://down.example/feed.xml", fatal=True)]),
        "urls": listed(pages),
    }
    down = feed("down", every="60s")
    svc = service(
        [down, UrlsSource(name="pages", urls=("https://pages.example/",))], connectors, state, metrics
    )
    before = time.time()
    down_result, pages_result = await svc.run_once()

    assert pages_result.sent == 1 and pages_result.fatal is None and pages_result.retry_at is None
    assert dict(pages_result.failures) == {
        "timeout": 1,
        "too_large": 1,
        "read_error": 1,
        "invalid_content": 1,
    }
    for reason, n in pages_result.failures.items():
        assert sample(metrics, "propwatch_source_fetch_errors_total", source="pages", reason=reason) == n
    assert state.backoff("pages") is None
    assert sample(metrics, "propwatch_source_last_success_timestamp_seconds", source="pages") >= before

    assert down_result.fatal == "http_status" and down_result.sent == 0
    assert sample(metrics, "propwatch_source_fetch_errors_total", source="down", reason="http_status") == 1
    assert sample(metrics, "propwatch_source_last_success_timestamp_seconds", source="down") == svc.started_at
    backoff = state.backoff("down")
    assert backoff is not None and (backoff.failures, backoff.reason) == (1, "http_status")
    assert down_result.retry_at == backoff.next_attempt and backoff.next_attempt >= before + 60.0

    await svc.run_once()
    second = state.backoff("down")
    assert second is not None and second.failures == 2 and second.next_attempt >= time.time() + 110.0


async def test_the_last_item_and_success_times_survive_a_restart(state: SourcesState) -> None:
    """What the silence and failure alerts read: the times the state remembers, the service's start
    for a source it knows nothing of, never 0 (which would make every source look silent)."""

    async def connect(source: Source) -> AsyncIterator[Yield]:
        if source.name == "down":
            yield Failure("http_status", "HTTP 503", fatal=True)
        else:
            yield found(1)

    sources = [feed("news"), feed("down"), feed("new")]
    first = SourcesMetrics(CollectorRegistry())
    svc = service(sources[:2], {"feed": connect}, state, first)
    await svc.run_once()
    svc.close()
    sent_at = sample(first, "propwatch_source_last_item_timestamp_seconds", source="news")
    read_at = sample(first, "propwatch_source_last_success_timestamp_seconds", source="news")
    assert svc.started_at <= sent_at <= read_at
    assert state.activity("news") == Activity(last_item=sent_at, last_success=read_at)
    assert state.activity("down") == Activity()

    restarted = SourcesMetrics(CollectorRegistry())
    again = service(sources, {"feed": connect}, state, restarted)
    assert sample(restarted, "propwatch_source_last_item_timestamp_seconds", source="news") == sent_at
    assert sample(restarted, "propwatch_source_last_success_timestamp_seconds", source="news") == read_at
    for name in ("down", "new"):
        for metric in ("last_item", "last_success"):
            value = sample(restarted, f"propwatch_source_{metric}_timestamp_seconds", source=name)
            assert value == again.started_at, (name, metric)
    again.close()


async def test_an_exception_in_one_connector_stops_no_other_source(
    state: SourcesState, metrics: SourcesMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(source: Source) -> AsyncIterator[Yield]:
        yield found(1, host="broken.example")
        raise RuntimeError("a bug in a connector")

    producer = RecordingProducer()
    svc = service(
        [
            FeedSource(name="broken", url="https://broken.example/f"),
            WarcSource(name="files", path=Path(__file__)),
        ],
        {"feed": broken, "warc": listed([found(n, host="files.example") for n in range(3)])},
        state,
        metrics,
        producer,
    )
    broken_result, files_result = await svc.run_once()
    assert files_result.sent == 3 and files_result.fatal is None
    assert broken_result.fatal == "read_error" and broken_result.sent == 0
    assert sample(metrics, "propwatch_source_fetch_errors_total", source="broken", reason="read_error") == 1
    assert state.backoff("broken") is not None and state.backoff("files") is None
    assert "RuntimeError: a bug in a connector" in caplog.text, "logged with its traceback"
    # what the broken pass found before the exception was not marked: the next pass sends it
    assert not any("broken.example" in (item.url or "") for item in producer.items())


async def test_items_the_broker_refused_are_sent_on_the_next_pass(
    state: SourcesState, metrics: SourcesMetrics
) -> None:
    producer = RecordingProducer()
    svc = service([feed("news")], {"feed": listed([found(1), found(2)])}, state, metrics, producer)
    producer.fail = True
    [refused] = await svc.run_once()
    assert (refused.sent, refused.fatal, refused.failures["produce_error"]) == (0, "produce_error", 1)
    assert sample(metrics, "propwatch_source_items_total", source="news") == 0
    producer.fail = False
    [result] = await svc.run_once()
    assert result.sent == 2 and result.fatal is None and state.backoff("news") is None
    assert len(producer.items()) == 2


async def test_a_large_pass_is_sent_in_acknowledged_batches(
    state: SourcesState, metrics: SourcesMetrics
) -> None:
    producer = RecordingProducer()
    svc = service([feed("big")], {"feed": listed([found(n) for n in range(250)])}, state, metrics, producer)
    [result] = await svc.run_once()
    assert result.sent == 250 and producer.flushes == [100, 100, 50]


# --- validators wait for the pass to succeed --------------------------------------------------------


FEED_URL = "https://news.example/feed.xml"


async def test_a_pass_keeps_its_validators_only_if_it_succeeds(
    state: SourcesState, metrics: SourcesMetrics
) -> None:
    producer = RecordingProducer()
    validators = PassValidators(state)  # as the fetcher gets it

    async def fetching(source: Source) -> AsyncIterator[Yield]:
        # what a fetcher does on a 200 with an ETag, then the entries of the feed
        assert validators.validators(FEED_URL) is None
        validators.remember(FEED_URL, Validators(etag='"e1"'))
        assert validators.validators(FEED_URL) == Validators(etag='"e1"')
        yield found(1)

    svc = service([feed("news")], {"feed": fetching}, state, metrics, producer)
    producer.fail = True
    await svc.run_once()
    assert state.validators(FEED_URL, source="news") is None, "the items were not sent: no 304 next time"
    producer.fail = False
    await svc.run_once()
    assert state.validators(FEED_URL, source="news") == Validators(etag='"e1"')
    assert state.validators(FEED_URL, source="other") is None, "each source has its own"


async def test_an_unchanged_file_is_not_read_again(
    state: SourcesState, metrics: SourcesMetrics, tmp_path: Path
) -> None:
    path = tmp_path / "capture.warc"
    path.write_text("first record\nsecond record\n")
    reads: list[str] = []

    def read(source: WarcSource) -> Iterator[Yield]:
        reads.append(source.name)
        for n, line in enumerate(source.path.read_text().splitlines()):
            yield Found(text=line, url=f"https://archive.example/{n}", platform="archive.example")

    connector = file_connector(read, PassValidators(state), metrics)  # type: ignore[arg-type]
    svc = service([WarcSource(name="capture", path=path)], {"warc": connector}, state, metrics)
    assert [r.sent for r in await svc.run_once()] == [2]
    assert [r.sent for r in await svc.run_once()] == [0]
    assert (
        reads == ["capture"] and sample(metrics, "propwatch_source_not_modified_total", source="capture") == 1
    )
    path.write_text("first record\nsecond record\nthird record\n")
    [result] = await svc.run_once()
    assert (result.sent, result.duplicates, reads) == (1, 2, ["capture", "capture"])
    path.unlink()
    [gone] = await svc.run_once()
    assert gone.fatal == "read_error"


# --- the schedule ------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_interval_up_to_a_cap() -> None:
    assert [backoff_delay(900.0, n) for n in (1, 2, 3)] == [900.0, 1800.0, 3600.0]
    assert backoff_delay(900.0, 10) == BACKOFF_CAP_S == backoff_delay(900.0, 10_000)
    assert backoff_delay(2 * 86400.0, 5) == 2 * 86400.0, (
        "a source read less often than the cap keeps its interval"
    )


async def test_run_reads_each_source_on_its_schedule_until_stopped(
    state: SourcesState, metrics: SourcesMetrics
) -> None:
    stop = asyncio.Event()
    passes: dict[str, int] = {"fast": 0, "waiting": 0}

    async def counting(source: Source) -> AsyncIterator[Yield]:
        passes[source.name] += 1
        if passes["fast"] == 3:
            stop.set()
        yield found(passes[source.name], host=f"{source.name}.example")

    state.failed("waiting", "timeout", lambda failures: 3600.0)  # backed off before the restart
    svc = service(
        [feed("fast", every="0.01s", expect_items_within="1s"), feed("waiting")],
        {"feed": counting},
        state,
        metrics,
    )
    await asyncio.wait_for(svc.run(stop), timeout=60)
    assert passes == {"fast": 3, "waiting": 0}
    assert svc.results["fast"].sent == 1


async def test_health_and_metrics_are_served(state: SourcesState, metrics: SourcesMetrics) -> None:
    svc = service([feed("news"), feed("off", enabled=False)], {"feed": listed([found(1)])}, state, metrics)
    await svc.run_once()
    async with TestClient(TestServer(web_app(svc))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
        assert 'propwatch_source_items_total{source="news"} 1.0' in text
        assert 'propwatch_source_expected_interval_seconds{source="news"} 86400.0' in text
        assert 'source="off"' not in text
        response = await client.get("/health")
        assert response.status == 200
        body = json.loads(await response.text())
        assert body["status"] == "ok" and body["sources"] == {
            "news": {"last_pass": "ok", "failures_in_a_row": 0, "next_attempt": None}
        }


def test_the_fetch_policy_comes_from_sources_yml() -> None:
    fetch = FetchConfig(
        connect_timeout="5s",
        read_timeout="20s",
        total_timeout="1m",
        max_bytes=100_000,
        max_redirects=2,
        per_host_delay="3s",
        allow_private_addresses=True,
    )
    policy = fetch_policy(SourcesConfig(path=Path("SOURCES.yml"), unit="IRU-Test", fetch=fetch, sources=()))
    assert policy.user_agent.startswith("propwatch/") and "IRU-Test" in policy.user_agent
    assert (policy.connect_timeout_s, policy.read_timeout_s, policy.total_timeout_s) == (5.0, 20.0, 60.0)
    assert (policy.max_bytes, policy.max_redirects, policy.per_host_delay_s) == (100_000, 2, 3.0)
    assert policy.allow_private_addresses is True
    default = fetch_policy(config())
    assert default.allow_private_addresses is False, "public addresses only unless SOURCES.yml says so"


async def test_the_bundled_files_go_through_the_real_readers(
    state: SourcesState, metrics: SourcesMetrics, tmp_path: Path
) -> None:
    """The default connectors (no web source, so no request) on the WARC and export fixtures."""
    fixtures = Path(__file__).parents[1] / "fixtures" / "sources"
    path = tmp_path / "SOURCES.yml"
    path.write_text(
        "unit: IRU-Test\nsources:\n"
        f"  - {{name: capture, kind: warc, path: {fixtures / 'capture.warc.gz'}}}\n"
        f"  - {{name: channel, kind: telegram, path: {fixtures / 'telegram' / 'result.json'},"
        " channel_url: 'https://t.me/examplechannel'}\n"
        f"  - {{name: server, kind: discord, path: {fixtures / 'discord' / 'export.json'}}}\n"
    )
    producer = RecordingProducer()
    svc = SourcesService(load_config(path), Settings(), producer, metrics, state)  # type: ignore[arg-type]
    first = await svc.run_once()
    assert all(r.sent > 0 and r.fatal is None for r in first), [r.summary() for r in first]
    items = producer.items()  # each parsed as the worker does
    assert len(items) == sum(r.sent for r in first) == len({item.id for item in items})
    assert {item.metadata["source"] for item in items} == {"capture", "channel", "server"}
    assert any(item.url and item.url.startswith("https://t.me/examplechannel/") for item in items)
    assert {item.lang for item in items} >= {"en", "nl"}
    second = await svc.run_once()
    assert [r.sent for r in second] == [0, 0, 0]
    for name in ("capture", "channel", "server"):
        assert sample(metrics, "propwatch_source_not_modified_total", source=name) == 1
    svc.close()
