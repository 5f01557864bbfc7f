"""What every connector yields: :class:`Found`, one piece of content at its source, before it
becomes a content item (:mod:`streams.records.content`) with an id, a language and a fetch time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
