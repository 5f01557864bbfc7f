"""The console's web application: built by :func:`build_app` from the settings (no app exists at
import time), served by :func:`serve` (``propwatch console``).

Every request passes :func:`access` first: the users file is read again if it changed
(:meth:`Users.refresh <streams.console.users.Users.refresh>`), the session is read from its
cookie (or begun), the user resolved (from the session, or from the trusted proxy header when one
is configured), every POST's form read (a body that is not one is refused, 400) and its CSRF
token checked, a request without a user for anything but the login page, /health, /metrics and
/static redirected to the login page, and every POST from an auditor refused (but logging out).
Every response carries the security headers of :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from aiohttp import web

from classifiers.base import LABELS
from streams.app import CLIENT_LOGGERS
from streams.kafka.follower import TopicFollower
from streams.kafka.topics import DECISIONS, REVIEW
from streams.metrics import ConsoleMetrics
from streams.records import ErrorCode
from streams.settings import Settings

from .claims import Claims
from .context import CONSOLE, NEW_SESSION, SESSION, USER, Console
from .decide import DecisionSender, KafkaDecisionSender
from .pages import environment
from .sessions import COOKIE, CSRF_FIELD, Sessions
from .state import ConsoleState
from .throttle import LoginThrottle
from .users import Users
from .views import refuse, routes

log = logging.getLogger(__name__)

SESSION_KEY_MIN_CHARS = 32
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""No script, style or image from anywhere but the console itself, and no inline script or style;
never framed; no Referer to the sites of the URLs an item names; no content sniffing."""
PUBLIC = ("/login", "/health", "/metrics")
"""What a visitor who is not logged in may reach (and ``/static/``)."""
INDEX_EVERY_S = 1.0
INDEX_BATCH = 100
"""The near-duplicate index takes up to this many newly decided reviews a second in the
background (an item page takes the rest when it needs them)."""


def _public(path: str) -> bool:
    return path in PUBLIC or path.startswith("/static/")


