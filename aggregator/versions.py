"""``aggregator --version``: this version and those of what it runs on, as newsboat's ``-V``.

A bug report with this output says which feedparser read the feed, which
SQLite or psycopg stored it, and which Python ran it.
"""

from __future__ import annotations

import platform
import sqlite3
from importlib.metadata import PackageNotFoundError, version

from aggregator import __version__

#: the libraries whose behaviour shows in the feeds, the store and the server
LIBRARIES = (
    "feedparser",
    "feedgen",
    "APScheduler",
    "SQLAlchemy",
    "alembic",
    "psycopg",
    "requests",
    "urllib3",
    "lxml",
    "nh3",
    "pydantic",
    "uvicorn",
    "click",
)


def library_versions() -> list[tuple[str, str]]:
    found = []
    for name in LIBRARIES:
        try:
            found.append((name, version(name)))
        except PackageNotFoundError:
            found.append((name, "not installed"))
    return found


def versions_text() -> str:
    lines = [
        f"aggregator {__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLite {sqlite3.sqlite_version}",
        "libraries:",
    ]
    lines += [f"  {name} {ver}" for name, ver in library_versions()]
    return "\n".join(lines)
