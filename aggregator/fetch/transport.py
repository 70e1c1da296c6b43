"""A requests transport whose connections obey the address policy and the deadline.

urllib3 opens sockets in ``HTTPConnection._new_conn``; ours resolves with the
policy's resolver, refuses the whole name if any address is not allowed
(``BlockedAddress`` propagates untouched through urllib3 and requests), and
connects to one of the checked addresses. Every request also registers its
socket with the running fetch's deadline. TLS still verifies the certificate
against the host name, not the address.
"""

from __future__ import annotations

import socket
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from aggregator.fetch.deadline import watch_current
from aggregator.fetch.guard import AddressPolicy

#: Feeds need no cookies, and a jar shared by every source would leak between them.
_NO_COOKIES = DefaultCookiePolicy(allowed_domains=[])


def open_socket(
    policy: AddressPolicy,
    host: str,
    port: int,
    timeout: Any,
    source_address: tuple[str, int] | None,
    options: Any,
) -> socket.socket:
    """Connect to the first checked address that answers (raises like ``create_connection``)."""
    error: OSError | None = None
    for ip in policy.addresses(host, port):
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for opt in options or ():
                sock.setsockopt(*opt)
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect((str(ip), port))
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    assert error is not None
    raise error


def _guarded(base: type[HTTPConnection], policy: AddressPolicy) -> type[HTTPConnection]:
    class Guarded(base):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            try:
                return open_socket(
                    policy,
                    self._dns_host,
                    self.port,
                    self.timeout,
                    self.source_address,
                    self.socket_options,
                )
            except socket.gaierror as e:
                raise NameResolutionError(self.host, self, e) from e
            except TimeoutError as e:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from e
            except OSError as e:
                raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e

        def request(self, *args: Any, **kwargs: Any) -> None:
            super().request(*args, **kwargs)
            watch_current(self.sock)

    Guarded.__name__ = f"Guarded{base.__name__}"
    return Guarded


class GuardedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose pools connect only where ``policy`` allows."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_conn = _guarded(HTTPConnection, self.policy)
        https_conn = _guarded(HTTPSConnection, self.policy)
        pool = type("GuardedPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
        tls_pool = type("GuardedTLSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
        self.poolmanager.pool_classes_by_scheme = {"http": pool, "https": tls_pool}


def guarded_session(policy: AddressPolicy, headers: dict[str, str]) -> requests.Session:
    """A session with our headers, no proxies from the environment, and no cookie jar."""
    session = requests.Session()
    session.trust_env = False  # a proxy would hide the real peer from the address check
    session.headers.clear()
    session.headers.update(headers)
    session.cookies.set_policy(_NO_COOKIES)
    adapter = GuardedAdapter(policy, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
