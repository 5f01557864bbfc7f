"""What operators watch: the Prometheus config, the alert rules and the Grafana dashboard.

``promtool`` (Debian package ``prometheus``) checks the config and the rules and runs the rules'
unit tests (``deploy/prometheus/alerts_test.yml``). Every PromQL expression of the dashboard and of
the alerts selects one scrape job, the workers' (``propwatch``), the review console's
(``propwatch-console``) or the sources service's (``propwatch-sources``), each a process of its
own, and may only name metrics that job exports (``streams.metrics.Metrics``, ``ConsoleMetrics``,
``SourcesMetrics``) or Prometheus's own ``up``: a renamed metric breaks this test instead of a
panel or an alert, silently.
``tests/integration/test_prometheus.py`` runs the same expressions on a real Prometheus scraping
a real worker. The helpers here are shared with it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics import AGENTS, ConsoleMetrics, Metrics, SourcesMetrics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "propwatch.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "propwatch.yml"
OPERATORS_DOC = ROOT / "docs" / "operators.md"

DASHBOARD_UID = "propwatch-overview"
DATASOURCE_UID = "prometheus"
JOB = "propwatch"
CONSOLE_JOB = "propwatch-console"
SOURCES_JOB = "propwatch-sources"
# What each scrape job exports: one metrics container per process kind.
EXPORTERS: dict[str, type[Metrics] | type[ConsoleMetrics] | type[SourcesMetrics]] = {
    JOB: Metrics,
    CONSOLE_JOB: ConsoleMetrics,
    SOURCES_JOB: SourcesMetrics,
}
INSTALL_HINT = "Install it with: apt-get update && apt-get install -y prometheus"

REQUIRED_ALERTS = {
    "PropwatchWorkerDown",
    "PropwatchBrokerDisconnected",
    "PropwatchLagGrowing",
    "PropwatchDeadLetterRateHigh",
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
# Alerts that must have promtool cases both where they fire and where they must not.
TESTED_BOTH_WAYS = {
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
STALL_ALERT = "PropwatchWorkerStalled"
STALL_PANEL = "Oldest unacknowledged batch"
REVIEW_WAIT_ALERT = "PropwatchReviewWaitingTooLong"
REVIEW_WAIT_PANEL = "Age of the oldest pending review"
# The sources' alerts compare a time since with the source's expected interval; these panels show
# that time as a share of the interval, with the alerts' threshold (1) drawn in.
SOURCE_INTERVAL_PANELS = {
    "PropwatchSourceSilent": "Time since the last new item, against the expected interval",
    "PropwatchSourceFailing": "Time since the last successful read, against the expected interval",
}

# Grafana's own variables; the dashboard's are in its templating list.
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
# What the integration test puts in for the dashboard's variables (Prometheus has no Grafana).
VARIABLE_VALUES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "instance": ".*",
    "drift_window": "1h",
}


# --- PromQL metric names -------------------------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_SUBSCRIPT = re.compile(r"\[[^\[\]]*\]")
# An identifier not inside another token (a number's exponent, a duration's unit) and not a
# function or aggregation (followed by "(").
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a lexical scan, enough for our expressions:
    strings, label matchers, grouping clauses and ranges are removed, then every identifier that
    is neither a keyword nor a function is a metric name)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _SUBSCRIPT.sub(" ", text)
    assert not re.search(r"[{}\[\]]", text), f"unbalanced or nested brackets left in {expr!r}: {text!r}"
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def exported_metric_names(job: str = JOB) -> set[str]:
    """Every series name a fresh registry of ``job``'s process (the worker's by default) can
    expose: the samples it has now, and for labelled families without children yet, the names
    their type implies."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names: set[str] = set()
    for family in EXPORTERS[job]().registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def allowed_metric_names(job: str = JOB) -> set[str]:
    return exported_metric_names(job) | {"up"}


def expression_job(expr: str) -> str:
    """The one scrape job an expression selects (``job="..."``): a panel or an alert reads one
    kind of process, so that its metric names can be checked against that process's."""
    jobs = set(re.findall(r'\bjob="([^"]*)"', expr))
    assert len(jobs) == 1, f"select exactly one job of {sorted(EXPORTERS)}, not {sorted(jobs)}: {expr!r}"
    (job,) = jobs
    assert job in EXPORTERS, f"job {job!r} is none of {sorted(EXPORTERS)}: {expr!r}"
    return job


