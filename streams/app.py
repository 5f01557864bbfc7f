"""The Faust app factory: one app per settings object, so tests can build their own."""

from __future__ import annotations

import asyncio
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from classifiers.base import LABELS, Classifier
from streams import transport
from streams.agents import BatchProcessor, install_agent
from streams.followers import TopicFollower
from streams.hashbank import HashBank, load_bank_file
from streams.metrics import Metrics
from streams.review import DecisionProcessor, ReviewQueue
from streams.settings import Settings
from streams.topics import CONTENT, DECISIONS, HASHBANK, REVIEW, TOPICS, TopicSpec

PROBE_INTERVAL_S = 2.0


class BrokerProbe:
    """Whether the worker reaches the brokers: a metadata request every couple of seconds over
    the producer's own connections, so /health turns 503 while the brokers are unreachable."""

    def __init__(self, metrics: Metrics, timeout_s: float = PROBE_INTERVAL_S) -> None:
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.connected = False
        self.detail = "not checked yet"

    async def check(self, app: faust.App) -> None:
        try:
            # faust's aiokafka Producer keeps the aiokafka producer (and its client) here.
            client = app.producer._producer.client  # type: ignore[attr-defined]
            await asyncio.wait_for(client.fetch_all_metadata(), self.timeout_s)
        except Exception as exc:  # any failure means: not connected
            self.connected, self.detail = False, f"brokers unreachable: {type(exc).__name__}"
        else:
            self.connected, self.detail = True, "connected"
        self.metrics.broker_connected.set(int(self.connected))


def update_lag(app: faust.App, content: faust.TopicT, metrics: Metrics) -> None:
    """Consumer lag per assigned content partition: the partition's end offset (highwater) less
    this worker's committed offset, as Faust's monitor tracks them."""
    committed = app.monitor.tp_committed_offsets
    metrics.consumer_lag.clear()
    for tp in app.consumer.assignment():
        if tp.topic not in content.topics:
            continue
        end = app.consumer.highwater(tp)
        if end is None:
            continue
        done = committed.get(tp)
        lag = end - (done + 1 if done is not None else 0)
        metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, lag))


@dataclass
class Pipeline:
    """A built worker: the Faust app and what tests and the CLI reach into."""

    app: faust.App
    topics: dict[TopicSpec, faust.TopicT]
    processor: BatchProcessor
    agent: faust.types.AgentT
    metrics: Metrics
    bank: HashBank
    reviews: ReviewQueue
    decisions: DecisionProcessor


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The broker credentials Faust passes to aiokafka, from the security settings."""
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_pipeline(
    settings: Settings,
    classifier: Classifier,
    metrics: Metrics | None = None,
    *,
    shadow: Classifier | None = None,
    follow: bool = True,
) -> Pipeline:
    """Build the worker for ``settings`` around ``classifier`` (and a ``shadow`` candidate).

    ``follow`` reads the hashbank and review topics whole in the background (every worker keeps
    its own bank and review queue); unit tests without a broker turn it off.
    """
    metrics = metrics or Metrics()
    bank = HashBank(threshold=settings.hashbank_similarity)
    if settings.hashbank_file is not None:
        load_bank_file(settings.hashbank_file, bank)
    metrics.hashbank_entries.set_function(lambda: len(bank))
    actor = f"propwatch-worker {settings.group_id}@{socket.gethostname()}"
    app = faust.App(
        settings.group_id,
        broker=";".join(f"kafka://{host}" for host in settings.bootstrap.split(",")),
        broker_credentials=faust_credentials(settings),
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        datadir=str(settings.data_dir),
        autodiscover=False,
        store="memory://",
    )
    transport.install(app)
    topics = {
        spec: app.topic(
            settings.topic(spec.name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        for spec in TOPICS
    }
    bank_follower = TopicFollower(settings, settings.topic(HASHBANK.name), bank.apply_record)
    reviews = ReviewQueue()
    review_follower = TopicFollower(settings, settings.topic(REVIEW.name), reviews.apply)
    processor = BatchProcessor(
        classifier,
        thresholds=settings.thresholds,
        max_text_bytes=settings.max_text_bytes,
        metrics=metrics,
        executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="propwatch-inference"),
        author_key=(
            settings.author_hash_key.get_secret_value().encode() if settings.author_hash_key else None
        ),
        review_thresholds=settings.review_thresholds,
        bank=bank,
        learn=settings.hashbank_learn,
        shadow=shadow,
        backend=settings.backend,
        actor=actor,
        ready=bank_follower.ready if follow else None,
    )
    agent = install_agent(
        app,
        topics[CONTENT],
        topics,
        processor,
        name="classify",
        batch_size=settings.batch_size,
        batch_wait_s=settings.batch_wait_s,
    )
    decisions = DecisionProcessor(
        reviews,
        review_follower if follow else None,
        labels=LABELS,
        metrics=metrics,
        actor=actor,
        learn=settings.hashbank_learn,
    )
    install_agent(
        app,
        topics[DECISIONS],
        topics,
        decisions,
        name="decide",
        batch_size=64,
        batch_wait_s=settings.batch_wait_s,
    )
    if follow:
        app.task(bank_follower.run)
        app.task(review_follower.run)
    metrics.model.info({"name": classifier.name, "revision": classifier.revision})
    if shadow is not None:
        metrics.shadow_model.info({"name": shadow.name, "revision": shadow.revision})

    @app.page("/metrics")
    async def metrics_view(self: View, request: Request) -> Response:
        return self.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    probe = BrokerProbe(metrics)

    def bank_loaded() -> bool:
        return not follow or bank_follower.ready.is_set()

    @app.timer(PROBE_INTERVAL_S)
    async def probe_brokers() -> None:
        await probe.check(app)
        metrics.ready.set(int(probe.connected and bank_loaded() and not app.rebalancing))
        update_lag(app, topics[CONTENT], metrics)

    @app.page("/health")
    async def health_view(self: View, request: Request) -> Response:
        # Until the bank has read the hashbank topic the worker classifies nothing: not healthy.
        healthy = probe.connected and bank_loaded()
        body = {
            "status": "ok" if healthy else "unavailable",
            "broker": probe.detail,
            "hashbank": {"entries": len(bank), "loaded": bank_loaded()},
            "model": {"name": classifier.name, "revision": classifier.revision},
            "shadow_model": {"name": shadow.name, "revision": shadow.revision} if shadow else None,
        }
        return self.bytes(
            json.dumps(body).encode(), content_type="application/json", status=200 if healthy else 503
        )

    return Pipeline(
        app=app,
        topics=topics,
        processor=processor,
        agent=agent,
        metrics=metrics,
        bank=bank,
        reviews=reviews,
        decisions=decisions,
    )
