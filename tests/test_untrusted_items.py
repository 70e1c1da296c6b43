"""One bad item never stops the rest (issue 13), with the real CLI, a loopback server, SQLite
and PostgreSQL.

Hostile items enter through three formats at once: an RSS item dated in year
9999, a JSON Feed item with NUL and a lone surrogate in its fields and a date
past ``datetime.max`` once in UTC, and a JSON API whose infoCodes are 70 and 300
digits long. Every source must come out ``ok``, every file written; a stored
entry the writers cannot render (as older versions stored them) costs its own
files only, named in the error, and ``.written`` does not claim them done.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree
from sqlalchemy import create_engine, update

from aggregator.store.engine import normalize_url
from aggregator.store.schema import items
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"


def rss(site: str, *entries: tuple[str, str]) -> bytes:
    """RSS 2.0 with one item per (title, pubDate), linked under ``site`` (each source its
    own links: items of two sources with one link merge)."""
    body = "".join(
        f"<item><title>{title}</title><link>http://example.org/{site}/{i}</link>"
        f"<guid>g{i}</guid>"
        f"<pubDate>{date}</pubDate><description>text of {title}</description></item>"
        for i, (title, date) in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.org/</link><description>d</description>{body}</channel></rss>"
    ).encode()


#: JSON escapes: NUL and a lone surrogate in every text field of one item
JSON_FEED = (
    b'{"version": "https://jsonfeed.org/version/1.1", "title": "j", "items": ['
    b'{"id": "j1\\u0000", "url": "http://example.org/j1", "title": "nul\\u0000 and \\ud800",'
    b' "content_html": "<p>body \\ud800 \\u0000</p>", "authors": [{"name": "a\\ud800"}],'
    b' "date_published": "9999-12-31T23:59:59-05:00"},'
    b'{"id": "j2", "url": "http://example.org/j2", "title": "plain",'
    b' "content_html": "<p>plain</p>", "date_published": "2026-03-01T08:00:00Z"}]}'
)

LONG_CODE = "7" * 300


def api_list() -> bytes:
    nodes = [
        {"code": LONG_CODE, "title": "three hundred digits", "time": "2026-03-01 09:00:00"},
        {"code": "NW" + "1" * 68, "title": "seventy characters", "time": "2026-03-01 09:05:00"},
        {"code": "NW202603011234567890", "title": "a fine one", "time": "2026-03-01 09:10:00"},
    ]
    return json.dumps({"list": nodes}).encode()


def write_config(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> Path:
    year9999 = loopback.add(
        "/future.xml",
        rss(
            "future",
            ("from the far future", "Fri, 31 Dec 9999 23:00:00 GMT"),
            ("an honest one", "Sun, 01 Mar 2026 06:00:00 GMT"),
        ),
    )
    plain = loopback.add(
        "/plain.xml",
        rss(
            "plain",
            ("plain news", "Sun, 01 Mar 2026 07:00:00 GMT"),
            ("from 1890", "Wed, 01 Jan 1890 00:00:00 GMT"),
        ),
    )
    jsonfeed = loopback.add("/feed.json", JSON_FEED, headers={"Content-Type": "application/json"})
    api = loopback.add("/api", api_list(), headers={"Content-Type": "application/json"})
    path = tmp_path / "aggregator.toml"
    path.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
timezone = "Asia/Shanghai"
[limits]
jitter = 0
[posts]
dir = "site"
site_url = "//site.example"
[categories.future]
title = "Future"
[categories.plain]
title = "Plain"
[categories.jf]
title = "JSON Feed"
[categories.api]
title = "API"
[[sources]]
id = "future"
url = "{year9999}"
categories = ["future"]
[[sources]]
id = "plain"
url = "{plain}"
categories = ["plain"]
[[sources]]
id = "jf"
url = "{jsonfeed}"
categories = ["jf"]
[[sources]]
id = "api"
url = "{api}"
categories = ["api"]
type = "json"
[sources.json]
items = "list"
infocode = "code"
title = "title"
published = "time"
link = "http://example.org/a?infoCode={{infocode}}"
""",
        encoding="utf-8",
    )
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args], capture_output=True, text=True, timeout=180
    )