# --- The files -----------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, also those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL) of every query of every panel."""
    dashboard = dashboard or load_dashboard()
    return [
        (panel["title"], target.get("refId", "?"), target["expr"])
        for panel in iter_panels(dashboard["panels"])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]


def substitute_variables(expr: str, values: dict[str, str] = VARIABLE_VALUES) -> str:
    """A dashboard expression as Grafana would send it, with example values for the variables."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no example value for ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(f"promtool is not installed; it checks deploy/prometheus. {INSTALL_HINT}")
    return binary


def _run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# --- promtool ------------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    result = _run_promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = _run_promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = _run_promtool("test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# --- The metric-name scan itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="propwatch"} == 0 or absent(up{job="propwatch"})', {"up"}),
        (
            'histogram_quantile(0.95, sum by (le) (rate(a_bucket{start="x", le=~"1e3"}[5m])))',
            {"a_bucket"},
        ),
        (
            "sum by (label) (rate(a_total[1h] offset 1d)) / on () group_left () sum(b_total)",
            {"a_total", "b_total"},
        ),
        ("deriv(sum by (topic) (max by (topic, partition) (lag))[10m:1m]) > 1e3", {"lag"}),
        ("rate(x[$__rate_interval]) * 100 < 1 / 3 and bool y", {"x", "y"}),
        ('count(up{instance=~"$instance"} == 1) > Inf', {"up"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_exported_metric_names_cover_the_documented_metrics() -> None:
    names = exported_metric_names()
    for expected in (
        "propwatch_items_consumed_total",
        "propwatch_referred_total",
        "propwatch_referrals_total",
        "propwatch_cleared_total",
        "propwatch_dead_lettered_total",
        "propwatch_inference_seconds_bucket",
        "propwatch_batch_size_items_count",
        "propwatch_end_to_end_seconds_bucket",
        "propwatch_score_sum",
        "propwatch_consumer_lag_messages",
        "propwatch_broker_connected",
        "propwatch_worker_ready",
        "propwatch_model_info",
        "propwatch_oldest_unacked_batch_age_seconds",
        "propwatch_internal_errors_total",
        "propwatch_followed_invalid_records_total",
        "propwatch_follower_ready",
        "propwatch_review_decision_replays_total",
    ):
        assert expected in names, expected
    assert not any(name.startswith(("process_", "python_")) for name in names), "custom registry only"


def test_exported_metric_names_of_the_console() -> None:
    names = exported_metric_names(CONSOLE_JOB)
    for expected in (
        "propwatch_console_pending_reviews",
        "propwatch_console_oldest_pending_review_age_seconds",
        "propwatch_console_claimed_reviews",
        "propwatch_console_decisions_total",
        "propwatch_console_time_to_decision_seconds_bucket",
        "propwatch_console_logins_total",
        "propwatch_console_refused_forms_total",
        "propwatch_console_follower_ready",
        "propwatch_console_followed_invalid_records_total",
        "propwatch_console_decision_send_errors_total",
        "propwatch_console_users_file_reloads_total",
    ):
        assert expected in names, expected
    assert not names & exported_metric_names(JOB), "the console and the worker export apart"
    assert not any(name.startswith(("process_", "python_")) for name in names), "custom registry only"


def test_exported_metric_names_of_the_sources_service() -> None:
    names = exported_metric_names(SOURCES_JOB)
    for expected in (
        "propwatch_source_items_total",
        "propwatch_source_duplicates_total",
        "propwatch_source_fetch_errors_total",
        "propwatch_source_fetch_seconds_bucket",
        "propwatch_source_fetch_seconds_count",
        "propwatch_source_not_modified_total",
        "propwatch_source_last_success_timestamp_seconds",
        "propwatch_source_expected_interval_seconds",
        "propwatch_source_last_item_timestamp_seconds",
    ):
        assert expected in names, expected
    for other in (JOB, CONSOLE_JOB):
        assert not names & exported_metric_names(other), f"the sources service and {other} export apart"
    assert not any(name.startswith(("process_", "python_")) for name in names), "custom registry only"


@pytest.mark.parametrize(
    ("expr", "job"),
    [
        ('up{job="propwatch"} == 0 or absent(up{job="propwatch"})', JOB),
        ('a{job="propwatch-console"} > 1 and on (instance) b{job="propwatch-console"} == 1', CONSOLE_JOB),
        ('time() - a{job="propwatch-sources"} > b{job="propwatch-sources"}', SOURCES_JOB),
    ],
)
def test_expression_job(expr: str, job: str) -> None:
    assert expression_job(expr) == job


@pytest.mark.parametrize(
    "expr",
    ['a{job="propwatch"} / b{job="propwatch-console"}', "sum(a)", 'a{job="other"}'],
    ids=["two jobs", "no job", "unknown job"],
)
def test_expression_job_refuses_mixed_missing_and_unknown_jobs(expr: str) -> None:
    with pytest.raises(AssertionError):
        expression_job(expr)


# --- Prometheus config ---------------------------------------------------------------------------


def test_prometheus_discovers_every_worker_by_dns() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert JOB in jobs, f"the alerts and the dashboard select job={JOB!r}"
    job = jobs[JOB]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["type"] == "A" and sd["port"] == 6066
    assert "worker" in sd["names"], "the compose service name resolves to every worker container"


@pytest.mark.parametrize(
    ("job_name", "service", "port_setting"),
    [(CONSOLE_JOB, "console", "console_port"), (SOURCES_JOB, "sources", "sources_port")],
)
def test_prometheus_scrapes_the_one_replica_of_the_console_and_the_sources_service(
    job_name: str, service: str, port_setting: str
) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert job_name in jobs, f"its alerts and panels select job={job_name!r}"
    job = jobs[job_name]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    port = Settings.model_fields[port_setting].default
    assert static["targets"] == [f"{service}:{port}"], (
        f"one replica, on PROPWATCH_{port_setting.upper()}'s default"
    )


# --- Alerts --------------------------------------------------------------------------------------


def test_every_required_alert_is_there_with_severity_and_annotations() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(rules)
    anchors = _heading_anchors(OPERATORS_DOC.read_text(encoding="utf-8"))
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key), f"{name}: no {key}"
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/operators.md" and anchor in anchors, f"{name}: no section #{anchor} in {path}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_expressions_use_exported_metrics_only(rule: dict[str, Any]) -> None:
    names = promql_metric_names(rule["expr"])
    assert names, rule["expr"]
    job = expression_job(rule["expr"])
    unknown = names - allowed_metric_names(job)
    assert not unknown, f"{rule['alert']} names metrics job {job!r} does not export: {sorted(unknown)}"


def test_alert_unit_tests_cover_firing_and_quiet_cases() -> None:
    document = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert document["rule_files"] == ["alerts.yml"]
    firing, quiet = set(), set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test") or []:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert {"PropwatchWorkerDown", "PropwatchDeadLetterRateHigh", "PropwatchLatencySLOBreached"} <= firing
    assert quiet, "at least one case where an alert must not fire"
    assert TESTED_BOTH_WAYS <= firing, TESTED_BOTH_WAYS - firing
    assert TESTED_BOTH_WAYS <= quiet, TESTED_BOTH_WAYS - quiet
    assert firing | quiet <= REQUIRED_ALERTS | {rule["alert"] for rule in alert_rules()}


# Label values of series the worker creates only once it runs (the registry alone has none).
LABELS_AT_RUN_TIME = {"propwatch_oldest_unacked_batch_age_seconds": {"agent": set(AGENTS)}}


def _exported_label_values(job: str) -> dict[str, dict[str, set[str]]]:
    """Per series name, the values a fresh registry of ``job``'s process has for each label."""
    values: dict[str, dict[str, set[str]]] = {}
    for family in EXPORTERS[job]().registry.collect():
        for sample in family.samples:
            for key, value in sample.labels.items():
                values.setdefault(sample.name, {}).setdefault(key, set()).add(value)
    for name, labels in LABELS_AT_RUN_TIME.items():
        for key, known in labels.items():
            values.setdefault(name, {}).setdefault(key, set()).update(known)
    return values


