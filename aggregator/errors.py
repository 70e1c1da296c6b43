"""One exception tree for the whole package.

    AggregatorError
    ├── ConfigError            config files invalid; carries every ConfigProblem
    ├── FetchError             the source could not be fetched (kind says how)
    │   ├── FetchTimeout       connect/read timeout or the total deadline
    │   ├── DNSError           the host name does not resolve
    │   ├── TLSError           certificate or handshake failure
    │   ├── ConnectError       refused, reset, unreachable
    │   ├── BlockedAddress     redirect into loopback/private space (SSRF)
    │   ├── TooLarge           body over the size cap (after decompression)
    │   ├── TooManyRedirects
    │   └── HTTPStatusError    any non-2xx/304 answer
    │       ├── ClientError    4xx
    │       │   ├── Gone       410: the source is disabled
    │       │   └── RateLimited 429: not counted as a failure
    │       └── ServerError    5xx
    ├── ParseError             the body is not something we can read
    │   ├── NotAFeed           HTML page or other non-feed document
    │   ├── Unparseable        broken beyond recovery, or parsing over its budget
    │   └── EmptyFeed          a well-formed document with nothing in it
    └── StoreError             the database did not answer
        └── SchemaMismatch     a read-only command met a schema not this version's

Lower-level errors (requests, expat, SQLAlchemy) are translated at the stage
boundary to the most specific class here and re-raised ``from`` the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class AggregatorError(Exception):
    """Base of every error the package raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a config file, pointing at where it is."""

    file: str  #: path of the file the problem is in
    line: int | None  #: 1-based line where known
    key: str  #: dotted key path, e.g. ``sources[2].interval``
    message: str

    def __str__(self) -> str:
        if not self.file:  # about no one file (none was found)
            return self.message
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(AggregatorError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FetchError(AggregatorError):
    """The fetch failed; ``kind`` is the short word stored on the source."""

    kind = "fetch"

    def __init__(self, message: str, *, retry_after: datetime | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: when the server asked us to come back (429/503 Retry-After)
        self.retry_after = retry_after


class FetchTimeout(FetchError):
    kind = "timeout"


class DNSError(FetchError):
    kind = "dns"


class TLSError(FetchError):
    kind = "tls"


class ConnectError(FetchError):
    kind = "connect"


class BlockedAddress(FetchError):
    kind = "blocked"


class TooLarge(FetchError):
    kind = "too_large"


class TooManyRedirects(FetchError):
    kind = "redirects"


class HTTPStatusError(FetchError):
    kind = "http"

    def __init__(self, status: int, message: str, *, retry_after: datetime | None = None):
        super().__init__(message, retry_after=retry_after)
        self.status = status


class ClientError(HTTPStatusError):
    kind = "4xx"


class Gone(ClientError):
    kind = "gone"


class RateLimited(ClientError):
    kind = "429"


class ServerError(HTTPStatusError):
    kind = "5xx"


class ParseError(AggregatorError):
    kind = "parse"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAFeed(ParseError):
    kind = "not_a_feed"


class Unparseable(ParseError):
    kind = "unparseable"


class EmptyFeed(ParseError):
    kind = "empty"


class StoreError(AggregatorError):
    kind = "database"


class SchemaMismatch(StoreError):
    """The schema is behind (or ahead of, or missing from) what this version reads.

    Raised where a command may only read (``sources``, ``serve``): those never
    migrate; ``poll`` and ``run`` do.
    """

    def __init__(self, message: str, found: str | None, needed: str | None) -> None:
        super().__init__(message)
        self.found = found  #: the database's alembic revision; None: no schema yet
        self.needed = needed  #: this version's head revision
