"""SOURCES.yml: a valid file loads into typed sources; every problem is one ``file:line: reason``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.sources.config import (
    ConfigError,
    DiscordSource,
    FeedSource,
    SitemapSource,
    TelegramSource,
    UrlsSource,
    WarcSource,
    load_config,
    parse_duration,
)

VALID = """\
unit: IRU-Test
state:
  keep_sent: 30d
fetch:
  user_agent: "propwatch-test (IRU-Test)"
  connect_timeout: 5s
  read_timeout: 1m
  max_bytes: 200000
  max_redirects: 3
  per_host_delay: 0s
  allow_private_addresses: true
sources:
  - name: news-feed
    kind: feed
    url: https://news.example/feed.xml
    every: 15m
    expect_items_within: 1d
    platform: news.example
  - name: watchlist
    kind: urls
    urls: [https://forum.example/t/1, https://forum.example/t/2]
  - {name: listed, kind: urls, urls_file: pages.txt}
  - {name: site_map, kind: sitemap, url: "https://news.example/sitemap.xml", max_pages: 20}
  - {name: capture, kind: warc, path: files/capture.warc.gz, every: 2h, expect_items_within: 2h}
  - {name: channel, kind: telegram, path: files/result.json, channel_url: "https://t.me/examplechannel"}
  - {name: server, kind: discord, path: files/server.json, enabled: false}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "files").mkdir()
    for name in ("capture.warc.gz", "result.json", "server.json"):
        (tmp_path / "files" / name).write_bytes(b"")
    (tmp_path / "pages.txt").write_text(
        "# watched pages\n\nhttps://blog.example/a\n  https://blog.example/b  \n"
    )
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "SOURCES.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_every_kind(folder: Path) -> None:
    config = load_config(write(folder, VALID))
    assert config.unit == "IRU-Test"
    assert config.user_agent == "propwatch-test (IRU-Test)"
    assert (config.fetch.connect_timeout, config.fetch.read_timeout) == (5.0, 60.0)
    assert (config.fetch.max_bytes, config.fetch.max_redirects, config.fetch.per_host_delay) == (
        200_000,
        3,
        0.0,
    )
    assert config.fetch.allow_private_addresses is True
    assert config.state.keep_sent == 30 * 86400.0
    feed, watchlist, listed, site, capture, channel, server = config.sources
    assert isinstance(feed, FeedSource) and feed.url == "https://news.example/feed.xml"
    assert (feed.every, feed.expect_items_within, feed.platform) == (900.0, 86400.0, "news.example")
    assert isinstance(watchlist, UrlsSource) and watchlist.urls == (
        "https://forum.example/t/1",
        "https://forum.example/t/2",
    )
    assert isinstance(listed, UrlsSource) and listed.urls == (
        "https://blog.example/a",
        "https://blog.example/b",
    )
    assert isinstance(site, SitemapSource) and site.max_pages == 20
    assert isinstance(capture, WarcSource) and capture.path == folder / "files" / "capture.warc.gz"
    assert capture.every == 7200.0
    assert isinstance(channel, TelegramSource) and channel.channel_url == "https://t.me/examplechannel"
    assert isinstance(server, DiscordSource) and not server.enabled
    assert [s.name for s in config.enabled] == [
        "news-feed",
        "watchlist",
        "listed",
        "site_map",
        "capture",
        "channel",
    ]


def test_defaults_are_polite_and_the_user_agent_names_the_unit(folder: Path) -> None:
    config = load_config(
        write(folder, "unit: IRU-Test\nsources:\n  - {name: a, kind: feed, url: 'https://a.example/'}\n")
    )
    assert "IRU-Test" in config.user_agent and config.user_agent.startswith("propwatch/")
    assert config.fetch.per_host_delay >= 1.0 and config.fetch.max_redirects <= 10
    assert 0 < config.fetch.connect_timeout <= 30 and 0 < config.fetch.read_timeout <= 60
    assert config.fetch.max_bytes <= 10_000_000
    assert config.fetch.allow_private_addresses is False, "public addresses only"
    assert config.state.keep_sent == 365 * 86400.0, "sent items are remembered a year"
    [source] = config.sources
    assert (source.every, source.expect_items_within, source.enabled) == (3600.0, 86400.0, True)


