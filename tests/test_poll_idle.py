"""A poll where every source answers 304: nothing written, no writers loaded, deleted files remade.

The real CLI as a subprocess against a loopback server serving a shared fixture
feed with ETags, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.finews_api import snapshot
from tests.loopback import LoopbackServer

FEED = "cjk__gb2312__w3cn.org.rss.xml"

#: modules an all-304 poll has no use for (writers, parsers, sanitizer, metrics), each a
#: share of its start-up (issue 19: bench/startup.py)
NOT_LOADED = (
    "aggregator.outputs",
    "aggregator.write",
    "aggregator.posts",
    "aggregator.parse",
    "aggregator.dedupe",
    "prometheus_client",
    "feedgen",
    "feedparser",
    "lxml",
    "nh3",
    "re2",  # a config without [[rules]] needs no regex engine
    "regex",
    "alembic",  # a current schema is checked without it
    "sqlalchemy.orm",  # the store is SQLAlchemy Core only
    "requests",  # fetches go through urllib3's pools directly
    "rich",  # the progress bar is for a terminal
    "apscheduler",  # the daemon's
)


def write_config(tmp_path: Path, url: str, db_url: str) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(
        f'[aggregator]\ndatabase = "{db_url}"\noutput_dir = "public"\n'
        '[categories.w3cn]\ntitle = "W3CN"\n'
        f'[[sources]]\nid = "w3cn"\nurl = "{url}"\ncategories = ["w3cn"]\n',
        encoding="utf-8",
    )
    return path


def poll(config: Path, *python_flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "aggregator", "poll", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_all_304_poll_writes_nothing_and_loads_no_writers(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    config = write_config(tmp_path, loopback.url_for(f"/files/{FEED}"), db_url)
    first = poll(config)
    assert first.returncode == 0 and "w3cn ok new=" in first.stdout, first.stderr
    before = snapshot(tmp_path / "public")
    assert {"w3cn.atom", "all.atom", "index.html", "index.opml", ".written"} <= set(before)

    second = poll(config, "-X", "importtime")
    assert second.returncode == 0 and "w3cn unchanged" in second.stdout, second.stderr
    assert snapshot(tmp_path / "public") == before  # no byte and no mtime moved
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in second.stderr.splitlines()
        if line.startswith("import time:")
    }
    loaded = sorted(m for m in imported if any(m == n or m.startswith(n + ".") for n in NOT_LOADED))
    assert loaded == [], loaded


def test_all_304_poll_remakes_a_deleted_feed(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    config = write_config(tmp_path, loopback.url_for(f"/files/{FEED}"), db_url)
    assert poll(config).returncode == 0
    public = tmp_path / "public"
    kept = (public / "w3cn.atom").read_bytes()
    (public / "w3cn.atom").unlink()
    (public / "index.html").unlink()

    again = poll(config)
    assert again.returncode == 0 and "w3cn unchanged" in again.stdout, again.stderr
    assert (public / "w3cn.atom").read_bytes() == kept
    assert (public / "index.html").exists()