def test_alert_unit_tests_use_series_the_worker_exports() -> None:
    """A promtool case on a series the worker (or the console) never exports (a misspelt name, a
    label value such as stage="routing" where the worker says "route") would pass and prove
    nothing. Each series is checked against what its job's process exports."""
    document = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    for case in document["tests"]:
        for series in case["input_series"]:
            name, _, rest = series["series"].partition("{")
            name = name.strip()
            if name == "up":  # Prometheus's own, for any job (also one propwatch does not run)
                continue
            job = expression_job(series["series"])
            allowed, exported = allowed_metric_names(job), _exported_label_values(job)
            assert name in allowed, f"{case['name']}: job {job!r} does not export {name}"
            for key, value in re.findall(r'(\w+)="([^"]*)"', rest):
                known = exported.get(name, {}).get(key)
                if key not in {"job", "instance"} and known:
                    assert value in known, (
                        f"{case['name']}: {name}{{{key}={value!r}}}: not one of {sorted(known)}"
                    )


def test_stall_alert_threshold_is_drawn_on_its_panel() -> None:
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == STALL_ALERT]
    match = re.fullmatch(
        r'propwatch_oldest_unacked_batch_age_seconds\{job="propwatch"\} > (\d+(?:\.\d+)?)',
        rule["expr"].strip(),
    )
    assert match, rule["expr"]
    threshold = float(match.group(1))
    (panel,) = [p for p in iter_panels(load_dashboard()["panels"]) if p["title"] == STALL_PANEL]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps if s["color"] == "red"] == [threshold]
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    for target in panel["targets"]:
        assert "agent" in target["legendFormat"] and "instance" in target["legendFormat"], target


