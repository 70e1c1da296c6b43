"""Retention through the CLI: old items outside every feed window go, and stay gone.

A source keeps serving the pruned item; the tombstone keeps it out of the
database and the feeds, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from aggregator.config import load_config
from aggregator.daemon import Daemon
from aggregator.notify import Notifier
from aggregator.poll import poll_once
from aggregator.store import Store
from tests.loopback import LoopbackServer

NOW = datetime.now(UTC)
OLD_GUID = "old-1"
OLD_KEY = f"src:news-rss:guid:{OLD_GUID}"


def feed(*items: tuple[str, datetime]) -> bytes:
    body = "".join(
        f"<item><title>item {guid}</title><link>http://example.org/{guid}</link>"
        f'<guid isPermaLink="false">{guid}</guid><pubDate>{format_datetime(when)}</pubDate>'
        f"<description>text of {guid}</description></item>"
        for guid, when in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>news</title>'
        f"<link>http://example.org/</link><description>d</description>{body}</channel></rss>"
    ).encode()


def write_config(folder: Path, url: str, db_url: str, settings: str = "") -> Path:
    config = folder / "aggregator.toml"
    config.write_text(
        f"""[aggregator]
database = "{db_url}"
output_dir = "public"
{settings}

[categories.news]
title = "News"

[[sources]]
id = "news-rss"
url = "{url}"
categories = ["news"]
""",
        encoding="utf-8",
    )
    return config


def poll(config: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def keys(db_url: str) -> set[str]:
    store = Store.open(db_url)
    try:
        return {e.key for e in store.entries(None, None)}
    finally:
        store.close()


def outputs(folder: Path) -> str:
    public = folder / "public"
    return "".join(p.read_text(encoding="utf-8") for p in sorted(public.glob("*.atom")))


def test_pruned_item_stays_gone(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> None:
    recent = [("new-1", NOW - timedelta(days=1)), ("new-2", NOW - timedelta(days=2))]
    old = (OLD_GUID, NOW - timedelta(days=400))
    url = loopback.add("/news.xml", feed(*recent, old))
    config = write_config(tmp_path, url, db_url)
    poll(config)
    assert OLD_KEY in keys(db_url)
    assert "text of old-1" in outputs(tmp_path)

    # retention on, feeds of two: the old item is outside every window and over 30 days
    config = write_config(tmp_path, url, db_url, 'retention = "30d"\nentries_per_feed = 2')
    second = poll(config)
    assert "news-rss unchanged" in second.stdout  # a 304: pruning does not need new content
    assert OLD_KEY not in keys(db_url)
    assert {"src:news-rss:guid:new-1", "src:news-rss:guid:new-2"} <= keys(db_url)
    assert "old-1" not in outputs(tmp_path)
    assert "prune items=1" in second.stderr

    # the source still serves it (and something new): it does not come back
    loopback.add("/news.xml", feed(("new-3", NOW), *recent, old))
    third = poll(config)
    assert "news-rss ok new=1" in third.stdout, third.stdout
    assert OLD_KEY not in keys(db_url)
    assert "old-1" not in outputs(tmp_path) and "text of new-3" in outputs(tmp_path)
    store = Store.open(db_url)
    try:
        assert store.tombstoned([OLD_KEY]) == {OLD_KEY}
    finally:
        store.close()


def test_nothing_pruned_without_retention_or_inside_a_window(
    tmp_path: Path, loopback: LoopbackServer, sqlite_url: str
) -> None:
    url = loopback.add(
        "/news.xml", feed(("a", NOW - timedelta(days=400)), ("b", NOW - timedelta(days=500)))
    )
    poll(write_config(tmp_path, url, sqlite_url))
    # old, but the newest two of their feed: a feed never shrinks below its window
    poll(write_config(tmp_path, url, sqlite_url, 'retention = "1d"\nentries_per_feed = 2'))
    assert keys(sqlite_url) == {"src:news-rss:guid:a", "src:news-rss:guid:b"}


def test_daemon_prunes(tmp_path: Path, loopback: LoopbackServer, sqlite_url: str) -> None:
    url = loopback.add("/news.xml", feed(("new-1", NOW), (OLD_GUID, NOW - timedelta(days=90))))
    poll_once(load_config(write_config(tmp_path, url, sqlite_url)), None)
    config = load_config(
        write_config(tmp_path, url, sqlite_url, 'retention = "30d"\nentries_per_feed = 1')
    )
    daemon = Daemon(config.path, config, notifier=Notifier(""))
    daemon.attach(Store.open(sqlite_url))
    try:
        daemon.prune()
        assert daemon.writer.pending() == {"news"}  # the writer rewrites what changed
        assert OLD_KEY not in keys(sqlite_url)
    finally:
        daemon.store.close()  # type: ignore[union-attr]
