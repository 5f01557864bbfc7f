"""The sources service's SQLite state: what was sent, validators, backoff and activity, across a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from streams.settings import Settings
from streams.sources.base import Validators
from streams.sources.state import FILE_NAME, MAX_VALIDATOR_CHARS, Activity, SentKey, SourcesState

SHA = "ab" * 32


def test_the_state_lives_under_the_data_dir_in_wal_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with SourcesState.open(settings) as state:
        assert state.path == tmp_path / "data" / FILE_NAME
    with sqlite3.connect(tmp_path / "data" / FILE_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_what_was_sent_stays_sent_after_reopening(tmp_path: Path) -> None:
    page = SentKey.of("https://a.example/p", "feed-a", SHA)
    message = SentKey.of(None, "channel", SHA)
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert not state.is_sent(page) and not state.is_sent(message)
        state.mark_sent([page, message])
        state.mark_sent([page])  # marking twice is harmless
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert state.is_sent(page) and state.is_sent(message)
        # the same URL and content from another source was sent: a URL identifies the content
        assert state.is_sent(SentKey.of("https://a.example/p", "other", SHA))
        # without a URL, only the same source's same content is
        assert not state.is_sent(SentKey.of(None, "other-channel", SHA))
        # changed content at the same URL is new
        assert not state.is_sent(SentKey.of("https://a.example/p", "feed-a", "cd" * 32))


def test_validators_are_remembered_per_source_replaced_and_forgotten(tmp_path: Path) -> None:
    url = "https://a.example/feed"
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert state.validators(url, source="feed-a") is None
        state.remember(
            url, Validators(etag='"v1"', last_modified="Tue, 01 Dec 2026 10:00:00 GMT"), source="feed-a"
        )
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert state.validators(url, source="feed-a") == Validators('"v1"', "Tue, 01 Dec 2026 10:00:00 GMT")
        assert state.validators(url, source="feed-b") is None and state.validators(url) is None
        state.remember(url, Validators(etag='"v2"'), source="feed-a")
        assert state.validators(url, source="feed-a") == Validators('"v2"', None)
        state.remember(url, Validators(etag="x" * (MAX_VALIDATOR_CHARS + 1)), source="feed-a")  # a whim
        assert state.validators(url, source="feed-a") is None


def test_backoff_counts_failures_in_a_row_and_survives_a_restart(tmp_path: Path) -> None:
    delays: list[int] = []

    def delay(failures: int) -> float:
        delays.append(failures)
        return 60.0 * failures

    with SourcesState(tmp_path / FILE_NAME) as state:
        assert state.backoff("feed-a") is None
        first = state.failed("feed-a", "timeout", delay, now=1000.0)
        assert (first.failures, first.next_attempt, first.reason) == (1, 1060.0, "timeout")
    with SourcesState(tmp_path / FILE_NAME) as state:
        second = state.failed("feed-a", "http_status", delay, now=2000.0)
        assert (second.failures, second.next_attempt, second.reason) == (2, 2120.0, "http_status")
        assert state.backoff("feed-a") == second
        assert state.backoff("feed-b") is None
        state.succeeded("feed-a")
        assert state.backoff("feed-a") is None
        assert state.failed("feed-a", "timeout", delay, now=3000.0).failures == 1, "a success starts over"
    assert delays == [1, 2, 1]


def test_activity_is_when_a_source_last_sent_and_was_last_read(tmp_path: Path) -> None:
    page = SentKey.of("https://a.example/p", "feed-a", SHA)
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert state.activity("feed-a") == Activity()
        state.succeeded("feed-a", at=1000.0)
        state.mark_sent([page], at=1500.0, source="feed-a")
        state.mark_sent([], at=1700.0, source="feed-a")  # nothing sent: no new item time
        state.mark_sent([SentKey.of(None, "feed-b", SHA)], at=1800.0)  # no source given
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert state.activity("feed-a") == Activity(last_item=1500.0, last_success=1000.0)
        assert state.activity("feed-b") == Activity()
        state.succeeded("feed-a", at=2000.0)
        assert state.activity("feed-a") == Activity(last_item=1500.0, last_success=2000.0)


def test_items_sent_before_a_time_are_forgotten_oldest_first_in_batches(tmp_path: Path) -> None:
    keys = [SentKey.of(f"https://a.example/{n}", "feed-a", SHA) for n in range(5)]
    with SourcesState(tmp_path / FILE_NAME) as state:
        for n, key in enumerate(keys):
            state.mark_sent([key], at=1000.0 + n)
        assert state.forget_sent(1000.0) == 0, "nothing was sent before"
        assert state.forget_sent(1003.0, most=2) == 2
        assert [state.is_sent(key) for key in keys] == [False, False, True, True, True]
        assert state.forget_sent(1003.0) == 1, "the rest in the next call"
        assert state.forget_sent(1003.0) == 0
    with SourcesState(tmp_path / FILE_NAME) as state:
        assert [state.is_sent(key) for key in keys] == [False, False, False, True, True]


def test_forgetting_uses_the_index_on_the_send_time(tmp_path: Path) -> None:
    SourcesState(tmp_path / FILE_NAME).close()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT 1 FROM sent WHERE sent_at < 1").fetchall()
    assert any("USING COVERING INDEX sent_by_time" in row[-1] for row in plan), plan
