"""Server-rendered pages: Jinja2 with autoescape on, and the filters that bound and tame hostile
values (every value on a page comes from a topic, a form or a header)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined

from streams.reporting.render import duration
from streams.safejson import for_terminal

TEXT_SHOWN_CHARS = 20_000
"""Most characters of an item's text on its page (the rest is cut, and the page says so)."""


def clip(value: object, limit: int = 80) -> str:
    """``value`` as text, cut to ``limit`` characters with an ellipsis. Control characters and the
    bidirectional controls that would reorder what the page shows around them (a name that
    reads as another's, a URL whose end shows first) are written as ``\\uXXXX``
    (:func:`~streams.safejson.for_terminal`)."""
    text = "" if value is None else for_terminal(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def href(url: object) -> str | None:
    """``url`` when it is a plain http(s) URL that is safe in an ``href`` (never ``javascript:``,
    ``data:`` or anything else a browser would run, nor one with spaces, control characters or
    bidirectional controls); None otherwise, and the page shows it as text."""
    if not isinstance(url, str) or any(c.isspace() for c in url) or for_terminal(url) != url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("streams.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=lambda seconds: duration(max(0.0, seconds)), clip=clip, href=href)
    env.globals.update(TEXT_SHOWN_CHARS=TEXT_SHOWN_CHARS)
    return env


def render(env: Environment, name: str, status: int = 200, **context: Any) -> web.Response:
    """The template ``name`` as an HTML response."""
    body = env.get_template(name).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
