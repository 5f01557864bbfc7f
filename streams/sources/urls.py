"""URLs as the sources service keys them: :func:`normalise_url` is the URL part of the dedupe key
and the ``url`` of every item a connector finds on the web."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import courlan

from streams.records.content import CONTROL_OR_BREAK, FIELD_LIMITS, SURROGATE

SCHEMES = ("http", "https")
"""The only schemes a connector fetches or keys on."""


def normalise_url(url: str) -> str | None:
    """``url`` in one canonical form, or None when it is not an absolute http(s) URL with a host.

    courlan's ``normalize_url`` lowercases the scheme and host, drops the scheme's default port and
    the tracking parameters (``utm_*``, ``fbclid``, ...), and sorts the query; on top of it the
    fragment and any ``user:password@`` are dropped (a password must not travel in an item). None
    too when the host is not a host name (:func:`_valid_host`), or the result is longer than a
    content item's ``url`` may be or holds what one may not (control characters, lone
    surrogates). Never raises."""
    if not isinstance(url, str) or len(url) > FIELD_LIMITS["url"]:
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname  # lowercased, without the user's credentials or IPv6's brackets
        if parts.scheme.lower() not in SCHEMES or not host or not _valid_host(host):
            return None
        if ":" in host:
            host = f"[{host}]"
        port = parts.port  # ValueError when it is not a port number
        netloc = host if port is None else f"{host}:{port}"
        normalised = courlan.normalize_url(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    except (ValueError, UnicodeError):
        return None
    if (
        len(normalised) > FIELD_LIMITS["url"]
        or CONTROL_OR_BREAK.search(normalised)
        or SURROGATE.search(normalised)
    ):
        return None
    return normalised


def platform_of(url: str) -> str:
    """The ``platform`` of content found at ``url``: its lowercased host name without port, or
    ``web`` when it has none or one longer than a content item's ``platform`` may be."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host or len(host) > FIELD_LIMITS["platform"] or not _valid_host(host):
        return "web"
    return host


def _valid_host(host: str) -> bool:
    """A host name of letters (of any script), digits, ``-``, ``.`` and ``_``, or an IPv6 address."""
    if ":" in host:
        return all(ch in "0123456789abcdef:." for ch in host)
    return all(ch.isalnum() or ch in "-._" for ch in host)
