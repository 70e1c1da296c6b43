"""A urllib3 pool manager whose connections obey the address policy and the deadline.

urllib3 opens sockets in ``HTTPConnection._new_conn``; ours resolves with the
policy's resolver, refuses the whole name if any address is not allowed
(``BlockedAddress`` propagates untouched through urllib3), and
connects to one of the checked addresses. Every request also registers its
socket with the running fetch's deadline. TLS still verifies the certificate
against the host name, not the address.

urllib3 directly, not requests on top of it (requests is urllib3 plus a
session layer): that layer -- settings merged per request, a cookie jar,
hooks -- was over half of the CPU of a conditional GET answered 304
(issue 8), and a fetcher needs none of it. urllib3 keeps no cookies and
reads no proxy settings from the environment (a proxy would hide the real
peer from the address check).
"""

from __future__ import annotations

import socket
from typing import Any

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from aggregator.fetch.deadline import watch_current

if not callable(getattr(HTTPConnection, "_new_conn", None)):  # urllib3 2.x (pyproject: <3)
    raise ImportError(
        "this urllib3 has no HTTPConnection._new_conn, where every connection's address "
        "is checked; install urllib3 2.x"
    )
from aggregator.fetch.guard import AddressPolicy


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


def guarded_pools(policy: AddressPolicy, *, per_host: int, hosts: int = 64) -> PoolManager:
    """Connection pools (thread-safe, keep-alive) that connect only where ``policy`` allows.

    ``per_host`` idle connections are kept per host (the per-host slots never
    have more in flight); pools of the ``hosts`` least recently used hosts are kept.
    """
    http_conn = _guarded(HTTPConnection, policy)
    https_conn = _guarded(HTTPSConnection, policy)
    manager = PoolManager(num_pools=hosts, maxsize=max(1, per_host), retries=False)
    manager.pool_classes_by_scheme = {
        "http": type("GuardedPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedTLSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }
    return manager