@web.middleware
async def access(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Session, user, CSRF and role checks before any handler (see the module's docstring)."""
    console = request.app[CONSOLE]
    if _public(request.path) and request.path != "/login":  # no session: static files, probes
        return await handler(request)
    reloaded = console.users.refresh()  # a user added, removed or changed counts from here on
    if reloaded is not None:
        console.metrics.users_file_reloads.labels(outcome=reloaded).inc()
    session = console.sessions.read(request.cookies.get(COOKIE))
    request[NEW_SESSION] = session is None
    if session is None:
        session = console.sessions.new(None)
    request[SESSION] = session
    header = console.settings.console_proxy_user_header
    if header is not None:
        name = request.headers.get(header)
        request[USER] = console.users.get(name) if name else None
    else:
        request[USER] = console.users.get(session.user) if session.user else None
    user = request[USER]
    if request.method == "POST":
        try:
            form = await request.post()
        except (ValueError, LookupError):  # a broken body, bytes not in its charset, an unknown charset
            return refuse(request, "invalid", 400, "The form could not be read.")
        if request[NEW_SESSION] or not console.sessions.csrf_ok(session, form.get(CSRF_FIELD)):
            return refuse(request, "csrf", 403, "The form has expired or did not come from this console.")
        if user is not None and not user.decides and request.path != "/logout":
            return refuse(request, "forbidden", 403, "An auditor's account reads only.")
    if user is None and not _public(request.path):
        raise web.HTTPSeeOther("/login")
    response = await handler(request)
    if request[NEW_SESSION]:
        console.sessions.set_cookie(response, session)
    return response


@web.middleware
async def contain(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No exception crosses a request: an unexpected one is logged and answered 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("console: %s %s failed", request.method, request.path)
        return web.Response(text="Internal error: it has been logged.", status=500, content_type="text/plain")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Server"] = "propwatch"  # not aiohttp's name and version
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


def session_key(settings: Settings) -> bytes:
    """The key that signs session cookies: the setting, or a random one (sessions end at restart)."""
    if settings.console_session_key is None:
        return secrets.token_bytes(32)
    key = settings.console_session_key.get_secret_value()
    if len(key) < SESSION_KEY_MIN_CHARS:
        raise ValueError(
            f"PROPWATCH_CONSOLE_SESSION_KEY must have at least {SESSION_KEY_MIN_CHARS} characters"
        )
    return key.encode("utf-8")


def build_app(
    settings: Settings,
    users: Users,
    *,
    metrics: ConsoleMetrics | None = None,
    sender: DecisionSender | None = None,
    follow: bool = True,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The console for ``settings`` and ``users``. ``follow`` reads the review and decisions
    topics in the background (tests without a broker turn it off and feed ``app[CONSOLE].state``);
    ``sender`` writes decisions (default: to the decisions topic)."""
    metrics = metrics or ConsoleMetrics()
    keys = settings.decision_keys()
    state = ConsoleState(LABELS, keys=keys, similarity=settings.hashbank_similarity, clock=clock)
    console = Console(
        settings=settings,
        labels=LABELS,
        state=state,
        claims=Claims(settings.console_claim_s, clock),
        users=users,
        sessions=Sessions(session_key(settings), secure=settings.console_cookie_secure, clock=clock),
        metrics=metrics,
        sender=sender or KafkaDecisionSender(settings),
        templates=environment(),
        clock=clock,
        decision_key=keys[0] if keys else None,
        throttle=LoginThrottle(
            per_name=settings.console_login_attempts,
            per_address=settings.console_login_address_attempts,
            window_s=settings.console_login_window_s,
            clock=clock,
        ),
    )
    if follow:
        console.followers = [
            TopicFollower(
                settings,
                REVIEW.name,
                state.apply_review,
                invalid_code=ErrorCode.INVALID_REVIEW_RECORD,
                metrics=metrics,
                keep_invalid=False,  # the console dead-letters nothing: it counts and skips
            ),
            TopicFollower(
                settings,
                DECISIONS.name,
                state.apply_decision,
                invalid_code=ErrorCode.INVALID_DECISION,
                metrics=metrics,
                partitions=DECISIONS.partitions,
                keep_invalid=False,
            ),
        ]
    metrics.pending_reviews.set_function(lambda: len(state.pending()))
    metrics.oldest_pending_review_age.set_function(
        lambda: max((r.age_s for r in state.pending()), default=0.0)
    )
    metrics.claimed_reviews.set_function(
        lambda: sum(1 for review_id in console.claims.active() if _pending(state, review_id))
    )

    app = web.Application(middlewares=[contain, access])
    app[CONSOLE] = console
    app.add_routes(routes())
    app.router.add_static("/static", Path(str(files("streams.console").joinpath("static"))))
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_background)
    return app


def _pending(state: ConsoleState, review_id: str) -> bool:
    review = state.review(review_id)
    return review is not None and state.is_pending(review)


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The followers and the near-duplicate index while the app runs; the sender closed after."""
    console = app[CONSOLE]
    for name in CLIENT_LOGGERS:  # no log level puts content in the log
        logging.getLogger(name).setLevel(logging.INFO)

    async def index() -> None:
        while True:
            await asyncio.sleep(INDEX_EVERY_S)
            try:
                console.state.index_decided(INDEX_BATCH)
            except Exception:
                log.exception("indexing decided reviews failed")

    tasks = [asyncio.create_task(follower.run()) for follower in console.followers]
    tasks.append(asyncio.create_task(index()))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        console.passwords.shutdown(wait=False, cancel_futures=True)
        close = getattr(console.sender, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, close)


def serve(settings: Settings, users: Users, port: int) -> None:
    """Run the console on ``settings.console_bind``:``port`` until SIGINT or SIGTERM."""
    app = build_app(settings, users)
    web.run_app(
        app,
        host=settings.console_bind,
        port=port,
        print=lambda line: log.info("%s", line.strip()),
        handle_signals=True,
    )
