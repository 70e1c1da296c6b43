"""End to end: two sources serving the same story are one entry, through `aggregator poll`
subprocesses against loopback feeds, and `aggregator explain` says why."""

from __future__ import annotations

from pathlib import Path

from lxml import etree
from sqlalchemy import select

from aggregator.store import Store
from aggregator.store.schema import item_versions
from tests.finews_api import aggregator
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"


def rss(*items: tuple[str, str, str]) -> str:
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>Wed, 01 May 2024 08:00:00 GMT</pubDate>"
        f"<description>{text}</description></item>"
        for title, link, text in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>t</title><link>https://example.com/</link><description>d</description>"
        f"{body}</channel></rss>"
    )


def write_config(tmp_path: Path, base: str, db_url: str) -> Path:
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"

[categories.tech]
title = "Tech"

[categories.portal]
title = "Portal"

[[sources]]
id = "publisher"
url = "{base}/publisher.xml"
categories = ["tech"]

[[sources]]
id = "portal"
url = "{base}/portal.xml"
categories = ["portal"]
""",
        encoding="utf-8",
    )
    return config


def ids(path: Path) -> list[str]:
    root = etree.parse(str(path)).getroot()
    return sorted(e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry"))


def id_of(path: Path, title: str) -> str:
    root = etree.parse(str(path)).getroot()
    (entry,) = [e for e in root.findall(f"{ATOM}entry") if e.findtext(f"{ATOM}title") == title]
    return entry.findtext(f"{ATOM}id")


STORY = ("Chip rules tightened", "https://www.example.com/news/1.html", "Export rules for chips.")
OTHER = ("Rates held", "https://example.com/news/2.html", "The bank held rates.")
COPY = (
    "Chip rules tightened - Portal",
    "http://m.example.com/news/1.html?utm_source=rss&spm=a",
    "Copy.",
)


def test_two_sources_one_story_one_entry(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    loopback.add("/publisher.xml", rss(STORY, OTHER))
    loopback.add("/portal.xml", rss())
    config = write_config(tmp_path, loopback.url, db_url)
    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    public = tmp_path / "public"
    story_id = id_of(public / "tech.atom", STORY[0])
    other_id = id_of(public / "tech.atom", OTHER[0])
    assert ids(public / "portal.atom") == []

    loopback.add("/portal.xml", rss(COPY), etag='"2"')
    second = aggregator("poll", "-c", str(config))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "portal ok new=1" in second.stdout
    # the portal's copy is the publisher's entry, under the id first written
    assert ids(public / "portal.atom") == [story_id]
    assert ids(public / "tech.atom") == ids(public / "all.atom") == sorted([story_id, other_id])
    root = etree.parse(str(public / "all.atom")).getroot()
    entry = next(e for e in root.findall(f"{ATOM}entry") if e.findtext(f"{ATOM}id") == story_id)
    assert [v.get("href") for v in entry.findall(f"{ATOM}link[@rel='via']")] == [COPY[1]]

    explained = aggregator("explain", "-c", str(config), "https://example.com/news/1.html")
    assert explained.returncode == 0, explained.stderr
    out = explained.stdout
    assert f"entry {story_id}" in out
    assert "publisher" in out and "first seen" in out
    assert "portal" in out and "canonical link" in out
    assert aggregator("explain", "-c", str(config), story_id).stdout == out
    missing = aggregator("explain", "-c", str(config), "https://example.com/news/404.html")
    assert missing.returncode == 1
    assert "no entry" in missing.stderr


def test_explain_reads_only(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", f"sqlite:///{tmp_path}/none.db")
    done = aggregator("explain", "-c", str(config), "https://example.com/news/1.html")
    assert done.returncode == 1
    assert "no database" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_titles_are_stored_for_the_sources_with_similar_on(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    """The poll makes normalized titles only where ``similar`` is on (the portal's); the
    portal's copy under another link still joins the publisher's story by title and text."""
    text = "The central bank held its benchmark rate steady, citing inflation above target."
    loopback.add("/publisher.xml", rss(("Rates held", "https://example.com/news/2.html", text)))
    loopback.add("/portal.xml", rss())
    config = write_config(tmp_path, loopback.url, db_url)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'categories = ["portal"]', 'categories = ["portal"]\nsimilar = true'
        ),
        encoding="utf-8",
    )
    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    copy = ("【快讯】Rates held - Portal", "https://portal.example/a?id=9", text)
    loopback.add("/portal.xml", rss(copy), etag='"2"')
    second = aggregator("poll", "-c", str(config))
    assert second.returncode == 0, second.stdout + second.stderr
    public = tmp_path / "public"
    assert ids(public / "portal.atom") == ids(public / "tech.atom")
    assert len(ids(public / "all.atom")) == 1
    store = Store.open(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(item_versions.c.source_id, item_versions.c.title_norm))
            titles = {r.source_id: r.title_norm for r in rows}
    finally:
        store.close()
    # the portal's made by dedupe; the publisher's filled in when the portal looked for it
    assert titles == {"portal": "ratesheld", "publisher": "ratesheld"}
