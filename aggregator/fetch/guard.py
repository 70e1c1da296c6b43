"""Which addresses a source may reach (SSRF policy), decided per configured URL.

A source whose configured host is a public name or address may only ever
connect to public addresses: not directly, not through a redirect, not
through a name that resolves to loopback/private/link-local/multicast/
reserved space. A source the admin configured with such an address directly
(``http://127.0.0.1:8080/feed``, ``http://localhost/``) is trusted, and so is
everywhere it redirects.

The check runs inside the connection (see ``transport.py``): the name is
resolved once, every address is checked, and the socket connects to one of
exactly those addresses, so a DNS answer that changes between check and
connect (rebinding) cannot slip past. What it cannot see: a proxy (the
fetcher ignores proxy environment variables for this reason), and services
that are public addresses but still sensitive to the admin.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aggregator.errors import BlockedAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> IP address strings``; injectable so tests can map a public name to loopback.
Resolver = Callable[[str, int], Sequence[str]]
#: ``ip -> True when a public-configured source may connect to it``.
Classifier = Callable[[IPAddress], bool]

SCHEMES = ("http", "https")


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order, without repeats."""
    seen: dict[str, None] = {}
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def is_public(ip: IPAddress) -> bool:
    """True for globally routable unicast addresses (IPv4-mapped IPv6 judged as its IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def describe(ip: IPAddress) -> str:
    """The word for why an address is not public, for the error message."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for word in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{word}"):
            return word.replace("_", "-")
    return "non-public"


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """How one fetch may connect: ``trusted`` allows any address, else public ones only."""

    trusted: bool
    resolve: Resolver = system_resolve
    classify: Classifier = is_public

    @classmethod
    def for_url(
        cls,
        configured_url: str,
        resolve: Resolver = system_resolve,
        classify: Classifier = is_public,
    ) -> AddressPolicy:
        """Trusted when the admin wrote a non-public IP literal or ``localhost`` (RFC 6761)."""
        host = (urlsplit(configured_url).hostname or "").lower().rstrip(".")
        literal = ip_literal(host)
        if literal is not None:
            trusted = not classify(literal)
        else:
            trusted = host == "localhost" or host.endswith(".localhost")
        return cls(trusted, resolve, classify)

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and check every address (``BlockedAddress``, ``socket.gaierror``)."""
        literal = ip_literal(host)
        if literal is not None:
            addrs = [literal]
        else:
            addrs = [ip for ip in map(ip_literal, self.resolve(host, port)) if ip is not None]
        if not addrs:
            raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
        if not self.trusted:
            for ip in addrs:
                if not self.classify(ip):
                    shown = host if literal is not None else f"{host} resolves to {ip}"
                    raise BlockedAddress(f"blocked: {shown} ({describe(ip)} address)")
        return addrs


def check_scheme(url: str) -> None:
    """Only http and https may be fetched (a redirect to file:, ftp:, gopher: is refused)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise BlockedAddress(
            f"blocked: {scheme or 'no'} scheme in {url[:200]!r} (only http, https)"
        )
