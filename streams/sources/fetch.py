"""Polite, bounded HTTP: the :class:`Fetcher` every web connector fetches through.

- **Polite**: one request at a time per host, at least ``per_host_delay_s`` (or the site's
  robots.txt ``Crawl-delay``, up to :data:`MAX_CRAWL_DELAY_S`) from the end of one request to
  the start of the next; robots.txt obeyed at every hop; a ``User-Agent`` that names the unit.
- **Bounded**: connect and read timeouts, an overall deadline per request, a cap on the body
  *after decompression*, at most ``max_redirects`` hops.
- **Guarded**: only public addresses, unless ``allow_private_addresses`` (the host of every
  request and redirect hop is resolved and checked, and connections go to the checked addresses:
  :mod:`streams.sources.addresses`); a refused host fails as ``blocked_address``.
- **Never raises**: every failure comes back as a :class:`~streams.sources.base.Failure` with a
  reason from :data:`streams.metrics.FETCH_ERRORS`; the caller (the service) counts it.

robots.txt, as Google reads it: a 2xx answer is parsed (its first :data:`ROBOTS_MAX_BYTES`); a
4xx answer (but 429), or redirects that lead nowhere, mean no rules (all allowed); 429, 5xx or
no answer at all (connect error, timeout) mean "the site is unavailable": all disallowed until
it is asked again after :data:`ROBOTS_RETRY_S`, each page failing with the reason robots.txt
failed with (``connect_error``, ``timeout``, ``http_status``), not ``robots_disallowed``, which
only a rule gives. An answer is kept ``robots_cache_s``.

Content encodings are decoded here, not by httpx: the request offers only ``gzip, deflate``, and
the body is inflated with zlib's ``max_length``, so no more than the cap (plus one network read,
at most 64 KiB) is ever in memory, however much the stream would inflate to. Another encoding
(br, zstd, stacked ones) is refused as ``invalid_content``."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

import httpx
from protego import Protego

from streams import safejson
from streams.metrics import SourcesMetrics
from streams.sources.addresses import BlockedAddress, Lookup, check_host, guarded_transport
from streams.sources.base import Failure, Validators, ValidatorStore
from streams.sources.urls import SCHEMES

log = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024
"""Most bytes of a robots.txt read (Google reads 500 KiB); the rest is ignored."""
ROBOTS_RETRY_S = 300.0
"""How long a robots.txt that could not be had (5xx, 429, no answer) keeps its host disallowed."""
ROBOTS_CACHE_ENTRIES = 1024
"""Most robots.txt files kept; the least recently used goes first."""
MAX_CRAWL_DELAY_S = 60.0
"""The longest robots.txt ``Crawl-delay`` honoured (a site cannot stall a source longer)."""
VALIDATOR_MAX_CHARS = 1024
"""An ``ETag`` or ``Last-Modified`` longer than this is not kept (nor sent back)."""
DETAIL_MAX_CHARS = 300
DECODE_STEP = 64 * 1024
"""Most bytes inflated at once."""
DEFAULT_PORTS = {"http": 80, "https": 443}
HOSTS_PRUNE_AT = 4096
"""Hosts remembered for politeness before the idle ones are forgotten."""
ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,application/xml;q=0.9,*/*;q=0.8"
)


@dataclass(frozen=True)
class FetchPolicy:
    """How the fetcher behaves towards the sites it reads."""

    user_agent: str
    """Sent with every request, robots.txt's too; it should name the unit and a contact URL."""
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    """Longest wait for the next bytes of a response."""
    total_timeout_s: float = 120.0
    """Longest one request may take, start to last byte (a server that trickles is cut off)."""
    max_bytes: int = 10_000_000
    """Most bytes of a body, after decompression."""
    max_redirects: int = 5
    per_host_delay_s: float = 1.0
    """Least time from the end of one request to a host to the start of the next."""
    robots_cache_s: float = 3600.0
    """How long a host's robots.txt is kept before it is fetched again."""
    allow_private_addresses: bool = False
    """Fetch from private, loopback and link-local addresses too (a test's or a lab's local
    server); otherwise public addresses only (:mod:`streams.sources.addresses`)."""


