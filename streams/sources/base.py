"""What every connector yields: :class:`Found`, one piece of content at its source, before it
becomes a content item (:mod:`streams.records.content`) with an id, a language and a fetch time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Found:
    """One piece of content a connector found."""

    text: str
    """The content's text (a post, a page's main text, a message), as found."""
    url: str | None
    """Where it can be seen: the page, the entry's link, the message's permalink; None when none
    can be built (a message of a private export)."""
    platform: str
    """Where it was found: a site's host name, ``telegram``, ``discord``, ``web``."""
    published_at: datetime | None = None
    """When the source says it was published (timezone-aware), when it says."""
    author: str | None = None
    """The author as the source names them (the pipeline keeps only an HMAC of it)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """What the source says about where it was found: feed or channel title, WARC record id."""


@dataclass(frozen=True)
class Failure:
    """A fetch or read that failed, yielded by a connector in place of content. Counted as
    ``propwatch_source_fetch_errors_total{reason}`` and logged with ``detail``; never raised."""

    reason: str
    """One of :data:`streams.metrics.FETCH_ERRORS`."""
    detail: str
    """What happened, for the log (bounded, printable)."""
    url: str | None = None
    fatal: bool = False
    """True when the source as a whole could not be read (its feed, sitemap, URL list or file):
    the service retries it with backoff. False for one page or record of it."""


@dataclass(frozen=True)
class Validators:
    """An HTTP response's cache validators, for the next conditional request of its URL."""

    etag: str | None = None
    last_modified: str | None = None


class ValidatorStore(Protocol):
    """Where the fetcher keeps each URL's validators between passes (and restarts)."""

    def validators(self, url: str) -> Validators | None: ...

    def remember(self, url: str, validators: Validators) -> None: ...
