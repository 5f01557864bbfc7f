"""Claims: who is deciding an item now, so that two reviewers do not decide the same one.

Opening an item claims it for ``PROPWATCH_CONSOLE_CLAIM_S`` (opening it again renews the claim);
while the claim holds, the item shows its holder to everyone and only the holder may decide it.
A decision ends the claim.

Claims live in the console's memory. So **the console runs as one replica**: two consoles would
not see each other's claims (the worker's conflict rule still keeps only the first decision on a
review in force, and dead-letters the second as ``already_decided``). A restart forgets every
claim, which is harmless: they last minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    user: str
    until: float
    """Epoch seconds."""


class Claims:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._claims: dict[str, Claim] = {}

    def holder(self, review_id: str) -> Claim | None:
        """The claim on ``review_id`` that holds now, if any."""
        claim = self._claims.get(review_id)
        if claim is not None and claim.until <= self.clock():
            del self._claims[review_id]
            return None
        return claim

    def claim(self, review_id: str, user: str) -> Claim:
        """Claim ``review_id`` for ``user`` (or renew their claim); the claim that holds after,
        which is someone else's when they hold it."""
        current = self.holder(review_id)
        if current is not None and current.user != user:
            return current
        claim = Claim(user, self.clock() + self.ttl_s)
        self._claims[review_id] = claim
        return claim

    def release(self, review_id: str, user: str) -> None:
        """End ``user``'s claim on ``review_id`` (another's stays)."""
        current = self.holder(review_id)
        if current is not None and current.user == user:
            del self._claims[review_id]

    def active(self) -> dict[str, Claim]:
        """Every claim that holds now, by review id."""
        for review_id in list(self._claims):
            self.holder(review_id)
        return dict(self._claims)