def test_review_wait_alert_threshold_is_drawn_on_its_panels() -> None:
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == REVIEW_WAIT_ALERT]
    match = re.match(
        r'propwatch_console_oldest_pending_review_age_seconds\{job="propwatch-console"\} > (\d+)\n',
        rule["expr"],
    )
    assert match, rule["expr"]
    threshold = float(match.group(1))
    assert threshold == 4 * 3600, "docs/operators.md and the README say 4 hours"
    panels = {p["title"]: p for p in iter_panels(load_dashboard()["panels"])}
    for title in (REVIEW_WAIT_PANEL, "Oldest pending review"):
        defaults = panels[title]["fieldConfig"]["defaults"]
        assert [s["value"] for s in defaults["thresholds"]["steps"] if s["color"] == "red"] == [threshold]
        assert defaults["unit"] == "s"
        (target,) = panels[title]["targets"]
        assert "propwatch_console_oldest_pending_review_age_seconds" in target["expr"]
    custom = panels[REVIEW_WAIT_PANEL]["fieldConfig"]["defaults"]["custom"]
    assert custom["thresholdsStyle"]["mode"] != "off"


@pytest.mark.parametrize(("alert", "title"), sorted(SOURCE_INTERVAL_PANELS.items()))
def test_source_interval_alert_thresholds_are_drawn_on_their_panels(alert: str, title: str) -> None:
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == alert]
    timestamp = {
        "PropwatchSourceSilent": "propwatch_source_last_item_timestamp_seconds",
        "PropwatchSourceFailing": "propwatch_source_last_success_timestamp_seconds",
    }[alert]
    first = rule["expr"].strip().splitlines()[:2]
    assert [line.strip() for line in first] == [
        f'time() - {timestamp}{{job="propwatch-sources"}}',
        '> propwatch_source_expected_interval_seconds{job="propwatch-sources"}',
    ], rule["expr"]
    (panel,) = [p for p in iter_panels(load_dashboard()["panels"]) if p["title"] == title]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "percentunit"
    assert [s["value"] for s in defaults["thresholds"]["steps"] if s["color"] == "red"] == [1]
    assert defaults["custom"]["thresholdsStyle"]["mode"] != "off"
    (target,) = panel["targets"]
    assert (
        timestamp in target["expr"]
        and "/ max by (source) (propwatch_source_expected_interval" in target["expr"]
    )


# --- Grafana -------------------------------------------------------------------------------------


