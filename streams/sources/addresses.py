"""Which addresses the fetcher may reach: public ones only, unless SOURCES.yml says
``fetch: {allow_private_addresses: true}``.

A feed, a sitemap or a URL list is written by whoever runs the site, and a redirect by whoever
answers: any of them can name an address inside the unit's own network (the Kafka brokers, the
cloud's metadata service at 169.254.169.254, an admin page on localhost), and the fetcher would
read it and send what it found to the content topic. So every host is resolved here, and a host
any of whose addresses is not public is refused with the reason ``blocked_address``
(:func:`refusal`): private, loopback, link-local, shared (100.64.0.0/10), reserved, multicast,
unspecified, the documentation and benchmarking ranges, and IPv6 addresses that carry such an
IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``).

The check is made twice:

- **before each request**, every redirect hop and robots.txt included (:func:`check_host`, called
  by the fetcher): the failure names the host and the address;
- **when a connection is opened** (:class:`GuardedBackend`, httpcore's network backend under the
  fetcher's client): the name is resolved once more, every address checked, and the connection
  made to a checked address, never to the name. An answer that changes between the two
  resolutions (DNS rebinding: a public address for the check, a private one for the connection)
  is refused at the connection, since the address connected to is the one checked.

Limits: the fetcher connects directly; ``HTTP_PROXY``/``HTTPS_PROXY`` are not used while addresses
are checked (a proxy resolves names itself, past the check). Only the fetcher's requests are
guarded; firewall rules (a Kubernetes egress NetworkPolicy) that keep the sources service from the
internal network remain the stronger control.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import anyio
import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int], Awaitable[Sequence[tuple[Any, ...]]]]
"""``getaddrinfo(host, port)`` as the event loop has it: tuples whose last item is the socket
address, its first item the IP address as text."""

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddress(Exception):
    """A host that resolves to an address the fetcher may not reach (the message says which)."""


def is_public(address: Address) -> bool:
    """Whether ``address`` is a public unicast address (one that embeds an IPv4 address: whether
    that one is)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def refusal(host: str, addresses: Iterable[str]) -> str | None:
    """Why ``host`` may not be fetched, given the addresses it resolves to; None when every one of
    them is public (and there is at least one)."""
    listed = list(addresses)
    if not listed:
        return f"{host} resolves to no address"
    for text in listed:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope: fe80::1%eth0
        except ValueError:
            return f"{host} resolves to {text!r}, not an IP address"
        if not is_public(address):
            return f"{host} resolves to {address}, not a public address"
    return None


async def _system_lookup(host: str, port: int) -> Sequence[tuple[Any, ...]]:
    return await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)


async def check_host(host: str, port: int, lookup: Lookup | None = None) -> list[str]:
    """The addresses ``host`` resolves to, each once, in the resolver's order, when all are public;
    :class:`BlockedAddress` otherwise. A name that does not resolve raises :class:`OSError`
    (``socket.gaierror``)."""
    infos = await (lookup or _system_lookup)(host, port)
    addresses = list(dict.fromkeys(str(info[-1][0]) for info in infos))
    why = refusal(host, addresses)
    if why is not None:
        raise BlockedAddress(why)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but each TCP connection goes to an address :func:`check_host`
    returned for the host, never to the host name (see the module)."""

    def __init__(self, lookup: Lookup | None = None) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._lookup = lookup

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await check_host(host, port, self._lookup)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # check_host returns at least one address
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def guarded_transport(lookup: Lookup | None = None) -> httpx.AsyncHTTPTransport:
    """httpx's transport with :class:`GuardedBackend` under its connection pool (and httpx's
    default TLS context and limits).

    httpx takes no network backend: its pool is replaced by one built with ours.
    ``tests/unit/test_sources_http.py`` checks that it is the one connections go through (a
    name whose answer changes to a loopback address after the check is refused)."""
    transport = httpx.AsyncHTTPTransport()
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("this httpx keeps no connection pool in AsyncHTTPTransport._pool")
    limits = httpx.Limits()
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(lookup),
    )
    return transport
