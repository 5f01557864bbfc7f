"""A real Kafka-protocol broker for the session, and workers run as `propwatch worker` does."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.console.users import Role, add_user
from streams.dev.broker import EmbeddedBroker, free_port
from streams.dev.console_process import ConsoleProcess
from streams.dev.worker_process import WorkerProcess
from streams.kafka.admin import create_topics
from streams.kafka.producer import Producer
from streams.kafka.reader import TopicReader
from streams.kafka.topics import OUTPUTS
from streams.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@dataclass
class Deployment:
    """One test's own topics, group and workers on the shared broker."""

    broker: EmbeddedBroker
    workdir: Path
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)
    consoles: list[ConsoleProcess] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(
            kafka_bootstrap=self.broker.bootstrap,
            topic_prefix=self.env["PROPWATCH_TOPIC_PREFIX"],
            partitions=int(self.env["PROPWATCH_PARTITIONS"]),
        )

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def start_worker(self, **overrides: str) -> WorkerProcess:
        index = len(self.workers)
        env = {**self.env, "PROPWATCH_WEB_PORT": str(free_port()), **overrides}
        worker = WorkerProcess(env, self.workdir / f"worker-{index}.log")
        self.workers.append(worker)
        worker.wait_healthy(timeout_s=120)
        return worker

    def start_console(self, users: dict[str, tuple[Role, str]], **overrides: str) -> ConsoleProcess:
        """``propwatch console`` on a free port with ``users`` (name: role and password) in its own
        users file, over plain HTTP (cookies without ``Secure``); healthy once it has read the
        review and decisions topics."""
        index = len(self.consoles)
        path = self.workdir / f"console-users-{index}.json"
        for name, (role, password) in users.items():
            add_user(path, name, role, password)
        env = {
            **self.env,
            "PROPWATCH_CONSOLE_PORT": str(free_port()),
            "PROPWATCH_CONSOLE_USERS_FILE": str(path),
            "PROPWATCH_CONSOLE_COOKIE_SECURE": "false",
            **overrides,
        }
        console = ConsoleProcess(env, self.workdir / f"console-{index}.log")
        self.consoles.append(console)
        console.wait_healthy(timeout_s=60)
        return console

    def cli(
        self, *args: str, stdin: bytes | None = None, timeout_s: float = 120, **env: str
    ) -> subprocess.CompletedProcess[bytes]:
        """``propwatch ARGS`` as a user types it, with the deployment's settings (and ``env``)."""
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **self.env, **env},
            input=stdin,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )

    def send(self, topic: str, records: list[dict], key: str | None = None) -> None:
        """Send JSON ``records`` to one of the deployment's topics (by short name), keyed by ``key``
        field of each, as a reviewer's tool or a hash-sharing feed would."""
        with Producer(self.settings) as producer:
            for record in records:
                value = json.dumps(record).encode()
                producer.send(self.topic(topic), value, key=record[key].encode() if key else None)
            producer.flush()

    def read_outputs(
        self,
        expected: int,
        timeout_s: float = 120.0,
        ids: set[str] | None = None,
        topics: tuple[str, ...] = tuple(spec.name for spec in OUTPUTS),
    ) -> dict[str, list[tuple[str, dict]]]:
        """Every record on ``topics`` (the output topics by default), read from the beginning as a
        downstream service would, once ``expected`` records (or, given ``ids``, a record for each
        of them) arrived, or ``timeout_s`` passed."""
        names = {self.topic(name): name for name in topics}
        records: dict[str, list[tuple[str, dict]]] = {name: [] for name in topics}
        deadline = time.monotonic() + timeout_s
        seen: set[str] = set()

        def done() -> bool:
            return ids <= seen if ids is not None else sum(map(len, records.values())) >= expected

        with TopicReader(self.settings, list(names), missing_ok=False) as reader:
            while not done() and time.monotonic() < deadline:
                for message in reader.poll():
                    key = message.key.decode() if message.key else ""
                    record = json.loads(message.value)
                    records[names[message.topic]].append((key, record))
                    seen.add(record.get("item_id") or key)
                for worker in self.workers:
                    if worker.process.poll() not in (None, 0) and worker.process.returncode != -9:
                        raise RuntimeError(f"worker exited {worker.process.returncode}:\n{worker.log_tail()}")
        return records


@contextlib.contextmanager
def deployed(broker: EmbeddedBroker, workdir: Path, model_dir: Path) -> Iterator[Deployment]:
    """Fresh topics and group on ``broker``, files under ``workdir``; workers use ``model_dir``
    (with the fp32 transformers backend) by default. Its consoles and workers stop at the end."""
    tag = uuid.uuid4().hex[:8]
    env = {
        **broker.client_env(),
        "PROPWATCH_TOPIC_PREFIX": f"t{tag}.",
        "PROPWATCH_GROUP_ID": f"g{tag}",
        "PROPWATCH_PARTITIONS": "4",
        "PROPWATCH_DATA_DIR": str(workdir / "data"),
        "PROPWATCH_MODEL": str(model_dir),
        "PROPWATCH_BACKEND": "transformers",  # the tiny model has no ONNX export
        "PROPWATCH_LOG_LEVEL": "info",
        "HF_HUB_OFFLINE": "1",
    }
    setup = Deployment(broker=broker, workdir=workdir, env=env)
    create_topics(setup.settings)
    try:
        yield setup
    finally:
        for console in setup.consoles:
            console.stop()
        for worker in setup.workers:
            worker.stop()


@pytest.fixture
def deployment(broker: EmbeddedBroker, tmp_path: Path, tiny_model_dir: Path) -> Iterator[Deployment]:
    """A test's own deployment (:func:`deployed`) with the tiny model."""
    with deployed(broker, tmp_path, tiny_model_dir) as setup:
        yield setup
