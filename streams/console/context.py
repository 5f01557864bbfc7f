"""What every request handler of the console reaches: one :class:`Console` per app."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web
from jinja2 import Environment

from streams.kafka.follower import TopicFollower
from streams.metrics import ConsoleMetrics
from streams.settings import Settings

from .claims import Claims
from .decide import DecisionSender
from .sessions import Session, Sessions
from .state import ConsoleState
from .throttle import LoginThrottle
from .users import User, Users

PASSWORD_THREADS = 2


@dataclass
class Console:
    settings: Settings
    labels: tuple[str, ...]
    state: ConsoleState
    claims: Claims
    users: Users
    sessions: Sessions
    metrics: ConsoleMetrics
    sender: DecisionSender
    templates: Environment
    clock: Callable[[], float]
    decision_key: bytes | None
    """Signs every decision when set (``PROPWATCH_DECISION_KEY``)."""
    throttle: LoginThrottle
    followers: list[TopicFollower] = field(default_factory=list)
    passwords: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            PASSWORD_THREADS, thread_name_prefix="propwatch-console-login"
        )
    )
    """Where logins verify passwords: argon2 takes 64 MiB and tens of milliseconds a check, so
    at most :data:`PASSWORD_THREADS` at a time, whatever a flood of login attempts asks."""

    @property
    def ready(self) -> bool:
        """Whether the review and decisions topics have been read to their end once."""
        return all(follower.ready.is_set() for follower in self.followers)


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", Session)
NEW_SESSION = web.RequestKey("new_session", bool)
"""Whether the session began with this request (its cookie must be set on the response)."""
USER = web.RequestKey("user", User)
"""The logged-in user, or None."""
