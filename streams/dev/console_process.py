"""``propwatch console`` as a child process: what the integration and browser tests (and the demo)
run."""

from __future__ import annotations

import sys
from pathlib import Path

from streams.dev.worker_process import ServiceProcess

CONSOLE_STOP_TIMEOUT_S = 10.0


class ConsoleProcess(ServiceProcess):
    """``propwatch console`` on ``PROPWATCH_CONSOLE_PORT``; healthy once it has read the review and
    decisions topics to their end. ``env`` names the users file (``PROPWATCH_CONSOLE_USERS_FILE``,
    see :func:`streams.console.users.add_user`); for plain HTTP on loopback, set
    ``PROPWATCH_CONSOLE_COOKIE_SECURE=false``."""

    name = "console"

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(
            [sys.executable, "-m", "streams.cli", "console"],
            env,
            log_path,
            port=int(env.get("PROPWATCH_CONSOLE_PORT", "6070")),
            stop_timeout_s=CONSOLE_STOP_TIMEOUT_S,
        )
