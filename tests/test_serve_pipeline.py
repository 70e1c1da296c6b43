"""Done means (issue 4): after a real poll, ``aggregator serve`` answers every listed feed.

A loopback source is polled by ``aggregator poll`` (a process: fetch, parse,
dedupe, store, write), then ``aggregator serve`` (another process) is asked
for every feed that ``index.opml`` lists, with each HTTP feature a reader uses.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import lxml.etree
import lxml.html
import requests

from tests.loopback import LoopbackServer
from tests.test_serve import SEED_TITLE
from tests.test_serve_process import free_port, start_serve, wait_until_up

SEED_LINK = "http://finews.example.org/NewsShare.html?infoCode=NW202205252391675717"


def rss(items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 document of (title, link, RFC 822 date) items."""
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(link)}</link><guid>{escape(link)}</guid>"
        f"<pubDate>{d}</pubDate><description>&lt;p&gt;{escape(t)}&lt;/p&gt;</description></item>"
        for t, link, d in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>source</title><link>http://finews.example.org/</link>{body}</channel></rss>"
    ).encode()


def test_after_a_poll_serve_answers_every_feed(tmp_path: Path, loopback: LoopbackServer) -> None:
    cst = timezone(timedelta(hours=8))
    when = datetime(2022, 5, 25, 16, 53, 43, tzinfo=cst)
    kjrb = loopback.add(
        "/kjrb.xml",
        rss(
            [
                (SEED_TITLE, SEED_LINK, format_datetime(when)),
                ("创新驱动", SEED_LINK.replace("7717", "7718"), format_datetime(when)),
            ]
        ),
        headers={"Content-Type": "application/rss+xml; charset=utf-8"},
    )
    markets = loopback.add(
        "/markets.xml",
        rss([("A股收涨", "http://finews.example.org/a/1.html", format_datetime(when))]),
        headers={"Content-Type": "application/rss+xml; charset=utf-8"},
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "sqlite:///var/aggregator.db"
output_dir = "public"
base_url = "{base}"
[server]
listen = "127.0.0.1:{port}"
[categories.kejiribao]
title = "科技日报新闻"
[categories.markets]
title = "市场"
[[sources]]
id = "kjrb"
url = "{kjrb}"
categories = ["kejiribao"]
[[sources]]
id = "markets"
url = "{markets}"
categories = ["markets"]
""",
        encoding="utf-8",
    )
    poll = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert poll.returncode == 0, poll.stdout + poll.stderr

    proc = start_serve(config)
    try:
        wait_until_up(proc, base)
        opml = requests.get(base + "index.opml", timeout=5)
        assert opml.headers["Content-Type"] == "text/x-opml; charset=utf-8"
        feeds = [o.get("xmlUrl") for o in lxml.etree.fromstring(opml.content).iter("outline")]
        assert sorted(urlsplit(u).path for u in feeds) == [
            "/all.atom",
            "/kejiribao.atom",
            "/markets.atom",
        ]
        page = lxml.html.document_fromstring(requests.get(base, timeout=5).content)
        links = {a.get("href") for a in page.iter("a")}
        assert {"kejiribao.atom", "markets.atom", "all.atom", "index.opml"} <= links

        on_disk = tmp_path / "public"
        for url in feeds:
            assert url.startswith(base)
            name = urlsplit(url).path.lstrip("/")
            plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=5)
            assert plain.status_code == 200
            assert plain.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
            assert plain.content == (on_disk / name).read_bytes()
            etag, modified = plain.headers["ETag"], plain.headers["Last-Modified"]
            zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
            assert zipped.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(zipped.raw.read()) == plain.content
            head = requests.head(url, headers={"Accept-Encoding": "identity"}, timeout=5)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["ETag"] == etag
            for validator in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
                again = requests.get(url, headers=validator, timeout=5)
                assert again.status_code == 304, (url, validator)
        assert SEED_TITLE in requests.get(base + "kejiribao.atom", timeout=5).text
        assert SEED_TITLE in requests.get(base + "all.atom", timeout=5).text
        health = requests.get(base + "healthz", timeout=10).json()
        assert {s["id"]: s["health"] for s in health["sources"]} == {
            "kjrb": "ok",
            "markets": "ok",
        }
        assert all(s["last_success"] for s in health["sources"])
        proc.terminate()
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