@pytest.mark.parametrize(
    "value, seconds",
    [("30s", 30.0), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0), ("1.5h", 5400.0), ("0s", 0.0)],
)
def test_durations(value: str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["15", 15, "15 m", "1w", "m", "-1s", "", None, "1h30m"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="a duration such as 30s"):
        parse_duration(value)


FEED = "  - name: a\n    kind: feed\n    url: https://a.example/feed\n"


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("unit: x\nsources:\n  - name: a\n   kind: feed\n", 4, "YAML: expected <block end>"),
        ("unit: x\nsources: [a\n", 3, "YAML: expected ',' or ']'"),
        (
            "unit: x\nsources:\n  - name: a\n    kind: feed\n    url: https://a.example/\n    url: https://b.example/\n",
            6,
            "duplicate key 'url'",
        ),
        ("unit: x\nsources:\n" + FEED + "    evry: 5m\n", 6, "unknown key 'evry'"),
        ("unit: x\nfetch:\n  timeout: 5s\nsources:\n" + FEED, 3, "unknown key 'timeout'"),
        ("unit: x\ncolour: blue\nsources:\n" + FEED, 2, "unknown key 'colour'"),
        ("unit: x\nstate:\n  keep: 30d\nsources:\n" + FEED, 3, "unknown key 'keep'"),
        (
            "unit: x\nstate:\n  keep_sent: 12h\nsources:\n" + FEED,
            3,
            "state.keep_sent: at least 1d: an item still listed in a feed would be sent again",
        ),
        ("unit: x\nstate:\n  keep_sent: 1y\nsources:\n" + FEED, 3, "state.keep_sent: a duration such as"),
        (
            "unit: x\nsources:\n" + FEED + "  - name: b\n    kind: rss\n    url: https://b.example/\n",
            7,
            "unknown kind 'rss'; kinds are feed, urls, sitemap, warc, telegram, discord",
        ),
        ("unit: x\nsources:\n  - name: b\n    url: https://b.example/\n", 3, "missing key 'kind'"),
        (
            "unit: x\nsources:\n  - name: a\n    kind: feed\n    url: htp:/a.example\n",
            5,
            "url: not an http(s) URL with a host: 'htp:/a.example'",
        ),
        (
            "unit: x\nsources:\n  - name: a\n    kind: feed\n    url: https://a.example:99999/\n",
            5,
            "url: not an http(s) URL with a host: 'https://a.example:99999/'",
        ),
        (
            "unit: x\nsources:\n  - name: a\n    kind: urls\n    urls:\n"
            "      - https://a.example/\n      - /relative\n",
            7,
            "urls.1: not an http(s) URL with a host: '/relative'",
        ),
        (
            "unit: x\nsources:\n" + FEED + "    every: 5 minutes\n",
            6,
            "every: a duration such as 30s, 15m, 2h or 1d",
        ),
        (
            "unit: x\nfetch:\n  read_timeout: 0s\nsources:\n" + FEED,
            3,
            "fetch.read_timeout: Input should be greater than 0",
        ),
        ("unit: x\nsources:\n" + FEED + "    every: 2d\n", 6, "expect_items_within must be at least every"),
        (
            "unit: x\nsources:\n" + FEED + "    expect_items_within: 1m\n    every: 2m\n",
            6,
            "expect_items_within must be at least every",
        ),
        ("unit: !!python/name:os.system ''\nsources: []\n", 1, "YAML: could not determine a constructor"),
        ("unit: x\nsources:\n" + FEED + FEED, 6, "duplicate source name 'a' (first at line 3)"),
        (
            "unit: x\nsources:\n  - name: News Feed\n    kind: feed\n    url: https://a.example/\n",
            3,
            "name: a source name is 1 to 64 of a-z, 0-9, _ and -",
        ),
        (
            "unit: x\nsources:\n  - name: " + "a" * 65 + "\n    kind: feed\n    url: https://a.example/\n",
            3,
            "name: a source name",
        ),
        ("unit: x\nsources:\n  - name: a\n    kind: feed\n", 3, "missing key 'url'"),
        ("sources:\n" + FEED, 1, "missing key 'unit'"),
        ("unit: x\nsources: []\n", 2, "sources: no sources: list at least one"),
        ("", 1, "SOURCES.yml must be a mapping with unit, fetch and sources"),
        ("unit: x\nsources:\n  - name: a\n    kind: warc\n    path: missing.warc\n", 5, "no such file: "),
        (
            "unit: x\nsources:\n  - name: a\n    kind: sitemap\n    url: https://a.example/s.xml\n"
            "    max_pages: '9'\n",
            6,
            "max_pages: Input should be a valid integer",
        ),
        (
            "unit: x\nsources:\n  - name: a\n    kind: urls\n    urls: [https://a.example/]\n"
            "    urls_file: pages.txt\n",
            3,
            "either urls (a list) or urls_file, not both",
        ),
        (
            "unit: x\nsources:\n  - name: a\n    kind: urls\n    urls_file: nope.txt\n",
            5,
            "cannot read urls_file",
        ),
        ("unit: x\nsources:\n  - just a string\n", 3, "a source must be a mapping"),
        (
            "unit: x\nsources:\n  - name: a\n    kind: telegram\n    path: files/result.json\n"
            "    channel_url: https://example.org/chan\n",
            6,
            "channel_url: not a public channel's address such as https://t.me/name",
        ),
        (
            "unit: !!python/object/apply:os.system ['true']\nsources: []\n",
            1,
            "YAML: unsupported tag tag:yaml.org,2002:python/object/apply:os.system",
        ),
        ("unit: x\n? [a, b]\n: 1\nsources: []\n", 2, "a key must be a plain word"),
    ],
)
def test_each_problem_is_one_file_line_reason(folder: Path, text: str, line: int, reason: str) -> None:
    path = write(folder, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message, message


def test_a_bad_url_in_a_urls_file_is_reported_at_its_own_line(folder: Path) -> None:
    (folder / "pages.txt").write_text("https://a.example/\n# comment\n\nnot a url\n")
    path = write(folder, "unit: x\nsources:\n  - {name: a, kind: urls, urls_file: pages.txt}\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{folder / 'pages.txt'}:4: not an http(s) URL with a host: 'not a url'")
    ):
        load_config(path)


