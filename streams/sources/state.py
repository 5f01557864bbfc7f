"""What the sources service remembers across passes and restarts, in one SQLite file under
``PROPWATCH_DATA_DIR`` (``sources.sqlite3``, WAL journal):

- ``sent``: every item sent, by normalised URL and content hash (an item without a URL: by its
  source and content hash), so that nothing is sent twice. An item is marked only after the
  producer's flush was acknowledged: delivery is at-least-once, and a crash between the
  acknowledgement and the mark sends it again on the next pass, with the same deterministic id
  (:mod:`streams.sources.items`), so the pipeline's outputs for it repeat their ids. Items sent
  longer ago than ``state.keep_sent`` are forgotten (:meth:`SourcesState.forget_sent`, indexed by
  ``sent_at``), so the table does not grow for ever: one found again after that is sent again,
  with the same id;
- ``validators``: each URL's ETag and Last-Modified, per source (the :class:`ValidatorStore` the
  fetcher uses), so that re-polling costs a 304; per source, so that a URL two sources read is new
  to each until it has read it;
- ``backoff``: each failing source's consecutive failures and when to try it next;
- ``activity``: when each source last sent an item and was last read without a failure of its
  own, so that the metrics the ``PropwatchSourceSilent`` and ``PropwatchSourceFailing`` alerts
  read do not start afresh with every restart.

One connection, shared by the event loop and the service's threads behind a lock; every call is
a short local query.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from streams.settings import Settings
from streams.sources.base import Validators

FILE_NAME = "sources.sqlite3"
MAX_VALIDATOR_CHARS = 1024
"""A longer ETag or Last-Modified is not kept (a server's whim, not a validator)."""
FORGET_BATCH = 10_000
"""Most sent items :meth:`SourcesState.forget_sent` deletes at once, so that it never holds the
state for long (a first run on a large old table forgets the rest in the next calls)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    url TEXT NOT NULL,            -- normalised URL; '' for an item without one
    source TEXT NOT NULL,         -- '' for an item with a URL; its source's name otherwise
    content_sha256 TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (url, source, content_sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_by_time ON sent (sent_at);
CREATE TABLE IF NOT EXISTS validators (
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    PRIMARY KEY (source, url)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backoff (
    source TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    next_attempt REAL NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity (
    source TEXT PRIMARY KEY,
    last_item REAL,               -- when it last sent an item (epoch seconds)
    last_success REAL             -- when a pass last read it without a failure of its own
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class SentKey:
    """What makes an item "already sent": its normalised URL and content hash, or, for an item
    without a URL, its source and content hash."""

    url: str
    source: str
    content_sha256: str

    @classmethod
    def of(cls, norm_url: str | None, source: str, content_sha256: str) -> SentKey:
        if norm_url:
            return cls(norm_url, "", content_sha256)
        return cls("", source, content_sha256)


@dataclass(frozen=True)
class Activity:
    """When a source last sent an item and was last read successfully (epoch seconds; None:
    not since this state was created)."""

    last_item: float | None = None
    last_success: float | None = None


@dataclass(frozen=True)
class Backoff:
    """A source that failed ``failures`` times in a row: not tried again before ``next_attempt``
    (epoch seconds)."""

    failures: int
    next_attempt: float
    reason: str


class SourcesState:
    """The service's SQLite state (see the module). Use it as a context manager, or :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    @classmethod
    def open(cls, settings: Settings) -> SourcesState:
        """The state file under ``PROPWATCH_DATA_DIR`` (created with its folder if need be)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.data_dir / FILE_NAME)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, in one transaction: committed, or rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- dedupe ---------------------------------------------------------------------------------

    def is_sent(self, key: SentKey) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM sent WHERE url = ? AND source = ? AND content_sha256 = ?",
                (key.url, key.source, key.content_sha256),
            ).fetchone()
        return row is not None

    def mark_sent(
        self, keys: Iterable[SentKey], *, at: float | None = None, source: str | None = None
    ) -> None:
        """Record items as sent: call it only once the broker acknowledged them. With ``source``,
        also that it sent an item ``at`` (its :class:`Activity`)."""
        at = time.time() if at is None else at
        rows = [(k.url, k.source, k.content_sha256, at) for k in keys]
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO sent VALUES (?, ?, ?, ?)", rows)
            if source is not None and rows:
                db.execute(
                    "INSERT INTO activity (source, last_item) VALUES (?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET last_item = excluded.last_item",
                    (source, at),
                )

    def forget_sent(self, before: float, *, most: int = FORGET_BATCH) -> int:
        """Forget at most ``most`` items sent before ``before`` (epoch seconds), the oldest first;
        how many were forgotten. An indexed range delete: cheap when there is nothing to forget."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM sent WHERE (url, source, content_sha256) IN ("
                "SELECT url, source, content_sha256 FROM sent WHERE sent_at < ? ORDER BY sent_at LIMIT ?)",
                (before, most),
            )
        return cursor.rowcount

    # --- validators (ValidatorStore) ------------------------------------------------------------

    def validators(self, url: str, *, source: str = "") -> Validators | None:
        with self._lock:
            row = self._db.execute(
                "SELECT etag, last_modified FROM validators WHERE source = ? AND url = ?", (source, url)
            ).fetchone()
        return None if row is None else Validators(etag=row[0], last_modified=row[1])

    def remember(self, url: str, validators: Validators, *, source: str = "") -> None:
        etag, modified = (
            v if v is not None and len(v) <= MAX_VALIDATOR_CHARS else None
            for v in (validators.etag, validators.last_modified)
        )
        with self._lock:
            if etag is None and modified is None:
                self._db.execute("DELETE FROM validators WHERE source = ? AND url = ?", (source, url))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?)", (source, url, etag, modified)
                )

    # --- backoff --------------------------------------------------------------------------------

    def backoff(self, source: str) -> Backoff | None:
        """The source's backoff, or None when its last pass succeeded (or it never failed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT failures, next_attempt, reason FROM backoff WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else Backoff(*row)

    def failed(
        self, source: str, reason: str, delay_s: Callable[[int], float], *, now: float | None = None
    ) -> Backoff:
        """Record one more failure in a row of ``source``; its next attempt is ``delay_s(failures)``
        seconds from now, ``failures`` counting this one."""
        now = time.time() if now is None else now
        previous = self.backoff(source)
        failures = (previous.failures if previous else 0) + 1
        backoff = Backoff(failures, now + delay_s(failures), reason)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO backoff VALUES (?, ?, ?, ?)",
                (source, backoff.failures, backoff.next_attempt, reason),
            )
        return backoff

    def succeeded(self, source: str, *, at: float | None = None) -> None:
        """The source's pass succeeded (``at``): it has no backoff any more."""
        at = time.time() if at is None else at
        with self._transaction() as db:
            db.execute("DELETE FROM backoff WHERE source = ?", (source,))
            db.execute(
                "INSERT INTO activity (source, last_success) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET last_success = excluded.last_success",
                (source, at),
            )

    # --- activity -------------------------------------------------------------------------------

    def activity(self, source: str) -> Activity:
        """When ``source`` last sent an item and was last read successfully."""
        with self._lock:
            row = self._db.execute(
                "SELECT last_item, last_success FROM activity WHERE source = ?", (source,)
            ).fetchone()
        return Activity() if row is None else Activity(*row)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SourcesState:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
