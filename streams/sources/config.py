"""SOURCES.yml: where the sources service looks for content, validated on load.

Every problem stops the load with one :class:`ConfigError` whose message is ``file:line: reason``,
the line being that of the offending key (or of the source, for a key it lacks): YAML syntax,
duplicate keys, unknown keys, unknown kinds, bad names, URLs and durations, duplicate source names,
missing files. The shape (``deploy/SOURCES.yml`` is a documented example)::

    unit: IRU-NL                    # the referral unit, named in the User-Agent
    fetch:                          # every key optional; the defaults are polite
      user_agent: "..."             # default: propwatch/VERSION (UNIT; content referral)
      connect_timeout: 10s
      read_timeout: 30s
      total_timeout: 2m             # one request, start to last byte
      max_bytes: 5000000            # per response, after decompression
      max_redirects: 5
      per_host_delay: 5s            # between two requests to one host
      allow_private_addresses: false  # true: also private, loopback, link-local (a lab server)
      parse_timeout: 1m             # one feed, sitemap, page or WARC record, parsed
    state:                          # optional
      keep_sent: 365d               # forget a sent item after this long (at least 1d)
    sources:
      - name: example-feed          # [a-z0-9_-]{1,64}: a metric label
        kind: feed                  # feed | urls | sitemap | warc | telegram | discord
        url: https://news.example/feed.xml
        every: 15m                  # how often it is read (s, m, h, d)
        expect_items_within: 24h    # alert when it sends nothing for longer
        platform: news.example      # optional: overrides what the connector says
        fetch_pages: false          # feeds only: each entry's page for its text, not the summary
        enabled: true               # optional
      - {name: watchlist, kind: urls, urls_file: watchlist.txt}   # or urls: [...]
      - {name: site, kind: sitemap, url: https://news.example/sitemap.xml, max_pages: 100}
      - {name: capture, kind: warc, path: captures/2026-11.warc.gz}    # max_record_bytes
      - {name: channel, kind: telegram, path: export/result.json, channel_url: https://t.me/name}
      - {name: server, kind: discord, path: export/server.json}        # exports: max_bytes

Relative paths (``urls_file``, ``path``) are relative to the folder of SOURCES.yml. A URL list
file holds one URL a line; blank lines and lines starting with ``#`` are skipped, and a bad URL
in it is reported at its own ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
)

from streams.records.content import CONTROL_OR_BREAK, FIELD_LIMITS
from streams.sources.exports import MAX_EXPORT_BYTES, telegram_username
from streams.sources.parsing import PARSE_TIMEOUT_S
from streams.sources.urls import normalise_url
from streams.sources.warc import MAX_RECORD_BYTES

KINDS = ("feed", "urls", "sitemap", "warc", "telegram", "discord")
NAME = re.compile(r"[a-z0-9_-]{1,64}")
"""A source's name: it labels metrics, so it is short and plain."""
DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAP_TAG, SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
MIN_KEEP_SENT_S = 86400.0
"""The shortest ``state.keep_sent``: a day."""
MAX_NODES = 100_000
"""Most YAML nodes a SOURCES.yml may expand to (aliases included): an alias bomb is an error."""


class ConfigError(ValueError):
    """A SOURCES.yml (or a URL list it names) that cannot be used; the message is ``file:line: reason``."""


def parse_duration(value: object) -> float:
    """``30s``, ``15m``, ``2h``, ``1d`` (or ``1.5h``) in seconds."""
    if not isinstance(value, str) or not DURATION.fullmatch(value.strip()):
        raise ValueError(f"a duration such as 30s, 15m, 2h or 1d, not {value!r}")
    match = DURATION.fullmatch(value.strip())
    assert match is not None
    return float(match.group(1)) * UNITS[match.group(2)]


def check_url(value: object) -> str:
    """An absolute http(s) URL with a host (one :func:`~streams.sources.urls.normalise_url` takes)."""
    if not isinstance(value, str):
        raise ValueError(f"a URL must be a string, not {type(value).__name__}")
    if normalise_url(value) is None:
        raise ValueError(f"not an http(s) URL with a host: {value[:100]!r}")
    return value


def _text(limit: int) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and (
            not value.strip() or len(value) > limit or CONTROL_OR_BREAK.search(value)
        ):
            raise ValueError(f"a non-blank line of at most {limit} characters")
        return value

    return BeforeValidator(check)