def test_an_alias_bomb_is_refused_not_expanded(folder: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefg"):
        previous = "abcdefg"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    with pytest.raises(ConfigError, match="more than 100000 YAML nodes"):
        load_config(write(folder, "\n".join(lines) + "\n"))


def test_unreadable_files_are_one_error(folder: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml:1: cannot read"):
        load_config(folder / "nope.yml")
    path = folder / "latin1.yml"
    path.write_bytes(b"unit: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yml:1: cannot read"):
        load_config(path)


@pytest.mark.parametrize("action", ["once", "run"])
def test_the_command_stops_on_a_bad_file_with_its_line(
    folder: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import EXIT_USAGE, main

    path = write(folder, "unit: x\nsources:\n" + FEED + "    every: soon\n")
    assert main(["sources", action, str(path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"{path}:6: every: a duration such as 30s, 15m, 2h or 1d, not 'soon'\n"


def test_the_command_says_when_its_state_cannot_be_opened(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.cli import main

    path = write(folder, "unit: x\nsources:\n" + FEED)
    monkeypatch.setenv("PROPWATCH_DATA_DIR", str(path))  # a file, not a folder
    assert main(["sources", "once", str(path)]) == 1
    assert "propwatch sources once: cannot open the state in" in capsys.readouterr().err
