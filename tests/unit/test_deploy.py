"""The deployment: ``docker-compose.yml`` (Kafka KRaft, topics, worker, review console, sources
service, Prometheus, Grafana), the ``Dockerfile``, the Kubernetes manifests of ``deploy/k8s`` and
the example ``deploy/SOURCES.yml``.

No Docker engine is needed: ``docker-compose config`` validates and normalises the Compose file,
and the assertions run on its output. Works with docker-compose 1.29 (Debian's, YAML output) and
Compose v2 (``--format json``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from packaging.requirements import Requirement
from pydantic import SecretStr

from streams.settings import Settings
from streams.sources.config import KINDS, FetchConfig, StateConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

TORCH_PIN = "torch==2.13.0"
MODEL_PATH = "/models/propwatch-tco-e5"
CONSOLE_PORT = Settings.model_fields["console_port"].default
SOURCES_PORT = Settings.model_fields["sources_port"].default
SOURCES_EXAMPLE = ROOT / "deploy" / "SOURCES.yml"
KNOWN_SETTINGS = {f"PROPWATCH_{name.upper()}" for name in Settings.model_fields}


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


SECRET_SETTINGS = {
    f"PROPWATCH_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if _is_secret(field.annotation)
}
"""The settings that hold secrets (``SecretStr``): never a value in a file of this repository."""


def test_secret_settings_are_the_secrets() -> None:
    assert {
        "PROPWATCH_SASL_PASSWORD",
        "PROPWATCH_SSL_KEY_PASSWORD",
        "PROPWATCH_AUTHOR_HASH_KEY",
        "PROPWATCH_DECISION_KEY",
        "PROPWATCH_DECISION_PREVIOUS_KEYS",
        "PROPWATCH_CONSOLE_SESSION_KEY",
    } == SECRET_SETTINGS


# --- Compose -------------------------------------------------------------------------------------


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not installed; it validates docker-compose.yml. "
            "Install it with: apt-get update && apt-get install -y docker-compose"
        )
    return binary


def _run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    # Settings of the caller's shell must not change which file is read or how it is read.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [_compose_binary(), "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """``docker-compose config``, parsed: JSON where supported (Compose v2), YAML otherwise (1.29)."""
    # docker-compose 1.29 has no --format: it prints its usage (and exits 0), so look at the output.
    result = _run_compose("config", "--format", "json")
    if result.returncode == 0 and result.stdout.lstrip().startswith("{"):
        parsed = json.loads(result.stdout)
    else:
        result = _run_compose("config")
        assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}{result.stdout}"
        parsed = yaml.safe_load(result.stdout)
    assert isinstance(parsed, dict), parsed
    return parsed


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose.get("services", {})
    assert name in services, f"service {name!r} missing; services: {sorted(services)}"
    service: dict[str, Any] = services[name]
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition, i.e. service_started
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volumes in long form, whatever form the file or the compose version used."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):  # "source:target[:mode]"
            parts = volume.split(":")
            mode = parts[2] if len(parts) > 2 else "rw"
            mounts.append({"source": parts[0], "target": parts[1], "read_only": "ro" in mode.split(",")})
        else:
            mounts.append(volume)
    return mounts


def _fixed_host_ports(service: dict[str, Any]) -> list[str]:
    """Host ports published as one fixed number (these clash when the service is scaled)."""
    fixed = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published = str(port.get("published") or "")
        else:  # "[ip:]host:container[/proto]" or "container"
            parts = str(port).split("/")[0].split(":")
            published = parts[-2] if len(parts) >= 2 else ""
        if published and "-" not in published:
            fixed.append(str(port))
    return fixed


def test_compose_file_has_no_version_key() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert "version" not in raw, "the Compose Specification has no `version:` key"
    assert "x-propwatch" in raw, "topics and worker share their build through the x-propwatch anchor"


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "topics", "worker", "console", "sources", "prometheus", "grafana"):
        assert name in services, f"service {name!r} missing; services: {sorted(services)}"


def test_kafka_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    kafka = _service(compose, "kafka")
    assert str(kafka["image"]).startswith("apache/kafka:"), kafka["image"]
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    for key in ("KAFKA_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"):
        assert "CONTROLLER" in env[key], key
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # a KRaft cluster id is 16 bytes in URL-safe base64, unpadded: 22 characters
    if "CLUSTER_ID" in env:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), env["CLUSTER_ID"]

    test = " ".join(kafka["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
    assert "--bootstrap-server localhost:9092" in test

    data = [m for m in _mounts(kafka) if m.get("target") == env.get("KAFKA_LOG_DIRS")]
    assert data, f"the log dir {env.get('KAFKA_LOG_DIRS')} must be on a volume: {_mounts(kafka)}"
    assert data[0].get("type", "volume") == "volume", data[0]
    assert data[0]["source"].endswith("kafka-data") and "kafka-data" in compose.get("volumes", {})


def test_topics_is_a_one_shot_after_kafka(compose: dict[str, Any]) -> None:
    topics = _service(compose, "topics")
    assert topics["command"] == ["topics", "create"]
    assert str(topics.get("restart")) == "no"
    assert _depends_on(topics) == {"kafka": "service_healthy"}
    env = _environment(topics)
    assert env["PROPWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["PROPWATCH_PARTITIONS"] == "6"


def test_worker_waits_for_kafka_and_topics(compose: dict[str, Any]) -> None:
    worker = _service(compose, "worker")
    deps = _depends_on(worker)
    assert deps.get("kafka") == "service_healthy", deps
    assert deps.get("topics") == "service_completed_successfully", deps


def test_worker_environment(compose: dict[str, Any]) -> None:
    worker, topics = _service(compose, "worker"), _service(compose, "topics")
    env = _environment(worker)
    assert env["PROPWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["PROPWATCH_WEB_BIND"] == "0.0.0.0"
    assert env["PROPWATCH_MODEL"] == MODEL_PATH
    # the worker declares as many partitions as `topics create` made
    assert env.get("PROPWATCH_PARTITIONS") == _environment(topics)["PROPWATCH_PARTITIONS"]
    assert "healthcheck" in worker and "/health" in " ".join(worker["healthcheck"]["test"])


def test_worker_session_timeout_is_accepted_by_kafka(compose: dict[str, Any]) -> None:
    """The broker refuses to let a member join with a session timeout outside its bounds."""
    kafka_env = _environment(_service(compose, "kafka"))
    low = int(kafka_env.get("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", 6000))
    high = int(kafka_env.get("KAFKA_GROUP_MAX_SESSION_TIMEOUT_MS", 1_800_000))
    env = _environment(_service(compose, "worker"))
    settings = Settings(
        kafka_bootstrap=env["PROPWATCH_KAFKA_BOOTSTRAP"],
        session_timeout_s=env.get("PROPWATCH_SESSION_TIMEOUT_S"),
        heartbeat_interval_s=env.get("PROPWATCH_HEARTBEAT_INTERVAL_S"),
    )
    session_s, heartbeat_s = settings.session_timeout, settings.heartbeat_interval
    assert low <= session_s * 1000 <= high, (session_s, low, high)
    assert heartbeat_s * 3 <= session_s, "the heartbeat should be at most a third of the session timeout"


def test_worker_and_topics_share_the_image(compose: dict[str, Any]) -> None:
    worker, topics = _service(compose, "worker"), _service(compose, "topics")
    assert worker["image"] == topics["image"] == "propwatch:latest"
    for service in (worker, topics):
        build = service["build"]
        context = build["context"] if isinstance(build, dict) else build
        assert Path(context).resolve() == ROOT
        assert Path(build.get("dockerfile", "Dockerfile")).name == "Dockerfile"


def test_models_are_mounted_read_only(compose: dict[str, Any]) -> None:
    mounts = [m for m in _mounts(_service(compose, "worker")) if m.get("target") == "/models"]
    assert len(mounts) == 1, _service(compose, "worker").get("volumes")
    mount = mounts[0]
    assert Path(mount["source"]).resolve() == ROOT / "models", mount
    assert mount.get("read_only") is True, f"/models must be mounted read-only: {mount}"


def test_worker_scales(compose: dict[str, Any]) -> None:
    worker = _service(compose, "worker")
    assert "container_name" not in worker, "a fixed container_name prevents --scale worker=N"
    assert not _fixed_host_ports(worker), f"a fixed host port prevents --scale: {worker['ports']}"
    exposed = {str(p) for p in worker.get("expose") or []}
    assert "6066" in exposed or "6066/tcp" in exposed, exposed
    assert worker["command"] == ["worker", "--processes", "1"], "one worker per container, on 6066"


def test_console_service(compose: dict[str, Any]) -> None:
    console, worker = _service(compose, "console"), _service(compose, "worker")
    assert console["command"] == ["console"]
    assert console["image"] == worker["image"] and console["build"] == worker["build"], "the worker's image"
    assert _depends_on(console) == {"kafka": "service_healthy", "topics": "service_completed_successfully"}
    env = _environment(console)
    assert env["PROPWATCH_KAFKA_BOOTSTRAP"] == _environment(worker)["PROPWATCH_KAFKA_BOOTSTRAP"]
    assert env["PROPWATCH_CONSOLE_BIND"] == "0.0.0.0"
    assert env["PROPWATCH_CONSOLE_PORT"] == str(CONSOLE_PORT)
    assert env["PROPWATCH_GROUP_ID"] != Settings.model_fields["group_id"].default, "never the workers' group"
    # one console, on the loopback interface only (plain HTTP: TLS goes in front of it)
    assert "container_name" not in console
    ports = console["ports"]
    assert len(ports) == 1 and _published_ports(console) == {str(CONSOLE_PORT): str(CONSOLE_PORT)}, ports
    (port,) = ports
    host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
    assert host_ip == "127.0.0.1", port
    health = " ".join(console["healthcheck"]["test"])
    assert f"http://127.0.0.1:{CONSOLE_PORT}/health" in health, health
    # the users file lives on a named volume, kept across restarts and writable by add-user
    users = Path(env["PROPWATCH_CONSOLE_USERS_FILE"])
    (mount,) = [m for m in _mounts(console) if Path(m["target"]) == users.parent]
    assert mount.get("type", "volume") == "volume" and not mount.get("read_only"), mount
    assert mount["source"].split("_")[-1] in compose.get("volumes", {}), mount


def test_sources_service(compose: dict[str, Any]) -> None:
    sources, worker = _service(compose, "sources"), _service(compose, "worker")
    command = sources["command"]
    assert command[:2] == ["sources", "run"] and len(command) == 3, command
    assert sources["image"] == worker["image"] and sources["build"] == worker["build"], "the worker's image"
    assert _depends_on(sources) == {"kafka": "service_healthy", "topics": "service_completed_successfully"}
    env = _environment(sources)
    assert env["PROPWATCH_KAFKA_BOOTSTRAP"] == _environment(worker)["PROPWATCH_KAFKA_BOOTSTRAP"]
    assert env["PROPWATCH_WEB_BIND"] == "0.0.0.0"
    assert env["PROPWATCH_SOURCES_PORT"] == str(SOURCES_PORT)
    # one container: its state is one SQLite file, on a named volume kept across restarts
    assert "container_name" not in sources and not sources.get("ports"), "reached on the network only"
    exposed = {str(p) for p in sources.get("expose") or []}
    assert str(SOURCES_PORT) in exposed or f"{SOURCES_PORT}/tcp" in exposed, exposed
    (data,) = [m for m in _mounts(sources) if m.get("target") == env["PROPWATCH_DATA_DIR"]]
    assert data.get("type", "volume") == "volume" and not data.get("read_only"), data
    assert data["source"].split("_")[-1] in compose.get("volumes", {}), data
    # the example SOURCES.yml, read-only, where the command reads it
    config = _mount_at(sources, command[2])
    assert Path(config["source"]).resolve() == SOURCES_EXAMPLE and config.get("read_only") is True, config
    health = " ".join(sources["healthcheck"]["test"])
    assert f"http://127.0.0.1:{SOURCES_PORT}/health" in health, health


def test_compose_environment_names_known_settings(compose: dict[str, Any]) -> None:
    for name in ("topics", "worker", "console", "sources"):
        env = _environment(_service(compose, name))
        names = {key for key in env if key.startswith("PROPWATCH_")}
        assert names <= KNOWN_SETTINGS, f"{name}: unknown settings {sorted(names - KNOWN_SETTINGS)}"


def test_compose_passes_secrets_through_and_writes_none() -> None:
    """Secrets come from the shell that runs compose (an environment entry without a value),
    never from the file; the decision key reaches the console and every worker."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))  # merge keys (<<) resolved
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        for key in SECRET_SETTINGS & set(env):
            assert env[key] is None, f"{name}: {key} must be passed through, not written in the file"
    for name in ("worker", "console"):
        assert "PROPWATCH_DECISION_KEY" in raw["services"][name]["environment"], name
    assert "PROPWATCH_CONSOLE_SESSION_KEY" in raw["services"]["console"]["environment"]


