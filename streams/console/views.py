"""The console's pages and forms: login, queue, item (with the decide forms), audit and its
exports, health and metrics. Access control and CSRF are checked before any of these runs
(:mod:`streams.console.app`); each handler checks what its role may do."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from streams.kafka.topics import DECISIONS
from streams.records import utc_now

from .audit import audit_rows, reviewers, to_csv, to_jsonl
from .context import CONSOLE, SESSION, USER, Console
from .decide import DecideForm, FormError, build_decision
from .pages import render
from .users import NAME, User

log = logging.getLogger(__name__)

QUEUE_SHOWN = 500
"""Most rows the queue page lists (its counts cover every pending review)."""
AUDIT_SHOWN = 500
"""Most rows the audit page lists (the exports hold every row)."""
FILTER_MAX_CHARS = 64
"""Longest language or platform a filter takes (longer: no filter)."""
LOGIN_FAILED = "Wrong user name or password."
"""The one message for an unknown user and a wrong password alike."""
LOGIN_THROTTLED = "Too many failed logins. Try again later."
"""The one message for a login refused by :mod:`streams.console.throttle`, whatever the name."""


def page(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    """A page with what every page shows: the user and the session's CSRF token."""
    console = request.app[CONSOLE]
    return render(
        console.templates,
        name,
        status,
        user=request.get(USER),
        csrf=request[SESSION].csrf,
        proxy=console.settings.console_proxy_user_header is not None,
        **context,
    )


def refuse(request: web.Request, reason: str, status: int, message: str) -> web.Response:
    """A refused form: counted (``propwatch_console_refused_forms_total{reason}``) and explained."""
    request.app[CONSOLE].metrics.refused.labels(reason=reason).inc()
    return page(request, "error.html", status, message=message, code=status)


def _user(request: web.Request) -> User:
    user = request.get(USER)
    if user is None:  # the access middleware lets no such request through
        raise web.HTTPSeeOther("/login")
    return user


# --- login and logout ----------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    if request.get(USER) is not None:
        raise web.HTTPSeeOther("/queue")
    return page(request, "login.html", error=None)


async def login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    if console.settings.console_proxy_user_header is not None:
        return refuse(request, "forbidden", 403, "Sign in through your organisation's proxy.")
    form = await request.post()
    name, password = form.get("username"), form.get("password")
    name = name if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    ticket = console.throttle.admit(name, request.remote)
    if ticket is None:  # too many failures for this name or from this address: nothing is checked
        console.metrics.logins.labels(outcome="throttled").inc()
        return page(request, "login.html", 429, error=LOGIN_THROTTLED)
    # One argon2 verification whatever the name (an unknown one is checked against a dummy hash).
    user = await asyncio.get_running_loop().run_in_executor(
        console.passwords, console.users.authenticate, name, password
    )
    if user is None:
        console.metrics.logins.labels(outcome="failure").inc()
        log.info(
            "console login failed for %r", name[:64] if NAME.fullmatch(name[:64]) else "(not a user name)"
        )
        return page(request, "login.html", 200, error=LOGIN_FAILED)
    console.throttle.succeeded(ticket)
    console.metrics.logins.labels(outcome="success").inc()
    log.info("console login: %s (%s)", user.name, user.role)
    response = web.HTTPSeeOther("/queue")
    console.sessions.set_cookie(response, console.sessions.new(user.name))  # a new session, a new token
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    response = web.HTTPSeeOther("/login")
    console.sessions.set_cookie(response, console.sessions.new(None))
    raise response


# --- the queue -----------------------------------------------------------------------------


def _filter(request: web.Request, name: str, allowed: list[str] | None = None) -> str:
    value = request.query.get(name, "")
    if len(value) > FILTER_MAX_CHARS or (allowed is not None and value not in allowed):
        return ""
    return value