def test_dashboard_identity() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == DASHBOARD_UID
    assert dashboard["title"]
    ids = [panel["id"] for panel in iter_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables.get("datasource")
    assert datasource and datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    assert datasource["current"]["value"] == DATASOURCE_UID
    provisioned = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    assert [d["uid"] for d in provisioned if d["type"] == "prometheus"] == [DATASOURCE_UID]
    for panel in iter_panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        for holder in [panel, *panel.get("targets", [])]:
            uid = holder.get("datasource", {}).get("uid")
            assert uid in ("${datasource}", DATASOURCE_UID), f"{panel['title']}: datasource {uid!r}"


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    (provider,) = providers
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_has_the_panels_operators_need() -> None:
    queries = dashboard_queries()
    text = "\n".join(expr for _, _, expr in queries)
    for needle in (
        "propwatch_items_consumed_total",  # throughput
        "propwatch_referrals_total",
        "propwatch_cleared_total",
        "sum by (label) (rate(propwatch_referred_total",  # flag rate by label
        "histogram_quantile(0.99, sum by (le) (rate(propwatch_end_to_end_seconds_bucket",
        "histogram_quantile(0.5, sum by (le) (rate(propwatch_inference_seconds_bucket",
        "propwatch_consumer_lag_messages",
        "sum by (code) (rate(propwatch_dead_lettered_total",
        "propwatch_batch_size_items",
        "histogram_quantile(0.9, sum by (label, le) (rate(propwatch_score_bucket",  # drift
        "propwatch_model_info",
        "propwatch_broker_connected",
        "propwatch_worker_ready",
        # the review console
        "propwatch_console_pending_reviews",
        "propwatch_console_oldest_pending_review_age_seconds",
        "sum by (role, outcome) (increase(propwatch_console_decisions_total",
        "histogram_quantile(0.9, sum by (le) (rate(propwatch_console_time_to_decision_seconds_bucket",
        "propwatch_console_claimed_reviews",
        'propwatch_console_logins_total{job="propwatch-console", outcome="failure"}',
        'propwatch_console_logins_total{job="propwatch-console", outcome="throttled"}',
        'propwatch_console_users_file_reloads_total{job="propwatch-console", outcome="invalid"}',
        "sum by (reason) (increase(propwatch_console_refused_forms_total",
        'propwatch_dead_lettered_total{job="propwatch", instance=~"$instance", code="unsigned_decision"}',
        # the sources service
        'sum by (source) (increase(propwatch_source_items_total{job="propwatch-sources"}',
        'sum by (reason) (increase(propwatch_source_fetch_errors_total{job="propwatch-sources"}',
        "histogram_quantile(0.9, sum by (le) (rate(propwatch_source_fetch_seconds_bucket",
        "propwatch_source_last_item_timestamp_seconds",
        "propwatch_source_last_success_timestamp_seconds",
        'sum by (source) (rate(propwatch_source_not_modified_total{job="propwatch-sources"}',
        'sum by (source) (increase(propwatch_source_duplicates_total{job="propwatch-sources"}',
    ):
        assert needle in text, needle
    # every metric family the worker and the console export is on the dashboard somewhere, in a
    # query of that process's job
    for job, exporter in EXPORTERS.items():
        used = set().union(
            *(
                promql_metric_names(substitute_variables(expr))
                for _, _, expr in queries
                if expression_job(expr) == job
            )
        )
        for family in exporter().registry.collect():
            assert any(name.startswith(family.name) for name in used), f"{family.name} is on no panel"


def test_dashboard_expressions_use_exported_metrics_only() -> None:
    for title, ref, expr in dashboard_queries():
        names = promql_metric_names(substitute_variables(expr))
        assert names, f"{title}/{ref}: no metric in {expr!r}"
        job = expression_job(expr)
        unknown = names - allowed_metric_names(job)
        assert not unknown, f"{title}/{ref} names metrics job {job!r} does not export: {sorted(unknown)}"
        if job != JOB:  # $instance lists the workers
            assert "$instance" not in expr, f"{title}/{ref}: the Worker selector does not apply to job {job}"


def test_dashboard_variables_are_defined() -> None:
    dashboard = load_dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_BUILTINS
    for title, ref, expr in dashboard_queries():
        used = set(re.findall(r"\$\{?(\w+)", expr))
        assert used <= defined, f"{title}/{ref}: undefined variables {sorted(used - defined)}"
        assert used <= set(VARIABLE_VALUES), (
            f"{title}/{ref}: give {sorted(used - set(VARIABLE_VALUES))} a value"
        )


# --- The operator's guide ------------------------------------------------------------------------


def test_operators_guide_covers_panels_alerts_and_metrics() -> None:
    guide = OPERATORS_DOC.read_text(encoding="utf-8")
    for panel in iter_panels(load_dashboard()["panels"]):
        if panel["type"] != "row":
            assert panel["title"] in guide, f"panel {panel['title']!r} is not explained"
    for rule in alert_rules():
        assert f"### {rule['alert']}" in guide, f"alert {rule['alert']} has no section"
    for exporter in EXPORTERS.values():
        for family in exporter().registry.collect():
            name = family.name + {"counter": "_total", "info": "_info"}.get(family.type, "")
            assert f"`{name}`" in guide, f"metric {name} is not in the metrics table"
