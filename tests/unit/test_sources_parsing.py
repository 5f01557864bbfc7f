"""The sources service's parsers in child processes (streams/sources/parsing.py): a parse that does
not finish is stopped at its deadline, one that crashes its process or raises is a failure, and
either way the next parse works. Nothing here depends on how fast the machine is: the parse that
does not finish sleeps for an hour."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.sources.base import Failure
from streams.sources.extract import extract_page
from streams.sources.parsing import IN_THREAD, Parsers

ARTICLE = (Path(__file__).parents[1] / "fixtures" / "sources" / "article.html").read_bytes()
URL = "https://courier.example/news/harbour"


@pytest.fixture
def parsers() -> Iterator[Parsers]:
    with Parsers(timeout_s=2.0, processes=1) as running:
        yield running


def test_a_page_parsed_in_a_child_is_what_it_is_here(parsers: Parsers) -> None:
    found = parsers.call(extract_page, ARTICLE, URL)
    assert found is not None and not isinstance(found, Failure)
    assert found == IN_THREAD.call(extract_page, ARTICLE, URL)
    assert parsers.call(extract_page, b"<html><body></body></html>", URL) is None


def test_a_parse_past_its_deadline_is_stopped_and_the_next_one_works(parsers: Parsers) -> None:
    got = parsers.call(time.sleep, 3600)
    assert isinstance(got, Failure) and got.reason == "timeout", got
    assert "over 2 s" in got.detail
    found = parsers.call(extract_page, ARTICLE, URL)
    assert found is not None and not isinstance(found, Failure), "a new child took the killed one's place"


@pytest.mark.parametrize(
    ("crash", "code"),
    [((os._exit, 3), 3), ((ctypes.string_at, 0), -11)],
    ids=["exit", "segfault"],
)
def test_a_parse_that_kills_its_process_is_a_read_error(
    parsers: Parsers, crash: tuple[Callable[[int], object], int], code: int
) -> None:
    fn, argument = crash
    got = parsers.call(fn, argument)
    assert isinstance(got, Failure) and got.reason == "read_error", got
    assert f"exit code {code}" in got.detail
    assert parsers.call(extract_page, ARTICLE, URL) is not None


def test_a_parser_that_raises_is_a_read_error(parsers: Parsers) -> None:
    got = parsers.call(int, "not a number")
    assert isinstance(got, Failure) and got.reason == "read_error"
    assert "ValueError" in got.detail
    assert parsers.call(int, "7") == 7, "the same child goes on"


async def test_parses_run_side_by_side_up_to_the_processes() -> None:
    with Parsers(timeout_s=2.0, processes=2) as parsers:
        stopped = await parsers.run(time.sleep, 3600)
        # one child is replaced while the other answers
        found = await parsers.run(extract_page, ARTICLE, URL)
    assert isinstance(stopped, Failure) and stopped.reason == "timeout"
    assert found is not None and not isinstance(found, Failure)


def test_closing_stops_a_parse_under_way_and_refuses_later_ones() -> None:
    parsers = Parsers(timeout_s=3600.0, processes=1)
    assert parsers.call(int, "1") == 1  # the child is up
    results: list[object] = []
    under_way = threading.Thread(target=lambda: results.append(parsers.call(time.sleep, 3600)))
    under_way.start()
    while parsers._free.qsize():  # until the call has taken the child
        time.sleep(0.05)
    parsers.close()
    under_way.join(60)
    assert not under_way.is_alive(), "the parse under way ended with its child"
    [got] = results
    assert isinstance(got, Failure) and got.reason == "read_error"
    later = parsers.call(int, "1")
    assert isinstance(later, Failure) and later.reason == "read_error", "no child starts after close"
