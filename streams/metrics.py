"""The worker's Prometheus metrics, in one container built per registry (one per test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

from classifiers.base import LABELS
from streams.records import ErrorCode

NAMESPACE = "propwatch"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


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
        self.model = Info("model", "The classifier in use.", namespace=NAMESPACE, registry=r)
        self.broker_connected = Gauge(
            "broker_connected",
            "1 while the worker's last metadata request to the brokers succeeded, else 0.",
            namespace=NAMESPACE,
            registry=r,
        )
        for label in LABELS:
            self.referred.labels(label=label)
        for code in ErrorCode:
            self.dead_lettered.labels(code=str(code))

    def render(self) -> bytes:
        """The text exposition format, for /metrics."""
        return generate_latest(self.registry)