async def queue(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    rows = console.state.pending()
    label = _filter(request, "label", list(console.labels))
    lang = _filter(request, "lang")
    platform = _filter(request, "platform")
    shown = [
        row
        for row in rows
        if (not label or label in row.review.labels)
        and (not lang or row.review.lang == lang)
        and (not platform or row.review.platform == platform)
    ]
    claims = console.claims.active()
    decided = request.query.get("decided", "")
    return page(
        request,
        "queue.html",
        rows=shown[:QUEUE_SHOWN],
        matching=len(shown),
        pending=len(rows),
        oldest=max((row.age_s for row in rows), default=0.0),
        claimed=sum(1 for row in rows if row.review.review_id in claims),
        claims=claims,
        now=console.clock(),
        labels=console.labels,
        langs=sorted({row.review.lang for row in rows if row.review.lang})[:200],
        platforms=sorted({row.review.platform for row in rows if row.review.platform})[:200],
        selected={"label": label, "lang": lang, "platform": platform},
        decided=decided if console.state.review(decided) is not None else None,
        ready=console.ready,
        shown_max=QUEUE_SHOWN,
    )


async def next_item(request: web.Request) -> web.StreamResponse:
    """The most urgent pending review nobody else holds; the queue when there is none."""
    console = request.app[CONSOLE]
    user = _user(request)
    for row in console.state.pending():
        claim = console.claims.holder(row.review.review_id)
        if claim is None or claim.user == user.name:
            raise web.HTTPSeeOther(f"/item/{row.review.review_id}")
    raise web.HTTPSeeOther("/queue")


# --- an item and its decision ------------------------------------------------------------------


def _item_page(
    request: web.Request, review_id: str, status: int = 200, error: str | None = None
) -> web.Response:
    console = request.app[CONSOLE]
    user = _user(request)
    state = console.state
    review = state.review(review_id)
    if review is None:
        return page(request, "error.html", 404, message="No pending or decided review has this id.", code=404)
    current = state.current(review)
    pending = state.is_pending(review)
    awaiting = review_id in state.sent
    decidable = not awaiting and (pending or (current is not None and user.supervises))
    if user.decides and decidable:
        claim = console.claims.claim(review_id, user.name)
    else:
        claim = console.claims.holder(review_id)
    mine = claim is not None and claim.user == user.name
    history = [read for read in state.read if read.decision.review_id == review_id]
    return page(
        request,
        "item.html",
        status,
        review=review,
        age_s=state.age_s(review),
        current=current,
        pending=pending,
        awaiting=awaiting,
        claim=claim,
        now=console.clock(),
        can_decide=user.decides and decidable and mine,
        supersede=current is not None,
        history=[(read, state.status(read)) for read in history],
        earlier=state.earlier_decisions(review),
        labels=console.labels,
        error=error,
    )


async def item(request: web.Request) -> web.StreamResponse:
    return _item_page(request, request.match_info["review_id"])


async def decide(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    user = _user(request)
    state = console.state
    review_id = request.match_info["review_id"]
    review = state.review(review_id)
    if review is None:
        return refuse(request, "invalid", 404, "No review has this id.")
    post = await request.post()
    form = DecideForm.read(
        {k: v for k, v in post.items() if isinstance(v, str)},
        [label for label in post.getall("labels", []) if isinstance(label, str)],
    )
    if review_id in state.sent:
        return refuse(request, "invalid", 409, "A decision on this item was just sent.")
    current = state.current(review)
    if current is not None and not user.supervises:
        return refuse(request, "forbidden", 403, "This item is decided; only a supervisor can change that.")
    if (current.decision_id if current else "") != form.supersedes:
        return refuse(
            request,
            "invalid",
            409,
            "The decision in force on this item changed since the page was shown: open it again.",
        )
    claim = console.claims.holder(review_id)
    if claim is not None and claim.user != user.name:
        return refuse(request, "claimed", 409, f"{claim.user} is deciding this item.")
    try:
        message = build_decision(
            form,
            review,
            user,
            labels=console.labels,
            decision_id=str(uuid.uuid4()),
            decided_at=utc_now(),
            supersedes=current,
            key=console.decision_key,
        )
    except FormError as exc:
        console.metrics.refused.labels(reason="invalid").inc()
        return _item_page(request, review_id, 400, error=str(exc))
    # Held from here on without a wait in between: no one else can decide it meanwhile.
    console.claims.claim(review_id, user.name)
    state.sent[review_id] = str(message.decision_id)
    try:
        await console.sender.send(message, review.item_id.encode("utf-8"))
    except Exception as exc:
        state.sent.pop(review_id, None)
        console.metrics.send_errors.inc()
        log.warning(
            "sending a decision to %s failed: %s", console.settings.topic(DECISIONS.name), type(exc).__name__
        )
        return page(
            request,
            "error.html",
            503,
            message="The decision could not be written to the decisions topic. It was not sent: try again.",
            code=503,
        )
    console.claims.release(review_id, user.name)
    console.metrics.decisions.labels(role=user.role, outcome=form.decision).inc()
    if current is None:
        console.metrics.time_to_decision.observe(state.age_s(review))
    log.info("decision %s on review %s by %s (%s)", message.decision_id, review_id, user.name, user.role)
    raise web.HTTPSeeOther(f"/queue?decided={review_id}")


# --- audit -------------------------------------------------------------------------------------


def _audit_reviewer(request: web.Request) -> str | None:
    """Whose decisions: a reviewer sees only their own; others choose (none: everyone's)."""
    user = _user(request)
    if not user.sees_all:
        return user.name
    return request.query.get("reviewer") or None


async def audit(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    user = _user(request)
    reviewer = _audit_reviewer(request)
    rows = audit_rows(console.state, reviewer)
    return page(
        request,
        "audit.html",
        rows=rows[:AUDIT_SHOWN],
        total=len(rows),
        reviewer=reviewer,
        reviewers=reviewers(console.state) if user.sees_all else [],
        shown_max=AUDIT_SHOWN,
    )


def _export(request: web.Request, body: str, content_type: str, suffix: str) -> web.Response:
    response = web.Response(text=body, content_type=content_type, charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="propwatch-audit.{suffix}"'
    return response


async def audit_csv(request: web.Request) -> web.StreamResponse:
    rows = audit_rows(request.app[CONSOLE].state, _audit_reviewer(request))
    return _export(request, to_csv(rows), "text/csv", "csv")


async def audit_jsonl(request: web.Request) -> web.StreamResponse:
    rows = audit_rows(request.app[CONSOLE].state, _audit_reviewer(request))
    return _export(request, to_jsonl(rows), "application/jsonl", "jsonl")


# --- operations ------------------------------------------------------------------------------


def health_body(console: Console) -> dict[str, Any]:
    return {
        "status": "ok" if console.ready else "starting",
        "followers": {
            f.short_name: {"ready": f.ready.is_set(), "skipped": f.skipped} for f in console.followers
        },
        "reviews": len(console.state.queue.records),
        "decisions": len(console.state.read),
        "pending": len(console.state.pending()),
        "users": len(console.users),
    }


async def health(request: web.Request) -> web.StreamResponse:
    """200 once the review and decisions topics have been read to their end, 503 before."""
    console = request.app[CONSOLE]
    body = health_body(console)
    return web.Response(
        text=json.dumps(body), content_type="application/json", status=200 if console.ready else 503
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    body = request.app[CONSOLE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/queue")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", root),
        web.get("/login", login_page),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/queue", queue),
        web.get("/next", next_item),
        web.get("/item/{review_id}", item),
        web.post("/item/{review_id}/decide", decide),
        web.get("/audit", audit),
        web.get("/audit.csv", audit_csv),
        web.get("/audit.jsonl", audit_jsonl),
        web.get("/health", health),
        web.get("/metrics", metrics),
    ]
