"""What the console's unit tests share: users with cheap argon2 hashes, a clock that moves only when
told, review records, and a decision sender that keeps what it is given and plays it back as the
decisions topic's follower would. No broker."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from argon2 import PasswordHasher, profiles

from streams.console.app import build_app
from streams.console.context import CONSOLE, Console
from streams.console.users import Users, add_user
from streams.kafka.follower import Followed
from streams.metrics import ConsoleMetrics
from streams.records import DecisionMessage, Review, SourcePosition, encode
from streams.settings import Settings
from tests.unit.test_decision_rules import review

HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
"""Fast hashes for tests (the console's own default is argon2-cffi's, tens of milliseconds)."""
T0 = 1_795_000_000.0
"""The tests' "now": 2026-11-18T..., after the reviews' ``classified_at`` below."""
PEOPLE = {"ria": "reviewer", "rob": "reviewer", "sue": "supervisor", "ada": "auditor"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def password(name: str) -> str:
    return f"correct horse {name}"


def make_users(path: Path, clock: Callable[[], float] = time.monotonic) -> Users:
    for name, role in PEOPLE.items():
        add_user(path, name, role, password(name), HASHER)  # type: ignore[arg-type]
    return Users.load(path, HASHER, clock=clock)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(
    item_id: str,
    text: str = "The Grey Heron Front wants new members, message us",
    *,
    labels: tuple[str, ...] = ("recruitment", "threat"),
    scores: dict[str, float] | None = None,
    classified_at: str = "2026-11-18T06:00:00.000Z",
    **fields: Any,
) -> dict[str, Any]:
    """A valid review record (its ids and hash consistent), with the given fields."""
    base = review(item_id, text)
    base.update(labels=list(labels), classified_at=classified_at, **fields)
    if scores is not None:
        base["scores"] = scores
    return base


def with_text(rec: dict[str, Any], text: str) -> dict[str, Any]:
    """``rec`` with another text (of any length), its hash and review id made to agree."""
    review = Review.from_json(encode(rec))
    subject = review.subject.model_copy(
        update={"text": text, "content_sha256": hashlib.sha256(text.encode()).hexdigest()}
    )
    kept = ("labels", "scores", "thresholds", "review_thresholds", "classified_at", "evidence")
    return Review.of(subject, model=review.model, **{name: getattr(review, name) for name in kept}).as_json()


class Recorder:
    """A :class:`~streams.console.decide.DecisionSender` that keeps what it is sent (or fails)."""

    def __init__(self) -> None:
        self.sent: list[tuple[DecisionMessage, bytes]] = []
        self.fail = False

    async def send(self, message: DecisionMessage, key: bytes) -> None:
        if self.fail:
            raise ConnectionError("no broker")
        self.sent.append((message, key))


@dataclass
class Desk:
    """A console without a broker: its state fed by hand, its decisions kept by a recorder."""

    server: TestServer
    console: Console
    recorder: Recorder
    clock: Clock
    metrics: ConsoleMetrics
    offsets: dict[str, int] = field(default_factory=lambda: {"review": 0, "decisions": 0})

    def add_reviews(self, *records: dict[str, Any]) -> None:
        for rec in records:
            self.feed("review", encode(rec))

    def feed(self, topic: str, value: bytes) -> str | None:
        """One message on the review or decisions topic, as the follower hands it over."""
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        message = Followed(None, value, SourcePosition(topic, 0, offset), self.clock())
        state = self.console.state
        return (state.apply_review if topic == "review" else state.apply_decision)(message)

    def read_back(self) -> None:
        """Everything sent so far arrives on the decisions topic."""
        sent, self.recorder.sent = self.recorder.sent, []
        for message, _ in sent:
            assert self.feed("decisions", message.to_json()) is None

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @asynccontextmanager
    async def browser(self, name: str | None = None) -> AsyncIterator[Browser]:
        """A client with its own cookies, logged in as ``name`` (when given)."""
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=self.server.make_url(""), cookie_jar=jar) as session:
            browser = Browser(session)
            if name is not None:
                response = await browser.login(name, password(name))
                assert response.status == 303, await response.text()
            yield browser


class Browser:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.csrf = ""

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.session.get(path, allow_redirects=False, **kwargs) as response:
            text = await response.text()
            found = CSRF.search(text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def post(self, path: str, data: Any, *, csrf: bool = True) -> aiohttp.ClientResponse:
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf:
            fields.append(("csrf", self.csrf))
        async with self.session.post(path, data=fields, allow_redirects=False) as response:
            await response.read()
            return response

    async def login(self, name: str, secret: str) -> aiohttp.ClientResponse:
        await self.get("/login")
        return await self.post("/login", {"username": name, "password": secret})

    async def decide(self, review_id: str, decision: str, **fields: Any) -> aiohttp.ClientResponse:
        """Open the item (as a reviewer does, claiming it) and send its form."""
        await self.get(f"/item/{review_id}")
        data: list[tuple[str, str]] = [("decision", decision), ("supersedes", fields.pop("supersedes", ""))]
        for label in fields.pop("labels", ()):
            data.append(("labels", label))
        data.extend((k, v) for k, v in fields.items())
        return await self.post(f"/item/{review_id}/decide", data)


@asynccontextmanager
async def desk(tmp_path: Path, **settings: Any) -> AsyncIterator[Desk]:
    clock = Clock()
    metrics = ConsoleMetrics()
    recorder = Recorder()
    config = Settings(**{"console_cookie_secure": False, **settings})
    app = build_app(
        config,
        make_users(tmp_path / "users.json", clock),
        metrics=metrics,
        sender=recorder,
        follow=False,
        clock=clock,
    )
    async with TestServer(app) as server:
        yield Desk(server, app[CONSOLE], recorder, clock, metrics)


def sample(metrics: ConsoleMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"propwatch_console_{name}", labels or None)
    return 0.0 if value is None else value


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]
