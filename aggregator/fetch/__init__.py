"""The fetch stage: ``FetchJob`` -> ``Fetched | NotModified``, or a ``FetchError``.

Modules, in the order a request meets them:

    client.py     Fetcher: conditional GET, redirects by hand, the answer as a record
    guard.py      which addresses a source may reach (SSRF policy)
    transport.py  urllib3 pools whose sockets obey the policy and the deadline
    deadline.py   the total wall-clock limit of one fetch
    body.py       streaming decode with a size cap (gzip bombs stop at the cap)
    hosts.py      per-host concurrency (politeness)
    translate.py  urllib3/socket errors and HTTP statuses -> FetchError
"""

from aggregator.fetch.client import ACCEPT, Fetcher
from aggregator.fetch.guard import AddressPolicy, Classifier, Resolver, is_public, system_resolve
from aggregator.fetch.hosts import HostLimiter

__all__ = [
    "ACCEPT",
    "AddressPolicy",
    "Classifier",
    "Fetcher",
    "HostLimiter",
    "Resolver",
    "is_public",
    "system_resolve",
]
