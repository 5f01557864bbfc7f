"""The Faust app factory: one app per settings object, so tests can build their own."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from classifiers.base import LABELS, Classifier
from classifiers.policy import Policy
from streams.kafka import transport
from streams.kafka.follower import TopicFollower, Warden
from streams.kafka.topics import CONTENT, DECISIONS, HASHBANK, REVIEW, TOPICS, TopicSpec
from streams.known_content.files import load_bank_file
from streams.known_content.index import HashBank
from streams.metrics import AGENTS, Metrics
from streams.pipeline.agents import Fatal, InFlight, install_agent
from streams.pipeline.builder import RecordBuilder
from streams.pipeline.delivery import count_delivered, send_all
from streams.pipeline.processor import ContentProcessor, Limits
from streams.pipeline.scoring import Scorer, model_ref
from streams.records import ErrorCode, utc_now
from streams.review.decisions import DecisionProcessor
from streams.review.log import DecisionLog
from streams.review.queue import ReviewQueue
from streams.settings import Settings

PROBE_INTERVAL_S = 2.0
CLIENT_LOGGERS = ("aiokafka", "kafka")
"""The Kafka clients' loggers write whole fetched records (item text, authors) at debug: they stay
at info whatever ``PROPWATCH_LOG_LEVEL`` says, so that no log level puts content in the log."""


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
    this worker's committed offset, as Faust's monitor tracks them. A committed offset is already
    the next one to read, so nothing is subtracted."""
    committed = app.monitor.tp_committed_offsets
    metrics.consumer_lag.clear()
    for tp in app.consumer.assignment():
        if tp.topic not in content.topics:
            continue
        end = app.consumer.highwater(tp)
        if end is None:
            continue
        lag = end - committed.get(tp, 0)
        metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, lag))


@dataclass
class Pipeline:
    """A built worker: the Faust app and what tests and the CLI reach into."""

    app: faust.App
    topics: dict[TopicSpec, faust.TopicT]
    processor: ContentProcessor
    agent: faust.types.AgentT
    metrics: Metrics
    bank: HashBank
    reviews: ReviewQueue
    decisions: DecisionProcessor
    followers: dict[str, TopicFollower]
    fatal: Fatal


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
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
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
        producer_max_request_size=settings.max_message_bytes,
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
            partitions=spec.partitions or settings.partitions,
        )
        for spec in TOPICS
    }
    reviews = ReviewQueue(LABELS)
    decision_log = DecisionLog(LABELS, settings.decision_keys())
    followers = {
        HASHBANK.name: TopicFollower(
            settings,
            HASHBANK.name,
            lambda record: bank.apply_record(record.value),
            invalid_code=ErrorCode.INVALID_HASHBANK_RECORD,
            metrics=metrics,
        ),
        REVIEW.name: TopicFollower(
            settings,
            REVIEW.name,
            reviews.apply,
            invalid_code=ErrorCode.INVALID_REVIEW_RECORD,
            metrics=metrics,
        ),
        DECISIONS.name: TopicFollower(
            settings,
            DECISIONS.name,
            decision_log.apply,
            invalid_code=ErrorCode.INVALID_DECISION,
            metrics=metrics,
            partitions=DECISIONS.partitions,
        ),
    }
    fatal = Fatal()
    policy = Policy.for_labels(classifier.labels, settings.thresholds, settings.review_thresholds)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="propwatch-inference")
    processor = ContentProcessor(
        Scorer(classifier, executor, metrics, shadow=shadow, backend=settings.backend),
        policy,
        RecordBuilder(
            model_ref(classifier),
            policy,
            backend=settings.backend,
            actor=actor,
            author_key=(
                settings.author_hash_key.get_secret_value().encode() if settings.author_hash_key else None
            ),
        ),
        bank,
        metrics,
        Limits(settings.max_text_bytes, settings.max_message_bytes),
        learn=settings.hashbank_learn,
        ready=followers[HASHBANK.name].ready if follow else None,
    )
    inflight = {name: InFlight() for name in AGENTS}
    for name, batches in inflight.items():
        metrics.oldest_unacked_batch.labels(agent=name).set_function(batches.oldest_age)
    agent = install_agent(
        app,
        topics[CONTENT],
        topics,
        processor,
        name="classify",
        batch_size=settings.batch_size,
        batch_wait_s=settings.batch_wait_s,
        fatal=fatal,
        inflight=inflight["classify"],
    )
    decisions = DecisionProcessor(
        reviews,
        decision_log,
        reviews_follower=followers[REVIEW.name] if follow else None,
        log_follower=followers[DECISIONS.name] if follow else None,
        metrics=metrics,
        actor=actor,
        learn=settings.hashbank_learn,
        max_message_bytes=settings.max_message_bytes,
        retention_s=settings.decided_review_retention_h * 3600,
    )
    install_agent(
        app,
        topics[DECISIONS],
        topics,
        decisions,
        name="decide",
        batch_size=64,
        batch_wait_s=settings.batch_wait_s,
        fatal=fatal,
        inflight=inflight["decide"],
    )
    decisions_topic = settings.topic(DECISIONS.name)
    warden = Warden(
        list(followers.values()),
        lambda: any(tp.topic == decisions_topic for tp in app.consumer.assignment()),
    )
    if follow:
        for follower in followers.values():
            app.task(follower.run)

        @app.timer(PROBE_INTERVAL_S)
        async def dead_letter_invalid_followed() -> None:
            due = warden.due(utc_now())
            if due:
                outputs = [output for _, output in due]
                await send_all(topics, outputs)
                count_delivered(metrics, outputs)
                warden.sent([key for key, _ in due])

    metrics.model.info({"name": classifier.name, "revision": classifier.revision})
    if shadow is not None:
        metrics.shadow_model.info({"name": shadow.name, "revision": shadow.revision})

    @app.page("/metrics")
    async def metrics_view(self: View, request: Request) -> Response:
        return self.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    probe = BrokerProbe(metrics)

    def followers_ready() -> bool:
        return not follow or all(f.ready.is_set() for f in followers.values())

    @app.timer(PROBE_INTERVAL_S)
    async def probe_brokers() -> None:
        await probe.check(app)
        metrics.ready.set(
            int(probe.connected and followers_ready() and not app.rebalancing and not fatal.reason)
        )
        update_lag(app, topics[CONTENT], metrics)

    @app.page("/health")
    async def health_view(self: View, request: Request) -> Response:
        # Until the followed topics are read the worker decides nothing; after a fatal failure it
        # is stopping: not healthy either way.
        healthy = probe.connected and followers_ready() and fatal.reason is None
        body = {
            "status": "ok" if healthy else "unavailable",
            "broker": probe.detail,
            "fatal": fatal.reason,
            "hashbank": {
                "entries": len(bank),
                "loaded": not follow or followers[HASHBANK.name].ready.is_set(),
            },
            "followers": {
                name: {"ready": not follow or f.ready.is_set(), "skipped": f.skipped}
                for name, f in followers.items()
            },
            "reviews": {"held": len(reviews.records), "closed": len(reviews.closed)},
            "oldest_unacked_batch_s": {name: round(b.oldest_age(), 3) for name, b in inflight.items()},
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
        followers=followers,
        fatal=fatal,
    )
