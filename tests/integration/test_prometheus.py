"""The dashboard's and the alerts' PromQL on a real Prometheus that scrapes a real worker.

A worker classifies a few hundred items (some invalid) while a Prometheus server (the Debian
package's ``/usr/bin/prometheus``, on a free loopback port, its data in ``tmp_path``) scrapes it
every second and evaluates ``deploy/prometheus/alerts.yml``. Beside it, as the scrape job
``propwatch-console``, the review console's metrics container (``ConsoleMetrics``) served by
``prometheus_client``'s own HTTP server, with a queue and a few decisions recorded in it: the
console panels and alerts read exactly what that registry exposes; likewise the sources service's
(``SourcesMetrics``, one source declared and a pass recorded in it) as the job
``propwatch-sources``. Every panel query and every alert expression must then evaluate without
error; every panel must show data, the rules must all be loaded and healthy, and a healthy worker,
console and sources service must raise no alert. Then a record on the
hashbank topic that is not an entry must be found by its alert's expression.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from streams.dev.broker import free_port
from streams.io import produce_lines
from streams.metrics import AGENTS, CONSOLE_FOLLOWED, FOLLOWED, ConsoleMetrics, SourcesMetrics
from tests.integration.conftest import Deployment
from tests.unit.test_observability import (
    ALERTS,
    CONSOLE_JOB,
    INSTALL_HINT,
    JOB,
    SOURCES_JOB,
    alert_rules,
    dashboard_queries,
    substitute_variables,
)

SCRAPE_INTERVAL_S = 1
VALID = 300
WARMUP = 4  # valid items sent first (before the first invalid one)
INVALID = [
    b'{"id": "bad-json", "text": "unterminated',
    b'["not", "an", "object"]',
    b'{"text": "no id here"}',
    b'{"id": "bad-missing"}',
    b'{"id": "bad-type", "text": ["a", "list"]}',
    b'{"id": "bad-blank", "text": " \\t\\n  "}',
    b'{"id": "bad-time", "text": "fine text", "observed_at": "yesterday"}',
    b'{"id": "bad-field", "text": "fine text", "url": 42}',
]
# Panels that must show data after the run, not merely evaluate.
MUST_HAVE_DATA = (
    "Consumed",
    "Throughput",
    "End-to-end latency (produced → verdict)",
    "Inference time per batch",
)

# What the console's registry holds during the run: a queue of 3 whose oldest review is 10 minutes
# old, one of them claimed; then two decisions, 2 and 15 minutes after their reviews were queued.
PENDING, OLDEST_S, CLAIMED = 3, 600.0, 1
TIMES_TO_DECISION_S = (120.0, 900.0)
# What the sources service's registry holds: one source, expected to send within a day, and one
# pass after the first scrape: items sent and found again, a 304, four requests, a failed page.
SOURCE, SOURCE_ITEMS, SOURCE_DUPLICATES, SOURCE_FETCHES_S = "news", 3, 2, (0.2, 0.3, 0.4, 1.5)

# Alerts this run must not even make pending: 8 of 308 items dead-lettered (under 5%), a backlog
# of at most 308 (under 1000), too little traffic for the flag-rate baseline, verdicts in seconds,
# batches acknowledged in seconds, no bug, nothing on the followed topics but what is valid, and
# each followed topic read within seconds of the start; a console scraped, whose oldest review is
# minutes old, and no decision without a signature.
QUIET_ON_THIS_RUN = {
    "PropwatchDeadLetterRateHigh",
    "PropwatchLagGrowing",
    "PropwatchFlagRateAnomaly",
    "PropwatchLatencySLOBreached",
    "PropwatchWorkerStalled",
    "PropwatchInternalErrors",
    "PropwatchInvalidFollowedRecords",
    "PropwatchFollowerNotReady",
    "PropwatchConsoleDown",
    "PropwatchReviewWaitingTooLong",
    "PropwatchUnsignedDecisions",
    "PropwatchSourcesDown",
    "PropwatchSourceSilent",
    "PropwatchSourceFailing",
}


def item(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"prom-{i:04d}",
            "text": f"Item {i}: " + ("the council meets on tuesday to discuss the budget " * (1 + i % 5)),
            "platform": "forum",
            "lang": "en",
            "observed_at": "2026-11-20T09:14:03Z",
        }
    ).encode()


class Prometheus:
    """A Prometheus server's HTTP API."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400/422: the API's JSON error
            body = json.loads(error.read() or b"{}")
            body.setdefault("error", str(error))
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query", query=expr)

    def value(self, expr: str) -> float | None:
        """The single value of a one-series query, None when there is none."""
        result = self.query(expr)
        assert result.get("status") == "success", (expr, result)
        series = result["data"]["result"]
        return float(series[0]["value"][1]) if series else None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def scraped(prometheus: Prometheus, metric: str, matchers: str = "", job: str = JOB) -> float:
    """The sum of a metric's last scraped values over the worker(s) (or the targets of ``job``),
    0 before the first."""
    selector = f'job="{job}"' + (f", {matchers}" if matchers else "")
    return prometheus.value(f"sum({metric}{{{selector}}})") or 0.0


