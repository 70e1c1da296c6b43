"""Feeds stay bounded and follow the config (issue 13), with the real CLI, a loopback
server, SQLite and PostgreSQL.

* a huge entry is cut in the feeds, kept whole in the store;
* a source removed from the config takes its items out of every feed (an item
  another configured source carries stays), a removed category's files go;
* a source whose id changes while its URL stays keeps its items' identity.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lxml import etree
from sqlalchemy import create_engine, func, select

from aggregator.store.engine import normalize_url
from aggregator.store.schema import bodies
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"


def rss(*entries: tuple[str, str]) -> bytes:
    """RSS 2.0, one item per (guid, body); the guid doubles as title and link."""
    body = "".join(
        f"<item><title>{guid}</title><link>http://example.org/{guid}</link><guid>{guid}</guid>"
        f"<pubDate>Sun, 01 Mar 2026 0{i}:00:00 GMT</pubDate>"
        f"<description><![CDATA[{text}]]></description></item>"
        for i, (guid, text) in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.org/</link><description>d</description>{body}</channel></rss>"
    ).encode()


def config(tmp_path: Path, db_url: str, categories: dict[str, str], sources: str) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(
        f'[aggregator]\ndatabase = "{db_url}"\noutput_dir = "public"\n[limits]\njitter = 0\n'
        + "".join(f'[categories.{c}]\ntitle = "{t}"\n' for c, t in categories.items())
        + sources,
        encoding="utf-8",
    )
    return path


def source(sid: str, url: str, category: str) -> str:
    return f'[[sources]]\nid = "{sid}"\nurl = "{url}"\ncategories = ["{category}"]\n'


def poll(path: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def ids(path: Path) -> list[str]:
    root = etree.parse(str(path)).getroot()
    return [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]


def titles(path: Path) -> set[str]:
    root = etree.parse(str(path)).getroot()
    return {e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")}


def test_a_huge_entry_is_cut_in_feeds_and_kept_whole(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    huge = "<p>" + "长文" * 500_000 + "</p>"  # a million characters, 3 MB of UTF-8
    url = loopback.add("/big.xml", rss(("big1", huge)))
    path = config(tmp_path, db_url, {"c": "C"}, source("big", url, "c"))
    poll(path)
    loopback.add("/big.xml", rss(("big1", huge), ("big2", huge)))
    poll(path)
    public = tmp_path / "public"
    for name in ("all.atom", "c.atom", "all.rss", "all.json", "c.html"):
        assert (public / name).stat().st_size < 800_000, name
    assert titles(public / "all.atom") == {"big1", "big2"}
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        assert conn.execute(select(func.min(func.length(bodies.c.content_html)))).scalar() >= len(
            huge
        )
    engine.dispose()


def test_removed_sources_and_categories_leave_the_feeds(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    shared = ("NW202603010000000001", "<p>both carry it</p>")
    a = loopback.add("/a.xml", rss(("a-only", "<p>a</p>"), shared))
    b = loopback.add("/b.xml", rss(("b-only", "<p>b</p>"), shared))
    both = source("a", a, "alpha") + source("b", b, "beta")
    path = config(tmp_path, db_url, {"alpha": "Alpha", "beta": "Beta"}, both)
    poll(path)
    public = tmp_path / "public"
    assert titles(public / "all.atom") == {"a-only", "b-only", shared[0]}
    assert (public / "alpha.atom").exists()

    config(tmp_path, db_url, {"beta": "Beta"}, source("b", b, "beta"))
    poll(path)
    assert titles(public / "all.atom") == {"b-only", shared[0]}
    assert titles(public / "beta.atom") == {"b-only", shared[0]}
    assert not [p.name for p in public.iterdir() if p.name.startswith("alpha.")]


def test_a_renamed_source_keeps_its_items_identity(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    url = loopback.add("/feed.xml", rss(("one", "<p>1</p>"), ("two", "<p>2</p>")))
    path = config(tmp_path, db_url, {"c": "C"}, source("old-name", url, "c"))
    poll(path)
    before = ids(tmp_path / "public" / "all.atom")
    assert len(before) == 2

    config(tmp_path, db_url, {"c": "C"}, source("new-name", url, "c"))
    loopback.add("/feed.xml", rss(("one", "<p>1</p>"), ("two", "<p>2</p>"), ("three", "<p>3</p>")))
    done = poll(path)
    assert "new-name ok new=1 updated=0 unchanged=2" in done.stdout, done.stdout
    after = ids(tmp_path / "public" / "all.atom")
    assert len(after) == 3 and set(before) < set(after)
