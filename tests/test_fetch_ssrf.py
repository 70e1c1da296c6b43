"""SSRF policy: where a source may connect, by how its URL was configured.

DNS cannot run here (loopback only), so "a public name that resolves to
loopback" is staged by injecting the resolver (``Fetcher(resolve=...)``) and,
where a test needs the loopback server to count as public, the address
classifier (``classify=...``). The fetcher connects to the injected
addresses, so these tests exercise the real connect path.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import timedelta

import pytest

from aggregator.config import Limits
from aggregator.errors import BlockedAddress, DNSError
from aggregator.fetch import AddressPolicy, Fetcher, is_public
from aggregator.model import Fetched, FetchJob

FEED = "zh__utf8__bbc-chinese-2013.atom"
LIMITS = Limits(connect_timeout=timedelta(seconds=2), read_timeout=timedelta(seconds=2))
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def loopback_is_public(ip) -> bool:
    """Pretend the loopback server's one address is on the internet."""
    return ip == LOOPBACK or is_public(ip)


@pytest.fixture
def make():
    """``make(**kwargs)`` builds a Fetcher with the test limits, closed after the test."""
    made: list[Fetcher] = []

    def build(**kwargs) -> Fetcher:
        made.append(Fetcher(LIMITS, **kwargs))
        return made[-1]

    yield build
    for f in made:
        f.close()


def configured(url: str) -> FetchJob:
    return FetchJob("src", url, url)


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_address_classes(ip, public):
    assert is_public(ipaddress.ip_address(ip)) is public


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("http://127.0.0.1:8080/feed", True),
        ("http://[::1]:8080/feed", True),
        ("http://10.0.0.5/feed", True),
        ("http://192.168.1.10/feed", True),
        ("http://localhost:8080/feed", True),
        ("http://feeds.localhost/feed", True),
        ("https://example.org/feed", False),
        ("http://8.8.8.8/feed", False),
        ("http://intranet/feed", False),  # a name: judged by what it resolves to, every time
    ],
)
def test_trust_comes_from_the_configured_url(url, trusted):
    assert AddressPolicy.for_url(url).trusted is trusted


def test_public_name_resolving_to_loopback_is_blocked(make, loopback):
    fetcher = make(resolve=fake_dns({"public.example": ["127.0.0.1"]}))
    url = f"http://public.example:{loopback.port}/files/{FEED}"
    with pytest.raises(BlockedAddress, match=r"public.example resolves to 127.0.0.1 \(loopback"):
        fetcher.fetch(configured(url))
    assert loopback.requests == []  # refused before connecting


def test_one_private_address_among_public_ones_is_blocked(make, loopback):
    dns = fake_dns({"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(BlockedAddress, match="10.0.0.7"):
        make(resolve=dns).fetch(configured("http://mixed.example/feed"))


def test_public_name_connects_to_the_checked_address(make, loopback):
    """With loopback declared public, the fetch goes through to what the resolver said."""
    dns = fake_dns({"public.example": ["127.0.0.1"]})
    fetcher = make(resolve=dns, classify=loopback_is_public)
    got = fetcher.fetch(configured(f"http://public.example:{loopback.port}/files/{FEED}"))
    assert isinstance(got, Fetched)
    assert loopback.requests[0].headers["host"] == f"public.example:{loopback.port}"


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/files/feed.xml",
        "http://10.0.0.1/latest",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/files/feed.xml",
        "http://internal.example/feed",
    ],
)
def test_public_source_redirected_into_private_space_is_blocked(make, loopback, target):
    dns = fake_dns({"public.example": ["127.0.0.1"], "internal.example": ["192.168.0.10"]})
    fetcher = make(resolve=dns, classify=loopback_is_public)
    location = target.format(port=loopback.port)
    url = f"http://public.example:{loopback.port}/redirect-to?code=302&url={location}"
    with pytest.raises(BlockedAddress, match="blocked"):
        fetcher.fetch(configured(url))
    assert [r.path for r in loopback.requests] == ["/redirect-to"]


def test_private_source_may_redirect_within_private_space(make, loopback):
    loopback.add_file("feed.xml", b"<rss/>")
    dns = fake_dns({"intranet.example": ["127.0.0.1"]})
    fetcher = make(resolve=dns)
    location = f"http://intranet.example:{loopback.port}/files/feed.xml"
    got = fetcher.fetch(configured(loopback.url_for(f"/redirect-to?url={location}")))
    assert isinstance(got, Fetched)
    assert got.body == b"<rss/>"


def test_non_http_schemes_are_blocked(make, loopback):
    fetcher = make()
    with pytest.raises(BlockedAddress, match="file scheme"):
        fetcher.fetch(configured(loopback.url_for("/redirect-to?url=file:///etc/passwd")))
    with pytest.raises(BlockedAddress, match="ftp scheme"):
        fetcher.fetch(configured("ftp://127.0.0.1/feed"))


def test_unknown_name_is_a_dns_error(make):
    fetcher = make(resolve=fake_dns({}))
    with pytest.raises(DNSError, match="cannot resolve host nowhere.example") as info:
        fetcher.fetch(configured("http://nowhere.example/feed"))
    assert info.value.kind == "dns"
    assert isinstance(info.value.__cause__, Exception)
