"""The pipeline end to end, through the CLI as a subprocess, on both databases.

The seed article (../shared/seed-example.md) is carried by two JSON sources
shaped like the original site's Eastmoney APIs and by one RSS feed; it must
end as one entry per feed, with the body from the detail request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from tests.finews_api import CODE, SHARE, TITLE, aggregator, serve_finews, snapshot
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"


def write_config(tmp_path: Path, base: str, db_url: str) -> Path:
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
base_url = "http://127.0.0.1:8080/"
timezone = "Asia/Shanghai"

[categories.emnews]
title = "东财滚动新闻"

[categories.kejiribao]
title = "科技日报新闻"

[[sources]]
id = "em-publishers"
url = "{base}/web/webapi?type=45&count=100&newsid=1"
categories = []
category_from = "author"
type = "json"
[sources.json]
items = "nodeList"
infocode = "infocode"
title = "title"
published = "showtime"
link = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode={{infocode}}"
author = "from"
[sources.json.detail]
url = "{base}/NewsData/GetNewsText.do?id={{infocode}}"
content = "text"

[[sources]]
id = "em-rolling"
url = "{base}/web/webapi?type=102&count=100&newsid=1"
categories = ["emnews"]
type = "json"
[sources.json]
items = "records"
infocode = "infoCode"
title = "title"
published = "showtime"
link = "url_w"
summary = "digest"

[[sources]]
id = "kjrb-rss"
url = "{base}/kjrb.xml"
categories = ["kejiribao"]
""",
        encoding="utf-8",
    )
    return config


def entries_of(path: Path) -> list[etree._Element]:
    return etree.parse(str(path)).getroot().findall(f"{ATOM}entry")


def test_seed_article_ends_as_one_entry(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    serve_finews(loopback)
    config = write_config(tmp_path, loopback.url, db_url)
    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    lines = sorted(first.stdout.splitlines())
    assert [line.split()[:2] for line in lines] == [
        ["em-publishers", "ok"],
        ["em-rolling", "ok"],
        ["kjrb-rss", "ok"],
    ]

    public = tmp_path / "public"
    (entry,) = [e for e in entries_of(public / "kejiribao.atom") if CODE in e.findtext(f"{ATOM}id")]
    assert len(entries_of(public / "kejiribao.atom")) == 1
    assert entry.findtext(f"{ATOM}title") == TITLE
    assert entry.findtext(f"{ATOM}published") == "2022-05-25T16:53:43+08:00"
    assert entry.find(f"{ATOM}link[@rel='alternate']").get("href") == SHARE
    assert entry.findtext(f"{ATOM}author/{ATOM}name") == "科技日报"
    labels = {c.get("term"): c.get("label") for c in entry.findall(f"{ATOM}category")}
    assert labels == {"kejiribao": "科技日报新闻", "emnews": "东财滚动新闻"}
    content = entry.findtext(f"{ATOM}content")
    assert "内江高新区如何对园区企业进行培育规划" in content
    assert "（文章来源：科技日报）" in content

    for name in ("emnews.atom", "all.atom"):
        ids = [e.findtext(f"{ATOM}id") for e in entries_of(public / name)]
        assert ids.count(f"urn:infocode:{CODE}") == 1, name
    assert (public / "zhongguojijinbao.atom").exists()
    assert len(loopback.requests_to("/NewsData/GetNewsText.do")) == 2

    before = snapshot(public)
    second = aggregator("poll", "-c", str(config))
    assert second.returncode == 0, second.stderr
    assert snapshot(public) == before
    # unchanged list items ask for no body again
    assert len(loopback.requests_to("/NewsData/GetNewsText.do")) == 2

    serve_finews(loopback, title=TITLE + "（更新）")
    third = aggregator("poll", "-c", str(config))
    assert third.returncode == 0, third.stderr
    assert "em-publishers ok new=0 updated=1" in third.stdout
    entries = entries_of(public / "kejiribao.atom")
    assert len(entries) == 1
    assert entries[0].findtext(f"{ATOM}title") == TITLE + "（更新）"
    old = etree.fromstring(before["kejiribao.atom"][0]).find(f"{ATOM}entry")
    assert entries[0].findtext(f"{ATOM}updated") >= old.findtext(f"{ATOM}updated")
    assert entries[0].findtext(f"{ATOM}id") == f"urn:infocode:{CODE}"
    parsed = feedparser.parse((public / "all.atom").read_bytes())
    assert not parsed.bozo
    assert [e.id for e in parsed.entries].count(f"urn:infocode:{CODE}") == 1


def test_sources_table_and_build(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> None:
    serve_finews(loopback)
    config = write_config(tmp_path, loopback.url, db_url)
    loopback.add("/kjrb.xml", b"", status=500)
    polled = aggregator("poll", "-c", str(config))
    assert polled.returncode == 1
    assert "kjrb-rss failed 5xx: HTTP 500" in polled.stdout
    table = aggregator("sources", "-c", str(config))
    assert table.returncode == 0
    assert "kjrb-rss" in table.stdout and "5xx" in table.stdout and "em-rolling" in table.stdout
    public = tmp_path / "public"
    for path in public.glob("*.atom"):
        path.unlink()
    built = aggregator("build", "-c", str(config))
    assert built.returncode == 0, built.stderr
    assert {p.name for p in public.glob("*.atom")} >= {"kejiribao.atom", "emnews.atom", "all.atom"}


def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[aggregator]\ndefault_interval = "soon"\n')
    assert aggregator("poll", "-c", str(bad)).returncode == 2
    assert aggregator("build", "-c", str(bad)).returncode == 2
    good = tmp_path / "good.toml"
    good.write_text(f'[aggregator]\ndatabase = "sqlite:///{tmp_path}/x.db"\n')
    unknown = aggregator("poll", "-c", str(good), "--source", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


@pytest.mark.parametrize("name", ["python -m aggregator", "aggregator"])
def test_entry_points(name: str) -> None:
    cmd = name.split() if name != "python -m aggregator" else [sys.executable, "-m", "aggregator"]
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("run", "poll", "build", "serve", "check-config", "sources"):
        assert command in out.stdout