def entries(path: Path) -> dict[str, etree._Element]:
    root = etree.parse(str(path)).getroot()
    return {e.findtext(f"{ATOM}title"): e for e in root.iter(f"{ATOM}entry")}


def test_hostile_items_stop_nothing(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> None:
    config = write_config(tmp_path, loopback, db_url)
    started = datetime.now(UTC)
    done = cli("poll", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    for sid in ("future", "plain", "jf", "api"):
        assert f"{sid} ok" in done.stdout, done.stdout + done.stderr
    public = tmp_path / "public"
    assert {"future.atom", "plain.atom", "jf.atom", "api.atom", "all.atom", ".written"} <= {
        p.name for p in public.iterdir()
    }
    # dated when first seen, with a warning naming the source; the feed's updated is not 9999
    everything = entries(public / "all.atom")
    far = everything["from the far future"]
    published = datetime.fromisoformat(far.findtext(f"{ATOM}published"))
    assert started.replace(microsecond=0) <= published <= datetime.now(UTC)
    assert "future: 1 items dated more than a day ahead" in done.stderr
    feed_updated = etree.parse(str(public / "all.atom")).getroot().findtext(f"{ATOM}updated")
    assert not feed_updated.startswith("9999")
    # NUL gone, the lone surrogate replaced; the date past datetime.max in UTC clamped too
    jf = entries(public / "jf.atom")
    assert set(jf) == {"nul and \ufffd", "plain"}
    assert "jf: 1 items dated more than a day ahead" in done.stderr
    # infoCodes too long to be one: the items are kept (keyed by guid), posts written
    api = entries(public / "api.atom")
    assert set(api) == {"three hundred digits", "seventy characters", "a fine one"}
    posts = sorted(p.name for p in (tmp_path / "site" / "_posts").iterdir())
    assert len(posts) == 9, posts
    assert any(name.endswith("-NW202603011234567890.md") for name in posts)
    assert all(len(name) < 120 for name in posts)
    # before 1901 Shanghai kept local mean time, +08:05:43: written in whole minutes
    old = entries(public / "plain.atom")["from 1890"]
    assert old.findtext(f"{ATOM}published") == "1890-01-01T08:06:00+08:06"
    post = next(p for p in (tmp_path / "site" / "_posts").iterdir() if p.name.startswith("1890"))
    assert "\ndate: 1890-01-01 08:06:00 +0806\n" in post.read_text(encoding="utf-8")


def test_an_entry_that_cannot_be_rendered_costs_its_files_only(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    config = write_config(tmp_path, loopback, db_url)
    assert cli("poll", "-c", str(config)).returncode == 0
    public = tmp_path / "public"
    # as an older version stored it: 9999-12-31T23:00Z overflows in +08:00
    engine = create_engine(normalize_url(db_url))
    with engine.begin() as conn:
        far = datetime(9999, 12, 31, 23, tzinfo=UTC)
        conn.execute(
            update(items).where(items.c.title == "an honest one").values(published=far, updated=far)
        )
    engine.dispose()
    for name in ("plain.atom", "jf.atom", "index.html", ".written"):
        (public / name).unlink()

    built = cli("build", "-c", str(config))
    assert built.returncode == 1, built.stdout + built.stderr
    failed = {
        line.split(":", 2)[1].strip()
        for line in built.stderr.splitlines()
        if line.startswith("not written:")
    }
    assert {"future.atom", "all.atom"} <= failed, built.stderr
    assert not failed & {"plain.atom", "jf.atom", "api.atom", "index.html", "index.opml"}
    for name in ("plain.atom", "jf.atom", "index.html", "index.opml"):
        assert (public / name).exists(), name

    polled = cli("poll", "-c", str(config))
    assert "write future.atom failed" in polled.stderr, polled.stderr
    assert not (public / ".written").exists()  # the next poll tries the failed files again