# --- Dockerfile ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    logical: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    result = []
    for text in logical:
        keyword, _, args = text.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def _index(instructions: list[tuple[str, str]], keyword: str, pattern: str) -> int:
    for i, (kw, args) in enumerate(instructions):
        if kw == keyword and re.search(pattern, args):
            return i
    pytest.fail(f"Dockerfile: no {keyword} matching {pattern!r}")


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    torch = _index(instructions, "RUN", re.escape(TORCH_PIN))
    assert "download.pytorch.org/whl/cpu" in instructions[torch][1], instructions[torch]
    project = _index(instructions, "RUN", r"pip install (\S+ )*\"?\.(\[[a-z,]+\])?\"?($| |&)")
    assert torch < project, "torch (CPU build) must be installed before `pip install .`"

    # ... and the project's own torch requirement must accept the pinned one, or pip replaces it
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    torch_reqs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    torch_reqs = [r for r in torch_reqs if r.name == "torch"]
    pinned = TORCH_PIN.split("==")[1]
    assert all(r.specifier.contains(pinned) for r in torch_reqs), torch_reqs


def test_dockerfile_runtime() -> None:
    instructions = _instructions()
    users = [args for kw, args in instructions if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as non-root"
    assert ("ENTRYPOINT", '["propwatch"]') in instructions
    assert ("CMD", '["worker", "--processes", "1"]') in instructions, "one worker process per container"
    assert any(kw == "EXPOSE" and "6066" in args.split() for kw, args in instructions)
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    for setting in ("HF_HUB_OFFLINE=1", "PROPWATCH_WEB_BIND=0.0.0.0", f"PROPWATCH_MODEL={MODEL_PATH}"):
        assert setting in env, setting
    health = [args for kw, args in instructions if kw == "HEALTHCHECK"]
    assert health and "python" in health[0] and "http://127.0.0.1:6066/health" in health[0], health


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".venv", "models", ".git"):
        assert entry in entries, f".dockerignore must exclude {entry}"


