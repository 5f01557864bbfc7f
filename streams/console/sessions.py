"""Sessions: a signed, expiring cookie, and a CSRF token per session.

The cookie holds the user name (None before login), the session's CSRF token and when it was
issued, signed with itsdangerous (HMAC-SHA1 over a key derived from the console's session key):
a changed cookie is no session. It is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` unless
``PROPWATCH_CONSOLE_COOKIE_SECURE`` is false, and ends :data:`SESSION_MAX_AGE_S` after login.

Every visitor gets a session before logging in, so that the login form carries a CSRF token too;
logging in and out start a new session (a new token), so that a token seen before login is
worthless after it. Every POST must carry its session's token in the form field ``csrf``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadData, URLSafeSerializer

COOKIE = "propwatch_console"
SESSION_MAX_AGE_S = 8 * 3600.0
"""A session ends this long after it began (a working day); then the user logs in again."""
CSRF_FIELD = "csrf"
_SALT = "propwatch-console-session"


@dataclass(frozen=True)
class Session:
    user: str | None
    """The user's name; None before login."""
    csrf: str
    issued: float
    """Epoch seconds."""


class Sessions:
    """Makes, signs, reads and checks sessions."""

    def __init__(
        self,
        key: bytes,
        *,
        secure: bool,
        clock: Callable[[], float] = time.time,
        max_age_s: float = SESSION_MAX_AGE_S,
    ) -> None:
        self._serializer = URLSafeSerializer(key, salt=_SALT)
        self.secure = secure
        self.clock = clock
        self.max_age_s = max_age_s

    def new(self, user: str | None) -> Session:
        return Session(user, secrets.token_urlsafe(32), self.clock())

    def read(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when there is none, or it is changed, malformed or expired."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer.loads(cookie)
        except BadData:
            return None
        if not isinstance(data, list) or len(data) != 3:
            return None
        user, csrf, issued = data
        if not (user is None or isinstance(user, str)) or not isinstance(csrf, str):
            return None
        if not isinstance(issued, int | float) or not 0 <= self.clock() - issued <= self.max_age_s:
            return None
        return Session(user, csrf, float(issued))

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        remaining = max(0, int(session.issued + self.max_age_s - self.clock()))
        response.set_cookie(
            COOKIE,
            self._serializer.dumps([session.user, session.csrf, session.issued]),
            max_age=remaining,
            path="/",
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )

    @staticmethod
    def csrf_ok(session: Session | None, token: object) -> bool:
        """Whether ``token`` (a form's field) is ``session``'s CSRF token."""
        if session is None or not isinstance(token, str):
            return False
        return hmac.compare_digest(session.csrf.encode(), token.encode())
