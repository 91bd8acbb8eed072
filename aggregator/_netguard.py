"""SSRF guard: refuse private, loopback, link-local, multicast and special addresses.

The check runs inside the connection layer on the *resolved* address, and the socket is then
opened to exactly that address. A name that resolves to a public address while we check and to
127.0.0.1 when we connect (DNS rebinding) therefore cannot slip through, and every redirect hop
goes through the same door because every hop opens its connection here.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
import typing
from collections.abc import Iterable

import anyio
import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddressError(Exception):
    """A connection was refused by the address policy (not a network failure)."""


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` must not be fetched from, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_problem(ip.ipv4_mapped)  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),  # is_global says True for global multicast: check first
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not globally routable", not ip.is_global),
    )
    for label, hit in checks:
        if hit:
            return label
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AddressPolicy:
    """Which resolved addresses may be connected to.

    `trusted` networks are allowed even when private (tests use it to stand in for a public
    host while a redirect to 127.0.0.1 must still be refused).
    """

    def __init__(self, *, allow_private: bool, trusted: Iterable[IPNetwork] = ()) -> None:
        self.allow_private = allow_private
        self.trusted = tuple(trusted)

    def problem(self, ip: IPAddress) -> str | None:
        if self.allow_private or any(ip in net for net in self.trusted):
            return None
        return address_problem(ip)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend: resolve, check every address, connect to a checked address."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        allowed: list[str] = []
        refused: list[str] = []
        # An address needs no lookup; a name's every address is checked.
        for found in [host] if _is_ip(host) else await _resolve(host, port, timeout):
            addr = found.split("%", 1)[0]  # drop an IPv6 zone id
            ip = ipaddress.ip_address(addr)
            why = self.policy.problem(ip)
            if why is None:
                if addr not in allowed:
                    allowed.append(addr)
            else:
                refused.append(f"{addr} ({why})")
        if not allowed:
            listed = ", ".join(dict.fromkeys(refused))
            what = listed if _is_ip(host) else f"{host}: it resolves to {listed}"
            raise BlockedAddressError(
                f"refused to connect to {what}; set fetch.allow_private_addresses: true to allow private addresses"
            )
        last: Exception | None = None
        for addr in allowed:  # connect to the checked address itself, never to the name again
            try:
                return _Stream(await self.inner.connect_tcp(addr, port, timeout, local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of a host name (an address needs none: asyncio would still hand it to a thread)."""
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's anyio stream, with the pool's "is the idle connection readable?" answered cheaply.

    httpcore's pool asks every idle connection that question each time a request starts or ends,
    and anyio rebuilds its table of socket attributes (a getpeername call among them) for each
    ask: a quarter of the fetch loop's time in a big run. The raw socket is looked up once here.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner
        self.sock = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            return _readable(self.sock)
        return self.inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether a read would return at once (data, or b"" from a closed socket); as httpcore checks."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True  # gone: the next read returns the terminating b""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
