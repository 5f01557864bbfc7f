"""Login throttling: too many failed logins for a user name, or from a client address, and further
logins for it are refused for a while, without checking the password.

A login is counted as a failure from the moment it is admitted until its password proves right
(:meth:`LoginThrottle.admit`, then :meth:`LoginThrottle.succeeded`), so that a burst of
concurrent guesses, all waiting for their argon2 verification, cannot get past the limit. Once a
name has ``per_name`` failures within the last ``window_s`` seconds (``PROPWATCH_CONSOLE_LOGIN_*``),
every login for it is refused until the oldest of them is ``window_s`` old; the same for an
address with ``per_address`` failures. A refused login counts nothing (an attacker cannot extend
the wait), and a login that succeeds clears its name's failures.

- **Unknown names count as known ones**, so that whether a name is refused tells nothing about
  whether it is a user's. A string that is not a user name at all (:data:`~streams.console.users.NAME`)
  counts under one shared key.
- **The address** is the TCP peer's. Behind a reverse proxy it is the proxy's, shared by everyone:
  the limit per address then counts the whole organisation's failures, so deployments behind one
  set ``PROPWATCH_CONSOLE_LOGIN_ADDRESS_ATTEMPTS=0`` and rely on the limit per name (and, if they
  want one per client, the proxy's own). ``X-Forwarded-For`` is never read: anyone can send it.
- **Bounded memory**: at most :data:`MAX_TRACKED` names and as many addresses are remembered;
  past that, those whose latest failure is oldest are forgotten first.
- **The cost**: anyone can lock a user out for a window by failing their name's logins. That is the
  price of a limit per name; the console's log says when a name or an address reaches its limit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .users import NAME

log = logging.getLogger(__name__)

MAX_TRACKED = 10_000
"""Most user names, and most addresses, whose failures are remembered at once."""
NOT_A_NAME = ""
"""The one key of every string that cannot be a user name."""


@dataclass(frozen=True)
class Ticket:
    """An admitted login: counted as a failure of ``name`` and ``address`` at ``at``."""

    name: str
    address: str | None
    at: float


class _Failures:
    """Failure times by key, the key with the most recent failure last."""

    def __init__(self, limit: int, window_s: float, what: str) -> None:
        self.limit = limit
        self.window_s = window_s
        self.what = what
        self._times: dict[str, deque[float]] = {}

    def count(self, key: str, now: float) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._times[key]
        return len(times)

    def full(self, key: str, now: float) -> bool:
        return self.limit > 0 and self.count(key, now) >= self.limit

    def add(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        times = self._times.pop(key, None) or deque()
        times.append(now)
        self._times[key] = times  # last: the most recent failure
        if len(times) == self.limit:
            log.warning(
                "console logins for %s %r refused for up to %.0f s: %d failed within that time",
                self.what,
                key or "(not a user name)",
                self.window_s,
                self.limit,
            )
        while len(self._times) > MAX_TRACKED:
            del self._times[next(iter(self._times))]

    def remove(self, key: str, at: float) -> None:
        times = self._times.get(key)
        if times is not None and at in times:
            times.remove(at)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


class LoginThrottle:
    """Failed logins by user name and by client address (see the module's docstring)."""

    def __init__(
        self, *, per_name: int, per_address: int, window_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self._names = _Failures(per_name, window_s, "user name")
        self._addresses = _Failures(per_address, window_s, "client address")

    @staticmethod
    def _name(name: str) -> str:
        return name if NAME.fullmatch(name) else NOT_A_NAME

    def admit(self, name: str, address: str | None) -> Ticket | None:
        """A ticket for a login of ``name`` from ``address``, counted as a failure from now on; None
        when the name or the address has had too many failures (refuse it, check nothing)."""
        now = self.clock()
        key = self._name(name)
        if self._names.full(key, now) or (address is not None and self._addresses.full(address, now)):
            return None
        self._names.add(key, now)
        if address is not None:
            self._addresses.add(address, now)
        return Ticket(key, address, now)

    def succeeded(self, ticket: Ticket) -> None:
        """The login of ``ticket`` proved right: its name's failures are cleared, and it is no
        failure of its address."""
        self._names.clear(ticket.name)
        if ticket.address is not None:
            self._addresses.remove(ticket.address, ticket.at)
