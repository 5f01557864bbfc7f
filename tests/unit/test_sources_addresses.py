"""The fetcher reaches public addresses only (unless SOURCES.yml allows others): the address check
on crafted resolver answers, and the fetcher refusing loopback, private and metadata addresses,
a redirect from a public host to a private one, and a name whose answer changes after the check
(DNS rebinding), before any byte reaches the address."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from streams.sources import addresses
from streams.sources.addresses import BlockedAddress, check_host, refusal
from streams.sources.base import Failure
from streams.sources.fetch import Fetched, Fetcher, FetchPolicy

SOURCE = "test-source"
PUBLIC = "93.184.215.14"
"""A public IPv4 address (nothing is ever sent to it: the tests never get that far)."""


def infos(*ips: str, port: int = 80) -> list[tuple[Any, ...]]:
    """What ``getaddrinfo`` answers for a name with these addresses."""
    return [
        (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
        for ip in ips
    ]


def lookup_from(table: dict[str, list[str]]) -> addresses.Lookup:
    async def lookup(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        with contextlib.suppress(ValueError):  # an address answers for itself, as getaddrinfo does
            return infos(str(ipaddress.ip_address(host)), port=port)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return infos(*table[host], port=port)

    return lookup


def guarded(**overrides: Any) -> FetchPolicy:
    """The default policy: public addresses only."""
    return FetchPolicy(**{"user_agent": "propwatch-test/1.0", "per_host_delay_s": 0.0, **overrides})


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


# --- the check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # shared (carrier-grade NAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "::7f00:1",  # IPv4-compatible (deprecated) 127.0.0.1
        "not-an-address",
    ],
)
def test_a_host_with_a_non_public_address_is_refused(address: str) -> None:
    why = refusal("feeds.example", [address])
    assert why is not None and why.startswith("feeds.example resolves to")


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2a00:1450:4001:80b::200e", f"::ffff:{PUBLIC}"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal("feeds.example", [address]) is None


def test_one_non_public_address_among_public_ones_refuses_the_host() -> None:
    assert refusal("feeds.example", [PUBLIC, "10.1.2.3"]) == (
        "feeds.example resolves to 10.1.2.3, not a public address"
    )
    assert refusal("feeds.example", []) == "feeds.example resolves to no address"


async def test_check_host_reads_getaddrinfo_answers() -> None:
    async def answer(host: str, port: int) -> list[tuple[Any, ...]]:
        return infos(PUBLIC, PUBLIC, "2a00:1450:4001:80b::200e", port=port)

    assert await check_host("feeds.example", 443, answer) == [PUBLIC, "2a00:1450:4001:80b::200e"]

    async def metadata(host: str, port: int) -> list[tuple[Any, ...]]:
        return infos(PUBLIC, "169.254.169.254", port=port)

    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254"):
        await check_host("feeds.example", 443, metadata)


# --- the fetcher ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/feed.xml",
        "http://localhost:{port}/feed.xml",
        "http://10.0.0.1/feed.xml",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/feed.xml",
        "http://[::ffff:127.0.0.1]:{port}/feed.xml",
    ],
)
async def test_the_default_policy_refuses_local_addresses_before_any_request(
    server: HTTPServer, url: str
) -> None:
    server.expect_request("/feed.xml").respond_with_data("<rss/>", content_type="application/rss+xml")
    async with Fetcher(guarded(connect_timeout_s=2.0)) as fetcher:
        got = await fetcher.get(url.format(port=server.port), source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "blocked_address", got
    assert "not a public address" in got.detail
    assert server.log == [], "not even robots.txt was asked for"


async def test_allowed_private_addresses_are_fetched(server: HTTPServer) -> None:
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    server.expect_request("/feed.xml").respond_with_data("<rss/>", content_type="application/rss+xml")
    async with Fetcher(guarded(allow_private_addresses=True)) as fetcher:
        got = await fetcher.get(server.url_for("/feed.xml"), source=SOURCE)
    assert isinstance(got, Fetched) and got.body == b"<rss/>"


@pytest.mark.parametrize("target", ["http://internal.example/admin", "http://169.254.169.254/latest/"])
async def test_a_redirect_from_a_public_host_to_a_private_address_is_refused(target: str) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(302, headers={"Location": target})

    lookup = lookup_from({"feeds.example": [PUBLIC], "internal.example": ["10.0.0.5"]})
    async with Fetcher(guarded(), transport=httpx.MockTransport(answer), lookup=lookup) as fetcher:
        got = await fetcher.get("http://feeds.example/feed.xml", source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "blocked_address", got
    assert seen == ["http://feeds.example/robots.txt", "http://feeds.example/feed.xml"]


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    async with Fetcher(guarded(), lookup=lookup_from({})) as fetcher:
        got = await fetcher.get("http://nowhere.example/feed.xml", source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "connect_error" and "cannot resolve" in got.detail


async def test_a_name_that_turns_local_after_the_check_is_refused_at_the_connection(
    server: HTTPServer,
) -> None:
    """DNS rebinding: the checks before the page and its robots.txt get a public address, the
    connection's own resolution a loopback one; the connection is refused, the server sees nothing."""
    answers = iter([[PUBLIC], [PUBLIC]])

    async def rebinding(host: str, port: int) -> list[tuple[Any, ...]]:
        return infos(*next(answers, ["127.0.0.1"]), port=port)

    async with Fetcher(guarded(), lookup=rebinding) as fetcher:
        got = await fetcher.get(f"http://rebind.example:{server.port}/feed.xml", source=SOURCE)
    assert isinstance(got, Failure) and got.reason == "blocked_address", got
    assert "not connected: rebind.example resolves to 127.0.0.1" in got.detail
    assert server.log == []


async def test_connections_go_to_the_checked_address_not_the_name(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the loopback address let through the check, a name no resolver knows but the test's
    is fetched from the address the check returned, with the name in the Host header."""
    monkeypatch.setattr(addresses, "is_public", lambda address: True)
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    server.expect_request("/feed.xml", headers={"Host": f"feeds.example:{server.port}"}).respond_with_data(
        "<rss/>", content_type="application/rss+xml"
    )
    lookup = lookup_from({"feeds.example": ["127.0.0.1"]})
    async with Fetcher(guarded(), lookup=lookup) as fetcher:
        got = await fetcher.get(f"http://feeds.example:{server.port}/feed.xml", source=SOURCE)
    assert isinstance(got, Fetched) and got.body == b"<rss/>", got
    assert [request.path for request, _ in server.log] == ["/robots.txt", "/feed.xml"]
