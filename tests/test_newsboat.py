"""A real feed reader, newsboat, subscribed to the served feeds over loopback.

newsboat runs non-interactively (``-x reload``) with its own urls, config and
cache files; what it read is checked in its SQLite cache, and its later
reloads must be answered with 304s.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from aggregator import metrics
from aggregator.serve import ServerHandle
from tests.test_serve import CATEGORIES, ENTRIES, SEED_TITLE

NEWSBOAT = shutil.which("newsboat")

pytestmark = pytest.mark.skipif(
    NEWSBOAT is None and not os.environ.get("CI"),
    reason="newsboat is not installed (apt-get install newsboat)",
)


class Newsboat:
    def __init__(self, home: Path, urls: list[str]) -> None:
        home.mkdir()
        self.home = home
        self.urls = home / "urls"
        self.urls.write_text("".join(f"{u}\n" for u in urls))
        self.config = home / "config"
        self.config.write_text("reload-threads 4\ndownload-timeout 20\n")
        self.cache = home / "cache.db"

    def run(self, *args: str) -> str:
        assert NEWSBOAT is not None
        env = {**os.environ, "HOME": str(self.home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.pop("http_proxy", None)
        env.pop("HTTP_PROXY", None)
        done = subprocess.run(
            [
                NEWSBOAT,
                "-u",
                str(self.urls),
                "-C",
                str(self.config),
                "-c",
                str(self.cache),
                "-l",
                "4",
                "-d",
                str(self.home / "log"),
                *args,
            ],
            capture_output=True,
            env=env,
            timeout=120,
            check=True,
        )
        return done.stdout.decode("utf-8")

    def items(self) -> dict[str, set[str]]:
        with sqlite3.connect(self.cache) as db:
            rows = db.execute("SELECT feedurl, title FROM rss_item").fetchall()
        got: dict[str, set[str]] = {}
        for feed, title in rows:
            got.setdefault(feed, set()).add(title)
        return got


def test_newsboat_reads_every_served_feed(tmp_path: Path, served: ServerHandle) -> None:
    urls = [f"{served.url}{c.id}.atom" for c in CATEGORIES] + [f"{served.url}all.atom"]
    reader = Newsboat(tmp_path / "newsboat", urls)
    reader.run("-x", "reload")

    items = reader.items()
    # newsboat keeps one item per atom:id across all feeds, so an entry filed under two
    # categories (and all.atom) is stored once, under the first feed that carried it
    assert set().union(*items.values()) == {e.title for e in ENTRIES}
    for category in CATEGORIES:
        expected = {e.title for e in ENTRIES if category.id in e.categories}
        assert items.get(f"{served.url}{category.id}.atom", set()) <= expected, category.id
    assert any(SEED_TITLE in titles for titles in items.values())
    with sqlite3.connect(reader.cache) as db:
        feeds = dict(db.execute("SELECT rssurl, title FROM rss_feed").fetchall())
    # every feed was read: its own title came from the document
    assert feeds == {
        **{f"{served.url}{c.id}.atom": c.title for c in CATEGORIES},
        f"{served.url}all.atom": "测试聚合",
    }

    unread = reader.run("-x", "print-unread").strip()
    assert unread == f"{len(ENTRIES)} unread articles"


def test_newsboat_gets_304_once_it_knows_the_feed(tmp_path: Path, served: ServerHandle) -> None:
    reader = Newsboat(tmp_path / "newsboat", [f"{served.url}kejiribao.atom"])
    reader.run("-x", "reload")
    reader.run("-x", "reload")  # newsboat keeps the validators from its second fetch on
    before = metrics.response_counts().get(304, 0)
    reader.run("-x", "reload")
    assert metrics.response_counts().get(304, 0) == before + 1
    assert SEED_TITLE in reader.items()[f"{served.url}kejiribao.atom"]