def _telegram_channel(value: object) -> object:
    if isinstance(value, str) and telegram_username(value) is None:
        raise ValueError(f"not a public channel's address such as https://t.me/name: {value[:100]!r}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Url = Annotated[str, BeforeValidator(check_url)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class FetchConfig(_Model):
    """How the web connectors fetch (one policy for every source)."""

    user_agent: Annotated[str, _text(300)] | None = None
    """None: :meth:`SourcesConfig.user_agent` builds one that names the unit."""
    connect_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    read_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    total_timeout: Annotated[Duration, Field(gt=0)] = 120.0
    """Longest one request may take, start to last byte."""
    max_bytes: Annotated[int, Field(ge=1024)] = 5_000_000
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 5
    per_host_delay: Annotated[Duration, Field(ge=0)] = 5.0
    allow_private_addresses: bool = False
    """Fetch from private, loopback and link-local addresses too (a test's or a lab's server);
    by default only public ones (:mod:`streams.sources.addresses`)."""
    parse_timeout: Annotated[Duration, Field(gt=0)] = PARSE_TIMEOUT_S
    """Longest the parsers may take over one feed, sitemap, page or WARC record; longer is a
    ``timeout`` (:mod:`streams.sources.parsing`)."""


class StateConfig(_Model):
    """What the service remembers (:mod:`streams.sources.state`)."""

    keep_sent: Duration = 365 * 86400.0
    """Seconds an item stays recorded as sent; an item older than that, found again, is sent
    again (with the same id). At least :data:`MIN_KEEP_SENT_S`."""

    @field_validator("keep_sent")
    @classmethod
    def _long_enough(cls, value: float) -> float:
        if value < MIN_KEEP_SENT_S:
            raise ValueError("at least 1d: an item still listed in a feed would be sent again and again")
        return value


class Source(_Model):
    """What every source has; one subclass per kind adds where it reads."""

    kind: ClassVar[str]
    name: str
    every: Annotated[Duration, Field(gt=0)] = 3600.0
    """Seconds between two passes."""
    expect_items_within: Annotated[Duration, Field(gt=0)] = 86400.0
    """Seconds without a new item after which the ``SourceSilent`` alert fires."""
    platform: Annotated[str, _text(FIELD_LIMITS["platform"])] | None = None
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError(f"a source name is 1 to 64 of a-z, 0-9, _ and -, not {value[:80]!r}")
        return value


class FeedSource(Source):
    kind: ClassVar[str] = "feed"
    url: Url
    fetch_pages: bool = False
    """Fetch each entry's page for its main text, instead of the entry's summary."""


class UrlsSource(Source):
    """A list of pages, from ``urls`` or (loaded into it) ``urls_file``."""

    kind: ClassVar[str] = "urls"
    urls: Annotated[tuple[Url, ...], Strict(False)]


class SitemapSource(Source):
    kind: ClassVar[str] = "sitemap"
    url: Url
    max_pages: Annotated[int, Field(ge=1, le=100_000)] = 100


class FileSource(Source):
    """A source that reads a local file (in a worker thread), not the web."""

    path: Path


class WarcSource(FileSource):
    kind: ClassVar[str] = "warc"
    max_record_bytes: Annotated[int, Field(ge=1024)] = MAX_RECORD_BYTES
    """Most bytes of one record's payload, after decoding; a larger record is skipped (``too_large``)."""


class TelegramSource(FileSource):
    kind: ClassVar[str] = "telegram"
    channel_url: Annotated[str, BeforeValidator(_telegram_channel)] | None = None
    """The public channel's address (``https://t.me/NAME``, ``@NAME``), for each message's
    permalink; none: the messages have no URL."""
    max_bytes: Annotated[int, Field(ge=1024)] = MAX_EXPORT_BYTES
    """Most bytes of the export file (parsing JSON takes several times its size in memory)."""


class DiscordSource(FileSource):
    kind: ClassVar[str] = "discord"
    max_bytes: Annotated[int, Field(ge=1024)] = MAX_EXPORT_BYTES


MODELS: dict[str, type[Source]] = {
    m.kind: m for m in (FeedSource, UrlsSource, SitemapSource, WarcSource, TelegramSource, DiscordSource)
}


@dataclass(frozen=True)
class SourcesConfig:
    """A loaded SOURCES.yml."""

    path: Path
    unit: str
    fetch: FetchConfig
    sources: tuple[Source, ...]
    state: StateConfig = field(default_factory=StateConfig)

    @property
    def enabled(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.enabled)

    @property
    def user_agent(self) -> str:
        """The User-Agent of every request: ``fetch.user_agent``, or one that names the unit."""
        return self.fetch.user_agent or f"propwatch/{_version()} ({self.unit}; content referral)"


def _version() -> str:
    try:
        return metadata.version("propwatch")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "dev"


class _Top(_Model):
    unit: Annotated[str, _text(100)]
    fetch: FetchConfig = FetchConfig()
    state: StateConfig = StateConfig()
    sources: list[Any]

    @field_validator("sources")
    @classmethod
    def _some(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("no sources: list at least one")
        return value


# --- YAML with line numbers ------------------------------------------------------------------------

Where = tuple[str | int, ...]


@dataclass
class _Tree:
    """A YAML document as plain values, with the line (1-based) of every key and list element."""

    value: Any
    lines: dict[Where, int]

    def line(self, path: Where) -> int:
        """The line of ``path``, or of the nearest enclosing node that has one."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def _compose(text: str, file: str) -> _Tree:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        lines: dict[Where, int] = {}
        count = [0]

        def plain(node: yaml.Node, path: Where) -> Any:
            count[0] += 1
            if count[0] > MAX_NODES:
                raise ConfigError(f"{file}:{node.start_mark.line + 1}: more than {MAX_NODES} YAML nodes")
            lines.setdefault(path, node.start_mark.line + 1)
            if isinstance(node, yaml.CollectionNode) and node.tag not in (MAP_TAG, SEQ_TAG):
                raise ConfigError(f"{file}:{node.start_mark.line + 1}: YAML: unsupported tag {node.tag}")
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)
                result: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    where = f"{file}:{key_node.start_mark.line + 1}"
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise ConfigError(f"{where}: a key must be a plain word")
                    key = str(loader.construct_object(key_node))
                    if key in result:
                        raise ConfigError(f"{where}: duplicate key {key!r}")
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    result[key] = plain(value_node, (*path, key))
                return result
            if isinstance(node, yaml.SequenceNode):
                return [plain(item, (*path, i)) for i, item in enumerate(node.value)]
            return loader.construct_object(node)

        value = None if root is None else plain(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{file}:{line}: YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # reader errors: bytes that are not text
        raise ConfigError(f"{file}:1: YAML: {exc}") from None
    finally:
        loader.dispose()
    return _Tree(value, lines)


def _first_problem(exc: ValidationError) -> tuple[Where, str]:
    """The first error as (where, reason), without the offending value's repr where pydantic adds it."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return loc, f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return loc[:-1], f"missing key {loc[-1]!r}"
    msg = msg.removeprefix("Value error, ")
    return loc, f"{'.'.join(str(p) for p in loc)}: {msg}" if loc else msg


# --- loading ---------------------------------------------------------------------------------------


def load_config(path: str | Path) -> SourcesConfig:
    """Read and validate a SOURCES.yml; :class:`ConfigError` (``file:line: reason``) if anything is wrong."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}:1: cannot read: {exc}") from None
    tree = _compose(text, file)

    def fail(where: Where, reason: str) -> ConfigError:
        return ConfigError(f"{file}:{tree.line(where)}: {reason}")

    if not isinstance(tree.value, dict):
        raise fail((), "SOURCES.yml must be a mapping with unit, fetch and sources")
    try:
        top = _Top.model_validate(tree.value)
    except ValidationError as exc:
        raise fail(*_first_problem(exc)) from None
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(top.sources):
        where: Where = ("sources", i)
        source = _source(raw, where, path.parent, tree, fail)
        if source.name in seen:
            raise fail(
                (*where, "name"), f"duplicate source name {source.name!r} (first at line {seen[source.name]})"
            )
        seen[source.name] = tree.line((*where, "name"))
        sources.append(source)
    return SourcesConfig(path=path, unit=top.unit, fetch=top.fetch, sources=tuple(sources), state=top.state)


def _source(
    raw: Any, where: Where, folder: Path, tree: _Tree, fail: Callable[[Where, str], ConfigError]
) -> Source:
    if not isinstance(raw, dict):
        raise fail(where, "a source must be a mapping with name and kind")
    kind = raw.get("kind")
    if "kind" not in raw:
        raise fail(where, "missing key 'kind'")
    if kind not in MODELS:
        raise fail((*where, "kind"), f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    data: dict[str, Any] = {k: v for k, v in raw.items() if k != "kind"}
    if kind == "urls":
        data = _url_list(data, where, folder, tree, fail)
    for key in ("path", "urls_file"):
        if key in data and isinstance(data[key], str):
            data[key] = folder / data[key]
    if "path" in data and isinstance(data["path"], Path) and not data["path"].is_file():
        raise fail((*where, "path"), f"no such file: {data['path']}")
    try:
        source = MODELS[kind].model_validate(data)
    except ValidationError as exc:
        loc, reason = _first_problem(exc)
        raise fail((*where, *loc), reason) from None
    if source.expect_items_within < source.every:
        key = "expect_items_within" if "expect_items_within" in data else "every"
        raise fail(
            (*where, key), "expect_items_within must be at least every: the alert would fire between passes"
        )
    return source


def _url_list(
    data: dict[str, Any], where: Where, folder: Path, tree: _Tree, fail: Callable[[Where, str], ConfigError]
) -> dict[str, Any]:
    """``urls`` or ``urls_file`` (exactly one) as ``urls``."""
    if ("urls" in data) == ("urls_file" in data):
        raise fail(where, "a urls source needs either urls (a list) or urls_file, not both")
    if "urls" in data:
        if not isinstance(data["urls"], list) or not data["urls"]:
            raise fail((*where, "urls"), "urls must be a non-empty list of URLs")
        return data
    name = data.pop("urls_file")
    if not isinstance(name, str):
        raise fail((*where, "urls_file"), "urls_file must be a file name")
    urls_path = folder / name
    try:
        lines = urls_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail((*where, "urls_file"), f"cannot read urls_file {urls_path}: {exc}") from None
    urls: list[str] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            urls.append(check_url(line))
        except ValueError as exc:
            raise ConfigError(f"{urls_path}:{number}: {exc}") from None
    if not urls:
        raise fail((*where, "urls_file"), f"urls_file {urls_path} lists no URL")
    return {**data, "urls": urls}