def _wait(condition: Any, timeout_s: float, what: str, prometheus: Prometheus | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    tail = f"\nprometheus log:\n{prometheus.log_tail()}" if prometheus else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{tail}")


@contextmanager
def serve_metrics(metrics: ConsoleMetrics | SourcesMetrics) -> Iterator[str]:
    """A process's registry (the console's, the sources service's) on /metrics of a free loopback
    port (``host:port``), as a scrape target; always stopped on exit."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def run_prometheus(workdir: Path, jobs: dict[str, list[str]]) -> Iterator[Prometheus]:
    """A Prometheus server scraping each job's targets every second, with the alert rules
    loaded; always stopped on exit."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail(f"the prometheus server is not installed. {INSTALL_HINT}")
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
        ],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited {process.returncode}:\n{prometheus.log_tail()}"
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        _wait(ready, 30, "prometheus to be ready", prometheus)
        yield prometheus
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_dashboard_and_alert_queries_on_a_real_prometheus(deployment: Deployment, tmp_path: Path) -> None:
    worker = deployment.start_worker(PROPWATCH_BATCH_SIZE="32")
    console = ConsoleMetrics()
    for topic in CONSOLE_FOLLOWED:
        console.follower_ready.labels(topic=topic).set(1)
    console.pending_reviews.set(PENDING)
    console.oldest_pending_review_age.set(OLDEST_S)
    console.claimed_reviews.set(CLAIMED)
    sources = SourcesMetrics()
    started = time.time()
    sources.declare(SOURCE, 86400.0, last_item=started, last_success=started)
    with (
        serve_metrics(console) as console_target,
        serve_metrics(sources) as sources_target,
        run_prometheus(
            tmp_path / "prometheus",
            {
                JOB: [f"127.0.0.1:{worker.web_port}"],
                CONSOLE_JOB: [console_target],
                SOURCES_JOB: [sources_target],
            },
        ) as prometheus,
    ):
        for job in (JOB, CONSOLE_JOB, SOURCES_JOB):
            _wait(
                lambda job=job: prometheus.value(f'up{{job="{job}"}}') == 1.0,
                30,
                f"the first successful scrape of job {job}",
                prometheus,
            )
        # Decisions after the console's first scrape, so that rate() sees them.
        for seconds in TIMES_TO_DECISION_S:
            console.decisions.labels(role="reviewer", outcome="approve").inc()
            console.time_to_decision.observe(seconds)
        console.logins.labels(outcome="success").inc()
        # A pass of the source, as the service records it.
        for seconds in SOURCE_FETCHES_S:
            sources.fetch_seconds.labels(source=SOURCE).observe(seconds)
        sources.not_modified.labels(source=SOURCE).inc()
        sources.fetch_errors.labels(source=SOURCE, reason="timeout").inc()
        sources.duplicates.labels(source=SOURCE).inc(SOURCE_DUPLICATES)
        sources.items.labels(source=SOURCE).inc(SOURCE_ITEMS)
        sources.last_item.labels(source=SOURCE).set(time.time())
        sources.last_success.labels(source=SOURCE).set(time.time())

        lines = [item(i) for i in range(VALID)]
        for position, bad in enumerate(INVALID):  # among the valid ones, sharing their batches
            lines.insert(position * 37 + 5, bad)
        total = VALID + len(INVALID)
        # Two waves: the labelled histograms (end-to-end, score) get their series with the first
        # observation, and rate() cannot see what a series held when it first appeared; the
        # second wave is what the panels show, as after any worker's first minutes.
        first, second = lines[:WARMUP], lines[WARMUP:]
        assert produce_lines(deployment.settings, first).sent == len(first)
        deployment.read_outputs(expected=len(first))
        _wait(
            lambda: (
                scraped(prometheus, "propwatch_end_to_end_seconds_count", 'start="produced"') >= len(first)
            ),
            30,
            "the first wave in the scraped end-to-end histogram",
            prometheus,
        )
        report = produce_lines(deployment.settings, second)
        assert report.sent == len(second) and report.invalid == len(INVALID)
        outputs = deployment.read_outputs(expected=total)
        assert sum(map(len, outputs.values())) >= total  # more only after a redelivery
        assert len({r["payload"] for _, r in outputs["dlq"]}) == len(INVALID)

        # Prometheus has scraped the final counts (the end-to-end histogram is observed after the
        # broker's acks, so wait for its count too), then one more scrape for good measure.
        _wait(
            lambda: (
                scraped(prometheus, "propwatch_items_consumed_total") >= total
                and scraped(prometheus, "propwatch_end_to_end_seconds_count", 'start="produced"') >= total
                and scraped(prometheus, "propwatch_console_time_to_decision_seconds_count", job=CONSOLE_JOB)
                >= len(TIMES_TO_DECISION_S)
                and scraped(prometheus, "propwatch_source_items_total", job=SOURCES_JOB) >= SOURCE_ITEMS
            ),
            30,
            f"the scraped counters to reach {total}, and the console's decisions and the source's pass",
            prometheus,
        )
        time.sleep(2 * SCRAPE_INTERVAL_S)

        # Every dashboard query evaluates; the key panels show data.
        results: dict[str, list[dict[str, Any]]] = {}
        for title, ref, expr in dashboard_queries():
            result = prometheus.query(substitute_variables(expr))
            assert result.get("status") == "success", f"{title}/{ref}: {expr}\n{result}"
            assert not result.get("warnings"), f"{title}/{ref}: {result['warnings']}"
            results.setdefault(title, []).extend(result["data"]["result"])
        for title in MUST_HAVE_DATA:
            assert results.get(title), f"panel {title!r} shows no data"
            values = [float(series["value"][1]) for series in results[title]]
            assert all(math.isfinite(v) for v in values), f"panel {title!r}: {values}"
        assert max(float(s["value"][1]) for s in results["Throughput"]) > 0
        for title, series in results.items():
            assert series, f"panel {title!r} shows no data after a real run"
        model = results["Model"][0]["metric"]
        assert model["name"] == "tiny-tco" and model["revision"], model

        # The console's panels read what its registry holds.
        def values(title: str) -> list[float]:
            return [float(series["value"][1]) for series in results[title]]

        assert values("Console up") == [1.0] and values("Console topics read") == [1.0]
        assert values("Pending reviews") == [PENDING]
        assert values("Oldest pending review") == values("Age of the oldest pending review") == [OLDEST_S]
        assert sorted(values("Pending and claimed reviews")) == [CLAIMED, PENDING]
        decided = {
            (s["metric"]["role"], s["metric"]["outcome"]): float(s["value"][1])
            for s in results["Decisions in the last hour, by role and outcome"]
        }
        assert set(decided) == {(r, o) for r in ("reviewer", "supervisor") for o in ("approve", "reject")}
        assert decided[("reviewer", "approve")] >= len(TIMES_TO_DECISION_S), decided  # rate() extrapolates
        p50, p90 = values("Time to decision")
        assert min(TIMES_TO_DECISION_S) / 2 <= p50 <= p90 <= max(TIMES_TO_DECISION_S), (p50, p90)
        assert values("Unsigned decisions dead-lettered") == [0.0]

        # The sources' panels read what its registry holds (increase() and rate() extrapolate).
        assert values("Sources service up") == [1.0]
        assert values("Sources past their expected interval") == [0.0]
        assert values("Items sent in the last 24 hours")[0] >= SOURCE_ITEMS
        assert values("Items sent per source")[0] >= SOURCE_ITEMS
        assert [s["metric"]["reason"] for s in results["Fetch errors by reason"]] == ["timeout"]
        p50, p90 = values("Fetch latency")
        assert 0.1 <= p50 <= p90 <= 2.5, (p50, p90)
        for title in (
            "Time since the last new item, against the expected interval",
            "Time since the last successful read, against the expected interval",
        ):
            (share,) = values(title)
            assert 0 <= share < 0.01, (title, share)
        assert values("Not modified share of fetches") == pytest.approx([1 / len(SOURCE_FETCHES_S)])
        assert values("Duplicates per source")[0] >= SOURCE_DUPLICATES

        # What the stall and follower alerts read: a batch age per agent, well under the
        # threshold after a run; every followed topic read; no internal error, no invalid record.
        stall = prometheus.query(f'propwatch_oldest_unacked_batch_age_seconds{{job="{JOB}"}}')
        ages: list[dict[str, Any]] = stall["data"]["result"]
        assert {series["metric"]["agent"] for series in ages} == set(AGENTS), ages
        assert all(float(series["value"][1]) < 30 for series in ages), ages
        assert scraped(prometheus, "propwatch_follower_ready") == len(FOLLOWED)
        assert scraped(prometheus, "propwatch_internal_errors_total") == 0
        assert scraped(prometheus, "propwatch_followed_invalid_records_total") == 0

        # Every alert expression evaluates; those that do not hang on a single scrape or probe
        # (a 1 s scrape or the broker probe can time out on a loaded machine) match nothing here.
        for rule in alert_rules():
            result = prometheus.query(rule["expr"])
            assert result.get("status") == "success", f"{rule['alert']}: {result}"
            if rule["alert"] in QUIET_ON_THIS_RUN:
                assert result["data"]["result"] == [], f"{rule['alert']} matches on a healthy run: {result}"

        # The rule files are loaded, every alert rule evaluated without error.
        expected = {rule["alert"] for rule in alert_rules()}

        def rules_evaluated() -> bool:
            groups = prometheus.get("/api/v1/rules", type="alert")["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return {r["name"] for r in rules} == expected and all(r["health"] != "unknown" for r in rules)

        _wait(rules_evaluated, 10, "every alert rule to be evaluated", prometheus)
        groups = prometheus.get("/api/v1/rules", type="alert")["data"]["groups"]
        for rule in (rule for group in groups for rule in group["rules"]):
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
            if rule["name"] in QUIET_ON_THIS_RUN:
                assert rule["state"] == "inactive", f"{rule['name']} is {rule['state']} on a healthy run"
        alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
        assert not [a for a in alerts if a["state"] == "firing"], alerts

        # A record on the hashbank topic that is not an entry (a forger's, or a broken tool's): the
        # worker counts it, and the alert's expression finds it on a real worker, ready since
        # before the first scrape (promtool tests when it fires and when it must not).
        deployment.send("hashbank", [{"schema_version": 2, "op": "add", "entry_id": "forged"}])
        _wait(
            lambda: scraped(prometheus, "propwatch_followed_invalid_records_total", 'topic="hashbank"') >= 1,
            30,
            "the invalid hashbank record in the scraped counter",
            prometheus,
        )
        (rule,) = [rule for rule in alert_rules() if rule["alert"] == "PropwatchInvalidFollowedRecords"]
        result = prometheus.query(rule["expr"])
        assert result.get("status") == "success", result
        assert [series["metric"]["topic"] for series in result["data"]["result"]] == ["hashbank"], result
