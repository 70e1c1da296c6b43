"""A category page and the status page as real headless Chromium renders them (issue 17).

The site is made by ``aggregator poll`` against the loopback server, with a
hostile item; the pages are served by the real server. ``--dump-dom`` gives
the DOM after scripts would have run, so "nothing runs" is checked on what
the browser did, not on our HTML text. A page made from a body that the
sanitizer let through unchanged (simulated) shows that the page's CSP stops
it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest

from aggregator.config import load_config
from aggregator.model import Category, Entry
from aggregator.serve import ServerHandle, start_server
from aggregator.serve.server import LazyStore
from aggregator.write import feed_meta, replace_with_gzip
from aggregator.write.page import render_page
from aggregator.write.snapshot import take_snapshot
from tests.finews_api import aggregator
from tests.loopback import LoopbackServer
from tests.test_browser import chromium, pytestmark  # noqa: F401 - skipped without chromium
from tests.test_health_feed import write_config

HOSTILE = (
    '<p>hostile body</p><script>document.title="pwned"</script>'
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
    "<a href=\"javascript:document.title='pwned'\">click</a>"
)


def feed(items: list[tuple[int, str, str]]) -> str:
    parts = "".join(
        f"<item><title>{title}</title><link>https://example.org/{n}</link>"
        f"<guid>https://example.org/{n}</guid>"
        f"<pubDate>Wed, 01 May 2024 {n:02d}:00:00 +0000</pubDate>"
        f"<author>desk@example.org (科技日报)</author>"
        f"<description><![CDATA[{body}]]></description></item>"
        for n, title, body in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://example.org/</link><description>d</description>{parts}</channel></rss>"
    )


@pytest.fixture
def served_site(tmp_path: Path, loopback: LoopbackServer) -> Iterator[tuple[Path, ServerHandle]]:
    config_path = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    loopback.add(
        "/flaky.xml", feed([(3, "Hostile &lt;b&gt;title&lt;/b&gt;", HOSTILE), (2, "Plain", "x")])
    )
    loopback.add("/steady.xml", "down", status=503)
    aggregator("poll", "-c", str(config_path))
    config = load_config(config_path)
    store = LazyStore(config.aggregator.database)
    handle = start_server(config, store, lambda: True)
    try:
        yield tmp_path / "public", handle
    finally:
        handle.stop()
        store.close()


def dom(tmp_path: Path, url: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(chromium(tmp_path, "--dump-dom", url).stdout.decode())


def test_category_page_in_chromium(tmp_path: Path, served_site: tuple[Path, ServerHandle]) -> None:
    _, served = served_site
    doc = dom(tmp_path, served.url + "news.html")
    assert doc.findtext(".//title") == "News"
    assert doc.find(".//head/meta[@name='viewport']") is not None
    alternates = {
        ln.get("type"): ln.get("href") for ln in doc.iterfind(".//head/link[@rel='alternate']")
    }
    assert alternates == {
        "application/atom+xml": "news.atom",
        "application/rss+xml": "news.rss",
        "application/feed+json": "news.json",
    }
    articles = doc.findall(".//article")
    assert [a.find("h2/a").text_content() for a in articles] == ["Hostile title", "Plain"]
    assert [a.find("h2/a").get("href") for a in articles] == [
        "https://example.org/3",
        "https://example.org/2",
    ]
    times = [a.find(".//time") for a in articles]
    assert [t.get("datetime") for t in times] == [
        "2024-05-01T11:00:00+08:00",
        "2024-05-01T10:00:00+08:00",
    ]
    assert times[0].text == "2024-05-01 11:00 +08:00"
    assert "科技日报" in articles[0].find("p").text_content()  # the publisher
    assert "flaky" in articles[0].find("p").text_content()  # the source
    # the hostile body: its text is there, nothing of it ran or stayed able to run
    assert "hostile body" in articles[0].text_content()
    assert doc.findtext(".//title") != "pwned" and doc.find("body").get("data-pwned") is None
    assert doc.find(".//script") is None
    for element in doc.iter():
        assert not any(name.startswith("on") for name in element.attrib), element.tag
        assert not (element.get("href") or "").startswith("javascript:")


def test_page_csp_stops_a_script_that_got_through(tmp_path: Path) -> None:
    """Defence in depth: a body the sanitizer missed still cannot run on the page."""
    config = load_config(write_config(tmp_path, "http://127.0.0.1:1", "sqlite:///x.db"))
    settings = config.aggregator
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    entry = Entry(
        key="k",
        infocode=None,
        title="t",
        link="https://example.org/1",
        content_html=HOSTILE,  # as if the sanitizer had let it through
        content_raw=None,
        summary_html=None,
        author=None,
        published=moment,
        updated=moment,
        categories=("news",),
    )
    category = Category("news", "News")
    snapshot = take_snapshot(
        feed_meta(category, settings, moment), [entry], {"news": category}, settings.base_url
    )
    page = tmp_path / "news.html"
    replace_with_gzip(page, render_page(snapshot, settings, settings.formats))
    doc = dom(tmp_path, page.as_uri())
    assert doc.find(".//script") is not None  # it is in the page...
    assert doc.findtext(".//title") == "News"  # ...and did not run
    assert doc.find("body").get("data-pwned") is None


def test_status_page_in_chromium(tmp_path: Path, served_site: tuple[Path, ServerHandle]) -> None:
    public, served = served_site
    for url in (served.url + "status.html", served.url + "status"):
        doc = dom(tmp_path, url)
        assert doc.findtext(".//title") == "测试: status" or "status" in doc.findtext(".//title")
        flaky = doc.get_element_by_id("source-flaky")
        steady = doc.get_element_by_id("source-steady")
        assert flaky.find(".//span").text == "ok"
        assert steady.find(".//span").text == "failing"
        assert "5xx" in steady.text_content()
        cells = [td.text_content() for td in flaky.findall("td")]
        assert cells[3] == "0" and cells[5] == "2"  # errors, items
        assert steady.findall("td")[3].text_content() == "1"
        chart = doc.find(".//section[@id='chart-news']")
        svg = chart.find(".//{http://www.w3.org/2000/svg}svg")
        if svg is None:  # lxml's HTML parser drops the namespace
            svg = chart.find(".//svg")
        assert svg is not None
        assert doc.find(".//script") is None
