"""Jekyll posts follow exactly the items that changed, wherever the items sit in their feeds
(issue 13), and the Jekyll site never carries script.

An old item's body changes at a later poll while six newer items push it out
of every window a feed shows: its post must be rewritten all the same, also
when the poll that stored the change was killed before it wrote anything
(the next poll finds it through ``.written`` and the items' change counter).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import load_config
from aggregator.model import Category, Entry
from aggregator.posts import render_post
from tests.finews_api import SEED_POST, seed_body
from tests.loopback import LoopbackServer


def rss(prefix: str, count: int, hour: int, body: str = "") -> bytes:
    items = "".join(
        f"<item><title>{prefix} {i}</title><link>http://example.org/{prefix}/{i}</link>"
        f"<guid>{prefix}-{i}</guid><pubDate>Sun, 01 Mar 2026 {hour + i:02d}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;{body or prefix} {i}&lt;/p&gt;</description></item>"
        for i in range(count)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def write_config(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> Path:
    loopback.add("/busy1.xml", rss("busy1", 3, 10))
    loopback.add("/busy2.xml", rss("busy2", 3, 14))
    loopback.add("/old.xml", rss("old", 1, 1, "first"))
    path = tmp_path / "aggregator.toml"
    path.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
entries_per_feed = 2
[limits]
max_items_per_fetch = 3
jitter = 0
[posts]
dir = "site"
site_url = "//site.example"
[categories.c]
title = "C"
"""
        + "".join(
            f'[[sources]]\nid = "{sid}"\nurl = "{loopback.url}/{sid}.xml"\ncategories = ["c"]\n'
            for sid in ("busy1", "busy2", "old")
        ),
        encoding="utf-8",
    )
    return path


def old_post(tmp_path: Path) -> str:
    (post,) = [
        p for p in (tmp_path / "site" / "_posts").iterdir() if "old 0" in p.read_text("utf-8")
    ]
    return post.read_text("utf-8")


def poll(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_post_follows_its_item_outside_every_window(
    tmp_path: Path, loopback: LoopbackServer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, loopback, db_url)
    assert poll(config).returncode == 0
    assert "first 0" in old_post(tmp_path)

    loopback.add("/old.xml", rss("old", 1, 1, "second"))
    done = poll(config)
    assert done.returncode == 0 and "old ok new=0 updated=1" in done.stdout, done.stdout
    assert "second 0" in old_post(tmp_path)

    # killed after the store committed the change, before anything was written
    import aggregator.outputs
    import aggregator.poll

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this point runs

    loopback.add("/old.xml", rss("old", 1, 1, "third"))
    monkeypatch.setattr(aggregator.outputs, "write_outputs", killed)
    with pytest.raises(KeyboardInterrupt):
        aggregator.poll.poll_once(load_config(config), None)
    monkeypatch.undo()
    assert "second 0" in old_post(tmp_path)

    again = poll(config)
    assert again.returncode == 0 and "old unchanged" in again.stdout, again.stdout
    assert "third 0" in old_post(tmp_path)


# --- the Jekyll site never carries script --------------------------------------------------


def entry(**fields: object) -> Entry:
    base: dict[str, object] = {
        "key": "ic:NW1",
        "infocode": "NW1",
        "title": "t",
        "link": "http://example.org/a?infoCode=NW1",
        "content_html": "<p>clean</p>",
        "content_raw": "<p>clean</p>",
        "summary_html": None,
        "author": None,
        "published": datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
        "updated": datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
        "categories": ("c",),
    }
    base.update(fields)
    return Entry(**base)  # type: ignore[arg-type]


SHANGHAI = ZoneInfo("Asia/Shanghai")
CATEGORY = Category("c", "C新闻")


@pytest.mark.parametrize(
    "raw",
    [
        "<p>hi</p><script>alert(1)</script>",
        '<p>hi<img src="x" onerror="alert(1)"></p>',
        '<p><a href="javascript:alert(1)">hi</a></p>',
        '<p><a href="java&#x09;script:alert(1)">hi</a></p>',
        '<p>hi</p>\n{: onclick="alert(1)"}',  # a kramdown attribute list
        "<p>{{ site.github }} {% include x %}</p>",
        "<p>[hi](javascript:alert(1))</p>",
        "<!-- --><p>hi</p>",
    ],
)
def test_an_unsafe_body_is_written_sanitized(raw: str) -> None:
    sanitized = "<p>hi [x](y) {{ z }}</p>"
    post = render_post(entry(content_raw=raw, content_html=sanitized), CATEGORY, "//s", tz=SHANGHAI)
    text = post.decode("utf-8")
    body = text.split("---\n", 2)[2].split("\n\n<http", 1)[0]
    assert body == "<p>hi &#91;x&#93;(y) &#123;&#123; z &#125;&#125;</p>"
    for bad in ("<script", "onerror", "javascript:", "{{", "{%", "{:", "]("):
        assert bad not in body


def test_a_safe_body_is_kept_byte_for_byte() -> None:
    body = seed_body()
    post = render_post(
        entry(content_raw=body, content_html="<p>other</p>"), CATEGORY, "//s", tz=SHANGHAI
    )
    assert body.encode("utf-8") in post
    assert b"<p>other</p>" not in post
    assert SEED_POST.read_bytes().count(body.encode("utf-8")) == 1


def test_names_and_links_from_the_network_stay_text() -> None:
    publisher = Category("x-y", "X](javascript:alert(1))[Y新闻")
    link = "http://example.org/<script>alert(1)</script>"
    text = render_post(entry(link=link), publisher, "//s", tz=SHANGHAI).decode("utf-8")
    assert "<script>" not in text and "\n<http" not in text  # no such link is written
    back = text.rsplit("\n\n", 1)[1]
    assert back == (
        "[返回X\\]\\(javascript\\:alert\\(1\\)\\)\\[Y新闻](//s/category/x-y.html)｜[返回首页](//s/)"
    )
