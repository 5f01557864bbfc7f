"""The worker's Prometheus metrics, in one container built per registry (one per test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

from classifiers.base import LABELS
from streams.records import DECISIONS, MATCH_TYPES, ErrorCode, Stage

NAMESPACE = "propwatch"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)
ROLES = ("live", "shadow")
AGENTS = ("classify", "decide")
"""The worker's agents: content items, and reviewers' decisions."""
FOLLOWED = ("hashbank", "review", "decisions")
"""The topics every worker reads whole (short names)."""
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class Metrics:
    """Every metric the worker exports; label values come from small fixed sets only."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.items_consumed = Counter(
            "items_consumed", "Content messages consumed.", namespace=NAMESPACE, registry=r
        )
        self.referred = Counter(
            "referred",
            "Items referred, counted once per taxonomy label over its threshold.",
            ["label"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.referrals = Counter("referrals", "Referral records sent.", namespace=NAMESPACE, registry=r)
        self.cleared = Counter("cleared", "Cleared records sent.", namespace=NAMESPACE, registry=r)
        self.dead_lettered = Counter(
            "dead_lettered",
            "Items sent to the dead-letter topic, by error code.",
            ["code"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "inference_seconds",
            "Wall time of one classifier call on a batch.",
            namespace=NAMESPACE,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "batch_size_items",
            "Items per batch taken from the content topic.",
            namespace=NAMESPACE,
            registry=r,
            buckets=BATCH_BUCKETS,
        )
        self.end_to_end_seconds = Histogram(
            "end_to_end_seconds",
            "From an item's start to its output acknowledged by the broker; start is `produced` "
            "(the content message's timestamp) or `observed` (the item's observed_at).",
            ["start"],
            namespace=NAMESPACE,
            registry=r,
            buckets=END_TO_END_BUCKETS,
        )
        self.score = Histogram(
            "score",
            "Classifier scores per taxonomy label, for drift.",
            ["label"],
            namespace=NAMESPACE,
            registry=r,
            buckets=SCORE_BUCKETS,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_messages",
            "Messages on the content topic not yet committed by this worker, per assigned partition.",
            ["topic", "partition"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.ready = Gauge(
            "worker_ready",
            "1 while the worker reaches the brokers and is not rebalancing, else 0.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.model = Info("model", "The classifier in use.", namespace=NAMESPACE, registry=r)
        self.broker_connected = Gauge(
            "broker_connected",
            "1 while the worker's last metadata request to the brokers succeeded, else 0.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.review_queued = Counter(
            "review_queued",
            "Items sent to the review topic for a person to decide.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.decisions = Counter(
            "review_decisions",
            "Reviewers' decisions applied, by decision (approve, reject).",
            ["decision"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.hashbank_matches = Counter(
            "hashbank_matches",
            "Items referred as known content without inference, by match type (exact, near).",
            ["type"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.hashbank_entries = Gauge(
            "hashbank_entries", "Entries in this worker's hash bank.", namespace=NAMESPACE, registry=r
        )
        self.model_scored = Counter(
            "model_scored",
            "Items scored, by model role (live, shadow).",
            ["role"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.model_flagged = Counter(
            "model_flagged",
            "Items scored with at least one label at its referral threshold, by model role (live, shadow).",
            ["role"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.shadow_agreed = Counter(
            "shadow_agreed",
            "Items on which the shadow model and the live model agree on flag or not.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.shadow_errors = Counter(
            "shadow_errors", "Batches the shadow model failed to score.", namespace=NAMESPACE, registry=r
        )
        self.shadow_model = Info(
            "shadow_model", "The shadow model, if one is configured.", namespace=NAMESPACE, registry=r
        )
        self.internal_errors = Counter(
            "internal_errors",
            "Failures of propwatch's own code on one message, by stage; the message is dead-lettered "
            "as internal_error (or, when learning into the hash bank failed, only the bank misses it).",
            ["stage"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.oldest_unacked_batch = Gauge(
            "oldest_unacked_batch_age_seconds",
            "Age of the oldest batch an agent has taken and not yet acknowledged (0: none): grows "
            "without bound when a worker is stuck, whatever the reason.",
            ["agent"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.followed_invalid = Counter(
            "followed_invalid_records",
            "Records on a topic every worker reads whole that are not valid (forged or corrupt), by "
            "topic; skipped, and dead-lettered by one worker.",
            ["topic"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.follower_ready = Gauge(
            "follower_ready",
            "1 once this worker has read a followed topic to the end it had at start, by topic.",
            ["topic"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.decision_replays = Counter(
            "review_decision_replays",
            "Decisions received again (the same decision_id as the one in force): nothing new is written.",
            namespace=NAMESPACE,
            registry=r,
        )
        for stage in Stage:
            self.internal_errors.labels(stage=str(stage))
        for topic in FOLLOWED:
            self.followed_invalid.labels(topic=topic)
            self.follower_ready.labels(topic=topic)
        for role in ROLES:
            self.model_scored.labels(role=role)
            self.model_flagged.labels(role=role)
        for match_type in MATCH_TYPES:
            self.hashbank_matches.labels(type=match_type)
        for decision in DECISIONS:
            self.decisions.labels(decision=decision)
        for label in LABELS:
            self.referred.labels(label=label)
            self.score.labels(label=label)
        for start in ("produced", "observed"):
            self.end_to_end_seconds.labels(start=start)
        for code in ErrorCode:
            self.dead_lettered.labels(code=str(code))

    def render(self) -> bytes:
        """The text exposition format, for /metrics."""
        return generate_latest(self.registry)