# --- Prometheus and Grafana in compose -----------------------------------------------------------


def _mount_at(service: dict[str, Any], target: str) -> dict[str, Any]:
    mounts = [m for m in _mounts(service) if m.get("target") == target]
    assert len(mounts) == 1, f"expected one mount at {target}: {_mounts(service)}"
    return mounts[0]


def _published_ports(service: dict[str, Any]) -> dict[str, str]:
    """container port -> published host port."""
    ports = {}
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports[str(port["target"])] = str(port.get("published", ""))
        else:
            parts = str(port).split("/")[0].split(":")
            ports[parts[-1]] = parts[-2] if len(parts) >= 2 else ""
    return ports


def test_prometheus_service(compose: dict[str, Any]) -> None:
    prometheus = _service(compose, "prometheus")
    assert str(prometheus["image"]).startswith("prom/prometheus:v"), prometheus["image"]
    config = _mount_at(prometheus, "/etc/prometheus")
    assert Path(config["source"]).resolve() == ROOT / "deploy" / "prometheus", config
    assert config.get("read_only") is True, f"the config must be mounted read-only: {config}"
    command = prometheus["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command, command
    assert _depends_on(prometheus).get("worker") in ("service_started", "service_healthy")
    assert "/-/ready" in " ".join(prometheus["healthcheck"]["test"])
    assert _published_ports(prometheus).get("9090") == "9090"


def test_prometheus_scrapes_the_worker_service(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "propwatch"]
    (sd,) = job["dns_sd_configs"]
    assert set(sd["names"]) <= set(compose["services"]), "DNS names must be compose services"
    assert str(sd["port"]) == _environment(_service(compose, "worker"))["PROPWATCH_WEB_PORT"]


def test_prometheus_scrapes_the_console_service(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "propwatch-console"]
    ((host, port),) = [target.split(":") for static in job["static_configs"] for target in static["targets"]]
    assert host in compose["services"] and _service(compose, host)["command"] == ["console"]
    assert port == _environment(_service(compose, host))["PROPWATCH_CONSOLE_PORT"]
    assert _depends_on(_service(compose, "prometheus")).get(host) in ("service_started", "service_healthy")


def test_prometheus_scrapes_the_sources_service(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "propwatch-sources"]
    ((host, port),) = [target.split(":") for static in job["static_configs"] for target in static["targets"]]
    assert host in compose["services"] and _service(compose, host)["command"][:2] == ["sources", "run"]
    assert port == _environment(_service(compose, host))["PROPWATCH_SOURCES_PORT"]
    assert _depends_on(_service(compose, "prometheus")).get(host) in ("service_started", "service_healthy")


def test_grafana_service(compose: dict[str, Any]) -> None:
    grafana = _service(compose, "grafana")
    assert str(grafana["image"]).startswith("grafana/grafana:"), grafana["image"]
    provisioning = _mount_at(grafana, "/etc/grafana/provisioning")
    assert Path(provisioning["source"]).resolve() == ROOT / "deploy" / "grafana" / "provisioning"
    dashboards = _mount_at(grafana, "/var/lib/grafana/dashboards")
    assert Path(dashboards["source"]).resolve() == ROOT / "deploy" / "grafana" / "dashboards"
    assert provisioning.get("read_only") is True and dashboards.get("read_only") is True
    assert _published_ports(grafana).get("3000") == "3000"
    assert _depends_on(grafana).get("prometheus") == "service_healthy"
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    env = _environment(grafana)
    anonymous = (
        env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true" and env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    )
    assert anonymous or env.get("GF_SECURITY_ADMIN_PASSWORD"), env

    providers = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/propwatch.yml").read_text(encoding="utf-8")
    )["providers"]
    assert [p["options"]["path"] for p in providers] == [dashboards["target"]]
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert [d["url"] for d in datasources] == ["http://prometheus:9090"], "the compose service's address"


# --- Kubernetes ----------------------------------------------------------------------------------

K8S = ROOT / "deploy" / "k8s"


def _manifest_files() -> dict[str, dict[str, Any]]:
    """Every manifest of deploy/k8s by file name (one object per file)."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert len(documents) == 1, f"{path.name}: one object per file"
        (files[path.name],) = documents
    return files


def _component(manifest: dict[str, Any]) -> str | None:
    component: str | None = manifest.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
    return component


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_kind: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        assert manifest["kind"] not in by_kind, f"two {manifest['kind']}s"
        by_kind[manifest["kind"]] = manifest
    return by_kind


def _manifests() -> dict[str, dict[str, Any]]:
    """The manifests of deploy/k8s but the review console's and the sources service's, by kind: the
    workers' and shared ones."""
    return _by_kind([m for m in _manifest_files().values() if _component(m) not in ("console", "sources")])


def _console_manifests() -> dict[str, dict[str, Any]]:
    """The review console's manifests of deploy/k8s, by kind."""
    return _by_kind([m for m in _manifest_files().values() if _component(m) == "console"])


def _sources_manifests() -> dict[str, dict[str, Any]]:
    """The sources service's manifests of deploy/k8s, by kind."""
    return _by_kind([m for m in _manifest_files().values() if _component(m) == "sources"])


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    container_spec: dict[str, Any] = container
    return container_spec


def test_k8s_manifests_are_namespace_free_and_all_in_the_kustomization() -> None:
    manifests = _manifests()
    assert {"ConfigMap", "Deployment", "Service", "ScaledObject", "Kustomization"} <= set(manifests)
    assert {"Deployment", "Service"} == set(_console_manifests())
    assert {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"} == set(_sources_manifests())
    files = _manifest_files()
    for name, manifest in files.items():
        assert "namespace" not in manifest.get("metadata", {}), f"{name} sets a namespace"
    objects = [(m["kind"], m.get("metadata", {}).get("name")) for m in files.values()]
    assert len(objects) == len(set(objects)), f"two objects of one kind and name: {objects}"
    resources = set(manifests["Kustomization"]["resources"])
    assert resources == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert "namespace" not in manifests["Kustomization"]


def test_k8s_configmap_holds_known_settings_only() -> None:
    data = _manifests()["ConfigMap"]["data"]
    settings_keys = {k for k in data if k.startswith("PROPWATCH_")}
    assert settings_keys <= KNOWN_SETTINGS, f"unknown settings: {sorted(settings_keys - KNOWN_SETTINGS)}"
    for secret in SECRET_SETTINGS:
        assert secret not in data, f"{secret} belongs in a Secret"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values are strings"
    # the values parse as settings
    env = {k.removeprefix("PROPWATCH_").lower(): v for k, v in data.items() if k.startswith("PROPWATCH_")}
    settings = Settings(**env)
    assert settings.web_port == 6066 and settings.web_bind == "0.0.0.0"
    assert settings.model == MODEL_PATH
    assert settings.session_timeout is not None and settings.session_timeout >= 6, "Kafka's minimum"


def test_k8s_configmap_commented_examples_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional settings shown commented out in configmap.yaml (known content, review, shadow
    model) are known settings whose example values parse, read from the environment as the worker
    reads them, together with the rest of the ConfigMap."""
    examples: dict[str, Any] = {}
    for line in (K8S / "configmap.yaml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*#\s*(PROPWATCH_\w+:.*)", line)
        if match:
            examples.update(yaml.safe_load(match.group(1)))
    expected = {"PROPWATCH_REVIEW_THRESHOLDS", "PROPWATCH_HASHBANK_FILE", "PROPWATCH_SHADOW_MODEL"}
    assert expected <= set(examples), sorted(examples)
    known = {f"PROPWATCH_{name.upper()}" for name in Settings.model_fields}
    assert set(examples) <= known, f"unknown settings: {sorted(set(examples) - known)}"
    assert all(isinstance(v, str) for v in examples.values()), "ConfigMap values are strings"
    for name in [k for k in os.environ if k.startswith("PROPWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in {**_manifests()["ConfigMap"]["data"], **examples}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.review_thresholds and settings.shadow_model and settings.hashbank_file


def test_k8s_deployment() -> None:
    manifests = _manifests()
    deployment, configmap = manifests["Deployment"], manifests["ConfigMap"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container = _container(manifests)
    assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in container["envFrom"]
    (port,) = container["ports"]
    assert port["containerPort"] == 6066 and port["name"] == "metrics"
    assert container["args"] == ["worker", "--processes", "1"], "one worker per pod: auto counts the node"

    def probe_port(probe: dict[str, Any]) -> Any:
        return probe["httpGet"]["port"]

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/health" and probe_port(readiness) in (6066, "metrics")
    assert liveness["httpGet"]["path"] in ("/health", "/metrics")
    assert probe_port(liveness) in (6066, "metrics")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert str(container["resources"]["limits"]["cpu"]) == configmap["data"]["PROPWATCH_INFERENCE_THREADS"]

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (model,) = [m for m in mounts.values() if m["mountPath"] == "/models"]
    assert model["readOnly"] is True
    assert configmap["data"]["PROPWATCH_MODEL"].startswith("/models/")
    claim = volumes[model["name"]].get("persistentVolumeClaim")
    assert claim is None or claim.get("readOnly") is True
    data_dir = configmap["data"]["PROPWATCH_DATA_DIR"]
    assert any(m["mountPath"] == data_dir for m in mounts.values()), "the data dir must be writable"
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 20, "room for the 10 s drain"


def test_k8s_service_exposes_the_metrics_port_of_every_pod() -> None:
    manifests = _manifests()
    service = manifests["Service"]["spec"]
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    (port,) = service["ports"]
    assert port["port"] == 6066 and port["targetPort"] in (6066, "metrics")
    assert service.get("publishNotReadyAddresses") is True, "scrape workers that lost the brokers too"
    console_pods = _console_manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert not service["selector"].items() <= console_pods.items(), "the console is not a worker"


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's ``env`` entries by name."""
    return {entry["name"]: entry for entry in container.get("env") or []}


def _secret_ref(container: dict[str, Any], name: str) -> dict[str, Any]:
    entry = _env(container)[name]
    assert "value" not in entry, f"{name}: a value written in the manifest"
    ref: dict[str, Any] = entry["valueFrom"]["secretKeyRef"]
    return ref


def _one_replica(deployment: dict[str, Any], why: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod template and container of ``deployment``, checked to be one replica replaced with
    Recreate (``why``), from the workers' image and ConfigMap but none of their Secrets, with the
    workers' security context."""
    manifests = _manifests()
    spec, pod = deployment["spec"], deployment["spec"]["template"]
    assert spec["replicas"] == 1, why
    assert spec["strategy"] == {"type": "Recreate"}, f"{why}: never two, not even during an update"
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    worker = _container(manifests)
    assert container["image"] == worker["image"]
    assert {"configMapRef": {"name": manifests["ConfigMap"]["metadata"]["name"]}} in container["envFrom"]
    assert not any("secretRef" in source for source in container["envFrom"]), "not the worker's credentials"
    assert (
        pod["spec"]["securityContext"]
        == manifests["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    )
    assert container["securityContext"] == worker["securityContext"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    return pod, container


def test_k8s_console_deployment() -> None:
    manifests, console = _manifests(), _console_manifests()
    pod, container = _one_replica(console["Deployment"], "claims are in memory: one console")
    worker = _container(manifests)
    assert container["args"] == ["console"]

    env = _env(container)
    assert set(env) <= KNOWN_SETTINGS, f"unknown settings: {sorted(set(env) - KNOWN_SETTINGS)}"
    assert env["PROPWATCH_CONSOLE_BIND"]["value"] == "0.0.0.0"
    assert env["PROPWATCH_GROUP_ID"]["value"] != manifests["ConfigMap"]["data"]["PROPWATCH_GROUP_ID"]
    assert env["PROPWATCH_CONSOLE_COOKIE_SECURE"]["value"] == "true", "TLS terminates in front of it"
    (port,) = container["ports"]
    assert port["containerPort"] == int(env["PROPWATCH_CONSOLE_PORT"]["value"]) == CONSOLE_PORT

    def probe_port(probe: dict[str, Any]) -> Any:
        return probe["httpGet"]["port"]

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/health"
    assert liveness["httpGet"]["path"] in ("/health", "/metrics")
    for probe in (readiness, liveness):
        assert probe_port(probe) in (CONSOLE_PORT, port["name"]), probe
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind

    # secrets from Secrets only; the decision key from the workers' Secret, required here
    for name in SECRET_SETTINGS & set(env):
        _secret_ref(container, name)
    decision_key = _secret_ref(container, "PROPWATCH_DECISION_KEY")
    assert not decision_key.get("optional", False), "a console without the key writes refused decisions"
    worker_key = _secret_ref(worker, "PROPWATCH_DECISION_KEY")
    assert (decision_key["name"], decision_key["key"]) == (worker_key["name"], worker_key["key"])
    assert worker_key.get("optional") is True, "workers run without a console too"
    session_key = _secret_ref(container, "PROPWATCH_CONSOLE_SESSION_KEY")
    assert session_key["name"] != decision_key["name"], "the workers need not read the session key"

    # the users file: a Secret mounted read-only, the whole folder (no subPath: updates reach it)
    users = Path(env["PROPWATCH_CONSOLE_USERS_FILE"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == users.parent]
    assert mount["readOnly"] is True and "subPath" not in mount
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    secret = volumes[mount["name"]]["secret"]
    paths = [item["path"] for item in secret.get("items") or []]
    assert paths == [users.name], paths
    assert secret["secretName"] not in (decision_key["name"], session_key["name"])
    assert secret["defaultMode"] & 0o007 == 0, "not readable by others"
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), "a writable /tmp"


def test_k8s_sources_deployment(tmp_path: Path) -> None:
    sources = _sources_manifests()
    pod, container = _one_replica(sources["Deployment"], "one state file: one sources service")
    env = _env(container)
    assert set(env) <= KNOWN_SETTINGS, f"unknown settings: {sorted(set(env) - KNOWN_SETTINGS)}"
    assert env["PROPWATCH_WEB_BIND"]["value"] == "0.0.0.0"
    (port,) = container["ports"]
    assert port["containerPort"] == int(env["PROPWATCH_SOURCES_PORT"]["value"]) == SOURCES_PORT
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/health" and probe["httpGet"]["port"] in (
            SOURCES_PORT,
            port["name"],
        )
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind

    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    # SOURCES.yml: the ConfigMap's, as a folder (no subPath: updates reach the pod), read-only
    assert container["args"][:2] == ["sources", "run"] and len(container["args"]) == 3
    path = Path(container["args"][2])
    config_mount = mounts[str(path.parent)]
    assert config_mount["readOnly"] is True and "subPath" not in config_mount
    configmap = sources["ConfigMap"]
    assert volumes[config_mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    (tmp_path / path.name).write_text(configmap["data"][path.name], encoding="utf-8")
    assert load_config(tmp_path / path.name).fetch.allow_private_addresses is False
    # its state: the claim, writable, where PROPWATCH_DATA_DIR points
    data = mounts[env["PROPWATCH_DATA_DIR"]["value"]]
    assert not data.get("readOnly")
    claim = sources["PersistentVolumeClaim"]
    assert volumes[data["name"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "/tmp" in mounts, "a writable /tmp"


@pytest.mark.parametrize(("component", "port_number"), [("console", CONSOLE_PORT), ("sources", SOURCES_PORT)])
def test_k8s_services_of_the_console_and_the_sources_service(component: str, port_number: int) -> None:
    """Each selects its own pods only, on its port, with the annotations Prometheus scrapes by."""
    files = _manifest_files().values()
    own = _by_kind([m for m in files if _component(m) == component])
    service = own["Service"]["spec"]
    labels = own["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    for other in [m for m in files if m["kind"] == "Deployment" and _component(m) != component]:
        pods = other["spec"]["template"]["metadata"]["labels"]
        assert not service["selector"].items() <= pods.items(), other["metadata"]["name"]
    (port,) = service["ports"]
    (container,) = own["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert port["port"] == port_number and port["targetPort"] in (port_number, container["ports"][0]["name"])
    annotations = own["Service"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port_number)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_k8s_scaledobject_scales_on_content_lag_up_to_the_partitions() -> None:
    manifests = _manifests()
    scaled, data = manifests["ScaledObject"], manifests["ConfigMap"]["data"]
    assert scaled["apiVersion"].startswith("keda.sh/")
    assert scaled["spec"]["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert scaled["spec"]["maxReplicaCount"] == int(data["PROPWATCH_PARTITIONS"]), "partitions bound workers"
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == data["PROPWATCH_TOPIC_PREFIX"] + "content"
    assert meta["consumerGroup"] == data["PROPWATCH_GROUP_ID"]
    assert meta["bootstrapServers"] == data["PROPWATCH_KAFKA_BOOTSTRAP"]
    assert int(meta["lagThreshold"]) > 0
    assert meta.get("allowIdleConsumers", "false") == "false"


# --- Kafka ACLs: the Strimzi KafkaUsers and the operators' guide's kafka-acls.sh commands --------

KAFKA_USERS = K8S / "kafka-users"
OPERATORS_DOC = ROOT / "docs" / "operators.md"
WORKER = "User:propwatch-worker"

Grant = tuple[str, str, str, str, str]
"""(principal, resource type, pattern type, resource name, operation), in Strimzi's spelling."""


def _kafka_users() -> dict[str, dict[str, Any]]:
    """Every KafkaUser of deploy/k8s/kafka-users by name (one object per file)."""
    users: dict[str, dict[str, Any]] = {}
    for path in sorted(KAFKA_USERS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert len(documents) == 1, f"{path.name}: one object per file"
        (user,) = documents
        assert (user["apiVersion"], user["kind"]) == ("kafka.strimzi.io/v1beta2", "KafkaUser"), path.name
        assert "namespace" not in user["metadata"], f"{path.name} sets a namespace"
        assert user["metadata"]["labels"].get("strimzi.io/cluster"), f"{path.name}: no strimzi.io/cluster"
        assert user["spec"]["authorization"]["type"] == "simple", path.name
        users[user["metadata"]["name"]] = user
    return users


def _user_grants() -> set[Grant]:
    grants = set()
    for name, user in _kafka_users().items():
        for rule in user["spec"]["authorization"]["acls"]:
            assert rule.get("type", "allow") == "allow" and rule.get("host", "*") == "*", (name, rule)
            resource = rule["resource"]
            for operation in rule["operations"]:
                pattern = resource.get("patternType", "literal")
                grants.add((f"User:{name}", resource["type"], pattern, resource.get("name", ""), operation))
    return grants


def _documented_grants() -> set[Grant]:
    """What the ``acl --allow-principal ...`` commands of docs/operators.md grant."""
    text = OPERATORS_DOC.read_text(encoding="utf-8")
    commands = re.findall(r"^acl --allow-principal.*?(?<!\\)$", text, flags=re.MULTILINE | re.DOTALL)
    assert commands, "docs/operators.md: no kafka-acls.sh commands (acl --allow-principal ...)"
    grants = set()
    for command in commands:
        args = shlex.split(command.replace("\\\n", " "))[1:]
        options: dict[str, list[str]] = {}
        for flag, value in zip(args[::2], args[1::2], strict=True):
            options.setdefault(flag, []).append(value)
        assert set(options) <= {
            "--allow-principal",
            "--operation",
            "--topic",
            "--group",
            "--resource-pattern-type",
        }
        (principal,) = options["--allow-principal"]
        pattern = {"literal": "literal", "prefixed": "prefix"}[
            options.get("--resource-pattern-type", ["literal"])[0]
        ]
        resources = [("topic", t) for t in options.get("--topic", [])] + [
            ("group", g) for g in options.get("--group", [])
        ]
        for kind, name in resources:
            for operation in options["--operation"]:
                grants.add((principal, kind, pattern, name, operation))
    return grants


def _allowed(grants: set[Grant], principal: str, kind: str, name: str, operation: str) -> bool:
    """Whether ``grants`` let ``principal`` do ``operation`` on the resource ``kind``/``name``."""
    return any(
        p == principal
        and k == kind
        and op in (operation, "All")
        and (n == "*" or (n == name if pattern == "literal" else name.startswith(n)))
        for p, k, pattern, n, op in grants
    )


def test_kafka_users_are_the_documented_acls_and_all_in_their_kustomization() -> None:
    assert _user_grants() == _documented_grants(), (
        f"only in deploy/k8s/kafka-users: {sorted(_user_grants() - _documented_grants())}; "
        f"only in docs/operators.md: {sorted(_documented_grants() - _user_grants())}"
    )
    kustomization = yaml.safe_load((KAFKA_USERS / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in KAFKA_USERS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert "namespace" not in kustomization, "KafkaUsers go where the Strimzi User Operator watches"


def test_kafka_users_grant_least_privilege() -> None:
    from streams.kafka.topics import CONTENT, DECISIONS, EXAMPLES, HASHBANK, OUTPUTS, REVIEW, TOPICS

    manifests = _manifests()
    data = manifests["ConfigMap"]["data"]
    prefix, group = data["PROPWATCH_TOPIC_PREFIX"], data["PROPWATCH_GROUP_ID"]
    grants = _user_grants()
    topics = {prefix + spec.name for spec in TOPICS}
    for principal, kind, pattern, name, operation in grants:
        assert operation not in ("All", "IdempotentWrite", "Alter", "Delete"), (principal, operation)
        assert kind in ("topic", "group") and name != "*", (principal, kind, name)
        if kind == "topic" and pattern == "literal":
            assert name in topics, f"{principal}: {name} is not a propwatch topic"
        if operation in ("Read", "Write") and kind == "topic":
            assert (principal, kind, pattern, name, "Describe") in grants, (principal, name)

    def worker_can(operation: str) -> set[str]:
        return {
            spec.name for spec in TOPICS if _allowed(grants, WORKER, "topic", prefix + spec.name, operation)
        }

    assert worker_can("Read") == {spec.name for spec in (CONTENT, DECISIONS, HASHBANK, REVIEW)}
    assert worker_can("Write") == {spec.name for spec in (*OUTPUTS, EXAMPLES, HASHBANK)}
    assert worker_can("Create") == set(), "topics create runs as its own principal"
    assert _allowed(grants, WORKER, "group", group, "Read"), "the worker's consumer group"
    keda = manifests["ScaledObject"]["spec"]["triggers"][0]["metadata"]
    assert _allowed(grants, "User:propwatch-keda", "group", keda["consumerGroup"], "Describe")
    assert _allowed(grants, "User:propwatch-keda", "topic", keda["topic"], "Describe")
    # operators read no content: it holds authors in clear
    assert not _allowed(grants, "User:propwatch-operator", "topic", prefix + CONTENT.name, "Read")


def test_only_the_intended_principals_can_write_what_causes_referrals() -> None:
    """Whoever writes hashbank, decisions or review can cause referrals; content is untrusted
    input from known producers; every other topic is the worker's alone."""
    from streams.kafka.topics import TOPICS

    prefix = _manifests()["ConfigMap"]["data"]["PROPWATCH_TOPIC_PREFIX"]
    grants = _user_grants()
    principals = {grant[0] for grant in grants}
    expected = {
        "hashbank": {WORKER, "User:propwatch-hashbank-admin"},
        "decisions": {"User:propwatch-reviewers"},
        "review": {WORKER},
        "content": {"User:propwatch-producer"},
    }
    for spec in TOPICS:
        writers = {p for p in principals if _allowed(grants, p, "topic", prefix + spec.name, "Write")}
        assert writers == expected.get(spec.name, {WORKER}), f"who may write {spec.name}: {sorted(writers)}"


# --- deploy/SOURCES.yml ----------------------------------------------------------------------------


def test_the_sources_example_is_valid_and_shows_the_default_fetch_policy_and_retention() -> None:
    config = load_config(SOURCES_EXAMPLE)
    assert config.fetch == FetchConfig(), "the fetch keys it shows are the defaults"
    assert config.state == StateConfig(), "the retention it shows is the default"
    for source in config.sources:
        for url in [getattr(source, "url", None), *getattr(source, "urls", ())]:
            assert url is None or re.match(r"https://([a-z]+\.)?example\.org/", url), url


def test_the_sources_example_commented_out_sources_are_valid(tmp_path: Path) -> None:
    """The sources shown commented out (a URL list file, a WARC file, channel exports) load once
    uncommented, with their files in place; together with the active ones they show every kind."""
    text = SOURCES_EXAMPLE.read_text(encoding="utf-8")
    commented = re.findall(r"^  # (- \{name: .*\})$", text, flags=re.MULTILINE)
    assert commented, "no commented-out source"
    path = tmp_path / "SOURCES.yml"
    path.write_text(text + "".join(f"  {line}\n" for line in commented), encoding="utf-8")
    for source in commented:
        match = re.search(r"(?:path|urls_file): ([^,}]+)", source)
        assert match, source
        file = tmp_path / match.group(1).strip()
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("https://www.example.org/page\n", encoding="utf-8")
    config = load_config(path)
    assert {source.kind for source in config.sources} == set(KINDS)
