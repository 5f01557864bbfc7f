"""Prometheus metrics of the worker, the review console and the sources service, each in one container
built per registry (one per test)."""

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


DECISION_ROLES = ("reviewer", "supervisor")
"""The console's roles that decide (an auditor only reads)."""
TIME_TO_DECISION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0)
LOGIN_OUTCOMES = ("success", "failure", "throttled")
"""``throttled``: refused without a password check, after too many failures for the user name or
from the address (``streams/console/throttle.py``)."""
USERS_FILE_OUTCOMES = ("reloaded", "invalid")
"""The console's users file read again after it changed: ``invalid``, the users before it stay."""
CONSOLE_FOLLOWED = ("review", "decisions")
"""The topics the console reads whole (short names)."""
CONSOLE_REFUSALS = ("csrf", "claimed", "forbidden", "invalid")
"""Why the console refused a form: a missing or wrong CSRF token, an item claimed by someone
else, a role that may not do it, a form that does not make a valid decision."""


class ConsoleMetrics:
    """What the review console exports (``propwatch console``, its own /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.pending_reviews = Gauge(
            "console_pending_reviews",
            "Reviews on the review topic with no decision in force (the queue's depth).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.oldest_pending_review_age = Gauge(
            "console_oldest_pending_review_age_seconds",
            "Age of the oldest pending review (since it was queued); 0 when none is pending.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.claimed_reviews = Gauge(
            "console_claimed_reviews",
            "Pending reviews claimed by a reviewer now.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.decisions = Counter(
            "console_decisions",
            "Decisions written by this console, by the decider's role and the outcome.",
            ["role", "outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.time_to_decision = Histogram(
            "console_time_to_decision_seconds",
            "From a review's queueing to its decision, for decisions written by this console.",
            namespace=NAMESPACE,
            registry=r,
            buckets=TIME_TO_DECISION_BUCKETS,
        )
        self.logins = Counter(
            "console_logins", "Login attempts, by outcome.", ["outcome"], namespace=NAMESPACE, registry=r
        )
        self.refused = Counter(
            "console_refused_forms",
            "Forms the console refused, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.followed_invalid = Counter(
            "console_followed_invalid_records",
            "Records on the review and decisions topics the console skipped, by topic: not valid "
            "records, or (with the decision key set) decisions whose signature does not hold.",
            ["topic"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.follower_ready = Gauge(
            "console_follower_ready",
            "1 once the console has read a topic (review, decisions) to the end it had at start.",
            ["topic"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.send_errors = Counter(
            "console_decision_send_errors",
            "Decisions the console failed to write to the decisions topic (the reviewer is told, "
            "and the item stays pending).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.users_file_reloads = Counter(
            "console_users_file_reloads",
            "Times the console read its users file again after it changed, by outcome: reloaded, or "
            "invalid (not a users file: the users read before stay until it changes again).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        for outcome in USERS_FILE_OUTCOMES:
            self.users_file_reloads.labels(outcome=outcome)
        for topic in CONSOLE_FOLLOWED:
            self.followed_invalid.labels(topic=topic)
            self.follower_ready.labels(topic=topic)
        for role in DECISION_ROLES:
            for outcome in DECISIONS:
                self.decisions.labels(role=role, outcome=outcome)
        for outcome in LOGIN_OUTCOMES:
            self.logins.labels(outcome=outcome)
        for reason in CONSOLE_REFUSALS:
            self.refused.labels(reason=reason)

    def render(self) -> bytes:
        """The text exposition format, for /metrics."""
        return generate_latest(self.registry)


FETCH_ERRORS = (
    "invalid_url",
    "blocked_address",
    "robots_disallowed",
    "connect_error",
    "timeout",
    "too_many_redirects",
    "too_large",
    "http_status",
    "invalid_content",
    "read_error",
    "produce_error",
)
"""Why a source's fetch or read failed (``streams.sources``): the ``reason`` label, a fixed set."""
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SourcesMetrics:
    """What the sources service exports (``propwatch sources run``, its own /metrics). Label
    ``source`` is a source's name from SOURCES.yml: a set the operator writes and bounds."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.items = Counter(
            "source_items",
            "Content items sent to the content topic, by source.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.duplicates = Counter(
            "source_duplicates",
            "Items found again (same normalised URL and content hash) and not sent, by source.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.fetch_errors = Counter(
            "source_fetch_errors",
            "Failed fetches and reads, by source and reason.",
            ["source", "reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.fetch_seconds = Histogram(
            "source_fetch_seconds",
            "Wall time of one HTTP fetch (a feed, a page, a sitemap, robots.txt), by source.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
            buckets=FETCH_BUCKETS,
        )
        self.not_modified = Counter(
            "source_not_modified",
            "Reads that found nothing changed since the last pass, by source: conditional requests "
            "answered 304 Not Modified, and files of the same size and modification time.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.last_success = Gauge(
            "source_last_success_timestamp_seconds",
            "When a pass last read a source without a failure of the source itself (epoch seconds; "
            "kept across restarts; the service's start for a source never read yet).",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.expected_interval = Gauge(
            "source_expected_interval_seconds",
            "How often a source is expected to produce an item (its `expect_items_within`), for the alert.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.last_item = Gauge(
            "source_last_item_timestamp_seconds",
            "When a source last sent a new item (epoch seconds; kept across restarts; the service's "
            "start for a source that never sent one).",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
        )

    def declare(
        self, source: str, expected_interval_s: float, *, last_item: float, last_success: float
    ) -> None:
        """Export every series of ``source`` from the start, so that alerts see it: the two
        timestamps as the state remembers them (or the service's start, when it does not), so that
        ``time() - timestamp`` is never the age of the epoch."""
        self.items.labels(source=source)
        self.duplicates.labels(source=source)
        self.not_modified.labels(source=source)
        self.fetch_seconds.labels(source=source)
        for reason in FETCH_ERRORS:
            self.fetch_errors.labels(source=source, reason=reason)
        self.expected_interval.labels(source=source).set(expected_interval_s)
        self.last_item.labels(source=source).set(last_item)
        self.last_success.labels(source=source).set(last_success)

    def render(self) -> bytes:
        """The text exposition format, for /metrics."""
        return generate_latest(self.registry)