@dataclass(frozen=True)
class Fetched:
    """A 2xx response, read whole."""

    url: str
    """The final URL, after redirects."""
    status: int
    body: bytes
    """Decoded (no longer gzip or deflate), at most ``FetchPolicy.max_bytes``."""
    content_type: str | None
    """The media type, lowercased, without parameters (``text/html``)."""
    charset: str | None
    """The ``charset`` parameter of Content-Type, when the server gave one."""
    validators: Validators


@dataclass(frozen=True)
class NotModified:
    """A conditional request answered 304: nothing new at ``url`` since the last fetch."""

    url: str


class _Fail(Exception):  # internal, always turned into a Failure
    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status


@dataclass
class _Host:
    """Politeness state of one host."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_end: float | None = None
    """When the last request to the host ended (monotonic seconds)."""
    crawl_delay: float = 0.0


@dataclass(frozen=True)
class _Robots:
    parser: Protego | None
    """None: everything allowed (no rules)."""
    allow: bool
    """When ``parser`` is None: everything allowed (True) or disallowed (False)."""
    expires: float
    why: str
    unavailable: str | None = None
    """Why robots.txt could not be had (a FETCH_ERRORS reason), when that disallows all."""


class Fetcher:
    """One HTTP client for a whole service; use as ``async with Fetcher(policy) as fetcher``.

    ``validators``: where conditional requests' ETag and Last-Modified are kept (none: no
    conditional requests). ``metrics``: observes ``fetch_seconds`` and ``not_modified`` per
    source (failures are counted by the caller, once). ``transport`` (instead of the guarded
    one) and ``lookup`` (instead of the system's resolver, in the address checks): for tests."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        validators: ValidatorStore | None = None,
        metrics: SourcesMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        self.policy = policy
        self._validators = validators
        self._metrics = metrics
        self._lookup = lookup
        if transport is None and not policy.allow_private_addresses:
            transport = guarded_transport(lookup)
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=policy.connect_timeout_s,
                read=policy.read_timeout_s,
                write=policy.read_timeout_s,
                pool=policy.connect_timeout_s,
            ),
            headers={"User-Agent": policy.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
            transport=transport,
        )
        self._hosts: dict[str, _Host] = {}
        self._robots: OrderedDict[str, _Robots] = OrderedDict()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self, url: str, *, source: str, conditional: bool = True
    ) -> Fetched | NotModified | Failure:
        """GET ``url``, following redirects (each hop checked: http(s) only, a public address
        unless the policy allows others, allowed by its host's robots.txt, at most
        ``max_redirects``). ``conditional``: send the validators kept for the URL, and keep the
        response's. Never raises (but for cancellation)."""
        try:
            return await self._get(url, source=source, conditional=conditional, robots=True)
        except _Fail as fail:
            return Failure(fail.reason, _bounded(fail.detail), url=_bounded(url, 4096))
        except Exception as exc:  # a bug, or a library's surprise: no fetch may raise
            log.exception("fetch failed unexpectedly: %s", _bounded(url))
            return Failure("read_error", _bounded(f"{type(exc).__name__}: {exc}"), url=_bounded(url, 4096))

    async def _get(
        self, url: str, *, source: str, conditional: bool, robots: bool, limit: int | None = None
    ) -> Fetched | NotModified:
        target = _http_url(url)
        for _hop in range(self.policy.max_redirects + 1):
            if not self.policy.allow_private_addresses:
                await self._check_address(target)
            if robots:
                await self._check_robots(target, source)
            sent = (
                self._validators.validators(str(target))
                if conditional and self._validators is not None
                else None
            )
            if sent is not None and not (sent.etag or sent.last_modified):
                sent = None
            answer = await self._request(target, source=source, sent=sent, limit=limit)
            if isinstance(answer, httpx.URL):
                target = answer
                continue
            if isinstance(answer, NotModified):
                return answer
            if (
                conditional
                and self._validators is not None
                and (answer.validators.etag or answer.validators.last_modified)
            ):
                self._validators.remember(answer.url, answer.validators)
            return answer
        raise _Fail("too_many_redirects", f"more than {self.policy.max_redirects} redirects")

    async def _request(
        self, url: httpx.URL, *, source: str, sent: Validators | None, limit: int | None
    ) -> Fetched | NotModified | httpx.URL:
        """One request, in its host's turn: the response, or where it redirects to."""
        headers = {}
        if sent is not None and sent.etag:
            headers["If-None-Match"] = sent.etag
        if sent is not None and sent.last_modified:
            headers["If-Modified-Since"] = sent.last_modified
        host = self._host(url.host)
        async with host.lock:
            if host.last_end is not None:
                wait = host.last_end + max(self.policy.per_host_delay_s, host.crawl_delay) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.policy.total_timeout_s):
                    return await self._exchange(url, headers, sent=sent, limit=limit, source=source)
            except TimeoutError as exc:
                raise _Fail("timeout", f"no whole answer within {self.policy.total_timeout_s:g} s") from exc
            finally:
                host.last_end = time.monotonic()
                if self._metrics is not None:
                    self._metrics.fetch_seconds.labels(source=source).observe(host.last_end - started)

    async def _exchange(
        self,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        sent: Validators | None,
        limit: int | None,
        source: str,
    ) -> Fetched | NotModified | httpx.URL:
        cap = self.policy.max_bytes if limit is None else limit
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status in (301, 302, 303, 307, 308):
                    return _redirect(url, response)
                if status == 304 and sent is not None:
                    if self._metrics is not None:
                        self._metrics.not_modified.labels(source=source).inc()
                    return NotModified(str(url))
                if not 200 <= status < 300:
                    raise _Fail("http_status", f"HTTP {status}", status)
                body = await _read_body(response, cap, truncate=limit is not None)
                content_type = response.headers.get("content-type", "")
                return Fetched(
                    url=str(url),
                    status=status,
                    body=body,
                    content_type=content_type.split(";")[0].strip().lower() or None,
                    charset=response.charset_encoding,
                    validators=_validators(response),
                )
        except httpx.TimeoutException as exc:
            raise _Fail("timeout", f"{type(exc).__name__}: {exc}") from exc
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            raise _Fail("connect_error", f"{type(exc).__name__}: {exc}") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise _Fail("invalid_url", f"{type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise _Fail("read_error", f"{type(exc).__name__}: {exc}") from exc
        except BlockedAddress as exc:  # the connection's own check (the name now resolves elsewhere)
            raise _Fail("blocked_address", f"not connected: {exc}") from exc

    async def _check_address(self, url: httpx.URL) -> None:
        """``blocked_address`` unless every address of ``url``'s host is public; a name that does
        not resolve is a ``connect_error``, a resolver that does not answer a ``timeout``."""
        port = url.port if url.port is not None else DEFAULT_PORTS[url.scheme]
        try:
            async with asyncio.timeout(self.policy.connect_timeout_s):
                await check_host(url.host, port, self._lookup)
        except BlockedAddress as exc:
            raise _Fail("blocked_address", str(exc)) from exc
        except TimeoutError as exc:
            took = f"resolving {url.host} took over {self.policy.connect_timeout_s:g} s"
            raise _Fail("timeout", took) from exc
        except (OSError, UnicodeError) as exc:
            raise _Fail("connect_error", f"cannot resolve {url.host}: {exc}") from exc

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            if len(self._hosts) >= HOSTS_PRUNE_AT:
                self._forget_idle_hosts()
            host = self._hosts[name] = _Host()
        return host

    def _forget_idle_hosts(self) -> None:
        quiet_since = time.monotonic() - max(self.policy.per_host_delay_s, MAX_CRAWL_DELAY_S)
        for name, host in list(self._hosts.items()):
            idle = not host.lock.locked() and not host.robots_lock.locked()
            if idle and (host.last_end is None or host.last_end < quiet_since):
                del self._hosts[name]

    async def _check_robots(self, url: httpx.URL, source: str) -> None:
        origin = _origin(url)
        host = self._host(url.host)
        async with host.robots_lock:
            robots = self._robots.get(origin)
            if robots is None or robots.expires < time.monotonic():
                robots = await self._fetch_robots(origin, source)
                self._robots[origin] = robots
                while len(self._robots) > ROBOTS_CACHE_ENTRIES:
                    self._robots.popitem(last=False)
                if robots.parser is not None:
                    delay = robots.parser.crawl_delay(self.policy.user_agent)
                    host.crawl_delay = min(float(delay), MAX_CRAWL_DELAY_S) if delay else 0.0
            self._robots.move_to_end(origin)
        if robots.parser is not None:
            allowed = robots.parser.can_fetch(str(url), self.policy.user_agent)
        else:
            allowed = robots.allow
        if not allowed and robots.unavailable is not None:
            raise _Fail(robots.unavailable, f"not fetched: {robots.why}")
        if not allowed:
            raise _Fail("robots_disallowed", f"robots.txt of {origin} disallows it")

    async def _fetch_robots(self, origin: str, source: str) -> _Robots:
        """The origin's robots.txt, read as :mod:`this module <streams.sources.fetch>` says."""
        url = f"{origin}/robots.txt"
        now = time.monotonic()
        try:
            answer = await self._get(
                url, source=source, conditional=False, robots=False, limit=ROBOTS_MAX_BYTES
            )
        except _Fail as fail:
            if fail.status is not None and 400 <= fail.status < 500 and fail.status != 429:
                return _Robots(None, True, now + self.policy.robots_cache_s, f"robots.txt {fail.detail}")
            if fail.reason in ("too_many_redirects", "invalid_url"):
                return _Robots(None, True, now + self.policy.robots_cache_s, "robots.txt redirects nowhere")
            log.info(
                "robots.txt of %s unavailable (%s: %s): all disallowed", origin, fail.reason, fail.detail
            )
            why = f"robots.txt of {origin} unavailable ({fail.detail})"
            return _Robots(None, False, now + ROBOTS_RETRY_S, why, unavailable=fail.reason)
        assert isinstance(answer, Fetched)  # not conditional: never NotModified
        try:
            parser = Protego.parse(answer.body.decode("utf-8", errors="replace"))
        except Exception as exc:  # an unparsable file has no rules Google would obey either
            log.info("robots.txt of %s not parsed (%s): all allowed", origin, type(exc).__name__)
            return _Robots(None, True, now + self.policy.robots_cache_s, "robots.txt unparsable")
        return _Robots(parser, True, now + self.policy.robots_cache_s, "robots.txt rule")


def _http_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise _Fail("invalid_url", f"not a URL: {exc}") from exc
    if parsed.scheme not in SCHEMES or not parsed.host:
        raise _Fail("invalid_url", f"not an http(s) URL with a host (scheme {parsed.scheme!r})")
    return parsed


def _redirect(url: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise _Fail("http_status", f"HTTP {response.status_code} without a Location")
    try:
        target = url.join(location)
    except (httpx.InvalidURL, ValueError) as exc:
        raise _Fail("invalid_url", f"redirect to a malformed URL: {exc}") from exc
    if target.scheme not in SCHEMES or not target.host:
        raise _Fail("invalid_url", f"redirect to a non-http(s) URL (scheme {target.scheme!r})")
    return target


async def _read_body(response: httpx.Response, cap: int, *, truncate: bool) -> bytes:
    """The body, decoded, at most ``cap`` bytes: more is ``too_large`` (or, with ``truncate``,
    cut off at ``cap``). A Content-Length over the cap is refused before reading."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap and not truncate:
        raise _Fail("too_large", f"Content-Length {length} is over the cap of {cap} bytes")
    decoder = _Decoder(response.headers.get("content-encoding", "identity").strip().lower())
    body = bytearray()
    async for chunk in response.aiter_raw():
        for piece in decoder.decode(chunk):
            body += piece
            if len(body) > cap:
                if truncate:
                    return bytes(body[:cap])
                raise _Fail("too_large", f"body over the cap of {cap} bytes after decoding")
    decoder.end()
    return bytes(body)


class _Decoder:
    """Content-Encoding ``identity``, ``gzip`` (several members too) or ``deflate`` (zlib or raw),
    inflated :data:`DECODE_STEP` bytes at a time, so that the reader can stop at its cap before a
    bomb is in memory."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        if encoding in ("", "identity"):
            self._zlib = None
        elif self._gzip or encoding == "deflate":
            self._wbits = zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(self._wbits)
        else:
            raise _Fail("invalid_content", f"unsupported Content-Encoding {encoding[:50]!r}")
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            if data:
                yield data
            return
        while data and not (self._zlib.eof and not self._gzip):
            if self._zlib.eof:  # the next member of a gzip file
                self._zlib = zlib.decompressobj(self._wbits)
            out = self._inflate(data)
            data = self._zlib.unconsumed_tail or self._zlib.unused_data
            if out:
                yield out

    def _inflate(self, data: bytes) -> bytes:
        try:
            out = self._zlib.decompress(data, DECODE_STEP)
        except zlib.error as exc:
            if not self._started and self._wbits == zlib.MAX_WBITS:  # deflate without zlib's header
                self._wbits = -zlib.MAX_WBITS
                self._zlib = zlib.decompressobj(self._wbits)
                return self._inflate(data)
            raise _Fail("invalid_content", f"corrupt compressed body: {exc}") from exc
        self._started = True
        return out

    def end(self) -> None:
        """Check that a compressed body was whole (a cut-off stream is not read as if it were)."""
        if self._zlib is not None and self._started and not self._zlib.eof:
            raise _Fail("invalid_content", "compressed body ends before its end")


def gunzip(data: bytes, cap: int) -> bytes | Failure:
    """``data`` (a gzip file, such as a ``sitemap.xml.gz``) inflated, at most ``cap`` bytes:
    more is ``too_large``, a corrupt file ``invalid_content``."""
    out = bytearray()
    try:
        decoder = _Decoder("gzip")
        for piece in decoder.decode(data):
            out += piece
            if len(out) > cap:
                return Failure("too_large", f"over the cap of {cap} bytes after decompression")
        decoder.end()
    except _Fail as fail:
        return Failure(fail.reason, fail.detail)
    return bytes(out)


def _validators(response: httpx.Response) -> Validators:
    def kept(name: str) -> str | None:
        value = response.headers.get(name)
        if not value or len(value) > VALIDATOR_MAX_CHARS or not value.isprintable():
            return None
        return value

    last_modified = kept("last-modified")
    if last_modified is not None:
        try:
            email.utils.parsedate_to_datetime(last_modified)
        except (TypeError, ValueError, IndexError):
            last_modified = None
    return Validators(etag=kept("etag"), last_modified=last_modified)


def _origin(url: httpx.URL) -> str:
    default = DEFAULT_PORTS[url.scheme]
    port = url.port if url.port is not None else default
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}" if port == default else f"{url.scheme}://{host}:{port}"


def _bounded(text: str, most: int = DETAIL_MAX_CHARS) -> str:
    text = safejson.for_terminal(str(text))
    return text if len(text) <= most else text[: most - 3] + "..."
