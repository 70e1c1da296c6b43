"""Full text and ``type = "html"`` end to end: a loopback news site, the CLI as a subprocess.

The site (tests/data/fulltext/README.md) has an RSS feed whose items carry
only a summary, a GBK list page, and three real article pages (one GBK
Chinese page written around a real article, one real Xinhua page in GBK,
one real English blog page). Page requests are counted at the server.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest
from lxml import etree

from tests.finews_api import aggregator
from tests.loopback import LoopbackServer, Request, Response

DATA = Path(__file__).parent / "data" / "fulltext"
ATOM = "{http://www.w3.org/2005/Atom}"
PAGES = {
    "/news/a/neijiang.html": (DATA / "kjrb-neijiang.gbk.html").read_bytes(),
    "/news/a/xinhua.html": gzip.decompress(
        (DATA / "he.xinhuanet.com.25340717.html.gz").read_bytes()
    ),
    "/news/a/django.html": gzip.decompress((DATA / "caktusgroup.com.django.html.gz").read_bytes()),
}
#: a sentence of each page's article, and a piece of its page around the article
KEY = {
    "/news/a/neijiang.html": ("内江高新区如何对园区企业进行培育规划", "网友评论"),
    "/news/a/xinhua.html": ("省委宣传部组织了话剧《约定无期限》全省各市巡演活动", "关闭窗口"),
    "/news/a/django.html": ("being cached after their first access.", "You might also like:"),
}
TITLES = {
    "/news/a/neijiang.html": "科技金融+组团发展 内江高新区力造百亿级产业集群",
    "/news/a/xinhua.html": "话剧《约定无期限》河北各市巡演结束",
    "/news/a/django.html": "Testing Client-Side Applications with Django Post Mortem",
}


def rss(base: str, paths: list[str], *, titles: dict[str, str] | None = None) -> bytes:
    titles = {**TITLES, **(titles or {})}
    items = "".join(
        f"<item><title>{titles[p]}</title><link>{base}{p}</link><guid>{base}{p}</guid>"
        f"<description>摘要：{titles[p]}</description>"
        "<pubDate>Wed, 25 May 2022 08:53:43 GMT</pubDate></item>"
        for p in paths
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>科技日报</title><link>{base}/news/</link><description>d</description>"
        f"{items}</channel></rss>"
    ).encode()


def serve_site(server: LoopbackServer, paths: list[str] | None = None) -> None:
    paths = list(PAGES) if paths is None else paths
    server.add("/feed.xml", rss(server.url, paths), headers={"Content-Type": "application/rss+xml"})
    for path, body in PAGES.items():
        server.add(path, body, headers={"Content-Type": "text/html"})  # charset from <meta>
    server.add(
        "/news/list.html",
        (DATA / "list.gbk.html").read_bytes(),
        headers={"Content-Type": "text/html"},
    )


def config(tmp_path: Path, db_url: str, sources: str, limits: str = "") -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
base_url = "http://127.0.0.1:8080/"
timezone = "Asia/Shanghai"

[limits]
{limits}

[categories.kejiribao]
title = "科技日报新闻"
{sources}
""",
        encoding="utf-8",
    )
    return path


def feed_source(base: str, fulltext: str = "auto", source_id: str = "kjrb-rss") -> str:
    return f"""
[[sources]]
id = "{source_id}"
url = "{base}/feed.xml"
categories = ["kejiribao"]
fulltext = "{fulltext}"
"""


def html_source(base: str, fulltext: str | None = None, timezone: str | None = None) -> str:
    extra = f'fulltext = "{fulltext}"\n' if fulltext else ""
    extra += f'timezone = "{timezone}"\n' if timezone else ""
    return f"""
[[sources]]
id = "kjrb-web"
url = "{base}/news/list.html"
type = "html"
categories = ["kejiribao"]
{extra}[sources.html]
items = "ul.list li"
title = "a"
link = "a@href"
published = "span.time"
summary = "p.digest"
infocode = "a@data-id"
"""


def contents(public: Path) -> dict[str, str]:
    """Entry link -> its content (else summary) in kejiribao.atom."""
    root = etree.parse(str(public / "kejiribao.atom")).getroot()
    out = {}
    for entry in root.findall(f"{ATOM}entry"):
        link = entry.find(f"{ATOM}link[@rel='alternate']").get("href")
        out[link] = entry.findtext(f"{ATOM}content") or entry.findtext(f"{ATOM}summary") or ""
    return out


def page_requests(server: LoopbackServer) -> dict[str, int]:
    return {p: len(server.requests_to(p)) for p in PAGES}


def test_full_text_arrives_once_per_item(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    serve_site(loopback)
    cfg = config(tmp_path, db_url, feed_source(loopback.url))
    first = aggregator("poll", "-c", str(cfg))
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.split()[:3] == ["kjrb-rss", "ok", "new=3"]
    assert page_requests(loopback) == dict.fromkeys(PAGES, 1)
    got = contents(tmp_path / "public")
    for path, (sentence, boilerplate) in KEY.items():
        body = got[loopback.url + path]
        assert sentence in body, path
        assert boilerplate not in body, path
        assert not body.startswith("摘要")  # the article replaced the feed's summary
    assert "<h2>创新产业扶持推进科技金融赋能</h2>" in got[loopback.url + "/news/a/neijiang.html"]

    # the feed again, re-served with new bytes but the same items: no page is asked for
    loopback.add(
        "/feed.xml",
        rss(loopback.url, list(PAGES)) + b"\n",
        headers={"Content-Type": "application/rss+xml"},
    )
    second = aggregator("poll", "-c", str(cfg))
    assert second.returncode == 0, second.stderr
    assert page_requests(loopback) == dict.fromkeys(PAGES, 1)

    # one item changes its title: only its page is asked for, conditionally; 304 keeps the text
    changed = "/news/a/xinhua.html"
    loopback.add(
        "/feed.xml",
        rss(loopback.url, list(PAGES), titles={changed: "话剧《约定无期限》巡演结束（更新）"}),
        headers={"Content-Type": "application/rss+xml"},
    )
    third = aggregator("poll", "-c", str(cfg))
    assert third.returncode == 0, third.stderr
    assert "updated=1" in third.stdout
    assert page_requests(loopback) == {**dict.fromkeys(PAGES, 1), changed: 2}
    again = loopback.requests_to(changed)[-1]
    assert again.headers.get("if-none-match") or again.headers.get("if-modified-since")
    assert KEY[changed][0] in contents(tmp_path / "public")[loopback.url + changed]


def test_page_budget_leaves_the_rest_for_next_polls(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    serve_site(loopback)
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path}/agg.db",
        feed_source(loopback.url),
        "max_details_per_poll = 1",
    )
    seen = []
    for _ in range(4):
        out = aggregator("poll", "-c", str(cfg))
        assert out.returncode == 0, out.stderr
        seen.append(sum(page_requests(loopback).values()))
    assert seen == [1, 2, 3, 3]  # one page a poll, then none: every item has its text
    assert all(n == 1 for n in page_requests(loopback).values())
    got = contents(tmp_path / "public")
    assert all(KEY[p][0] in got[loopback.url + p] for p in PAGES)
    # the same fetch stage as feeds: one User-Agent for the feed and its pages
    agents = {r.headers.get("user-agent") for r in loopback.requests}
    assert len(agents) == 1 and agents != {None}


def test_a_failed_page_is_a_warning_and_is_asked_for_at_the_next_poll(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    serve_site(loopback, ["/news/a/xinhua.html"])
    loopback.add("/news/a/xinhua.html", b"busy", status=503)
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/agg.db", feed_source(loopback.url))
    first = aggregator("poll", "-c", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "kjrb-rss ok new=1" in first.stdout and "warnings=1" in first.stdout
    assert "article page" in first.stderr and "will ask again next poll" in first.stderr
    link = loopback.url + "/news/a/xinhua.html"
    assert contents(tmp_path / "public")[link] == "摘要：" + TITLES["/news/a/xinhua.html"]

    loopback.add(
        "/news/a/xinhua.html", PAGES["/news/a/xinhua.html"], headers={"Content-Type": "text/html"}
    )
    second = aggregator("poll", "-c", str(cfg))
    assert second.returncode == 0, second.stderr
    assert len(loopback.requests_to("/news/a/xinhua.html")) == 2
    assert KEY["/news/a/xinhua.html"][0] in contents(tmp_path / "public")[link]
    third = aggregator("poll", "-c", str(cfg))
    assert third.returncode == 0
    assert len(loopback.requests_to("/news/a/xinhua.html")) == 2


def test_refetch_reads_every_page_again_with_the_new_rule(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    serve_site(loopback, ["/news/a/neijiang.html"])
    cfg = config(tmp_path, db_url, feed_source(loopback.url))
    assert aggregator("poll", "-c", str(cfg)).returncode == 0
    link = loopback.url + "/news/a/neijiang.html"
    assert "内江高新区诞生在沱江之畔" in contents(tmp_path / "public")[link]

    # the rule changes: a poll alone does not read the page again, refetch does, once
    rule = "css:div.article p img, div.article ul"
    cfg = config(tmp_path, db_url, feed_source(loopback.url, rule))
    assert aggregator("poll", "-c", str(cfg)).returncode == 0
    assert len(loopback.requests_to("/news/a/neijiang.html")) == 1
    out = aggregator("refetch", "-c", str(cfg), "--source", "kjrb-rss")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "kjrb-rss refetched 1 of 1 pages, 1 entries changed, 0 failed"
    assert len(loopback.requests_to("/news/a/neijiang.html")) == 2
    request = loopback.requests_to("/news/a/neijiang.html")[-1]
    assert "if-none-match" not in request.headers  # unconditional: the page is read again
    body = contents(tmp_path / "public")[link]
    assert body.startswith(f'<img src="{loopback.url}/news/a/images/lehong.jpg"')
    assert "<li>为15家企业兑付产业扶持资金2.4亿元。</li>" in body
    assert "内江高新区诞生在沱江之畔" not in body


def test_refetch_exit_codes(tmp_path: Path, loopback: LoopbackServer) -> None:
    serve_site(loopback, ["/news/a/neijiang.html", "/news/a/django.html"])
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path}/agg.db",
        feed_source(loopback.url, "css:div.article") + html_source(loopback.url),
    )
    assert aggregator("poll", "-c", str(cfg)).returncode == 0
    failed = aggregator("refetch", "-c", str(cfg), "--source", "kjrb-rss")
    assert failed.returncode == 1  # the blog page has no div.article
    assert "1 failed" in failed.stdout and "selector 'div.article' matched nothing" in failed.stderr
    unknown = aggregator("refetch", "-c", str(cfg), "--source", "nope")
    assert unknown.returncode == 2 and "unknown source id: nope" in unknown.stderr
    plain = aggregator("refetch", "-c", str(cfg), "--source", "kjrb-web")
    assert plain.returncode == 2 and "has no fulltext rule" in plain.stderr


def test_html_list_page_in_gbk_with_fulltext(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    serve_site(loopback)
    cfg = config(tmp_path, db_url, html_source(loopback.url, "auto"))
    out = aggregator("poll", "-c", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split()[:3] == ["kjrb-web", "ok", "new=3"]
    root = etree.parse(str(tmp_path / "public" / "kejiribao.atom")).getroot()
    entries = {
        e.find(f"{ATOM}link[@rel='alternate']").get("href"): e for e in root.findall(f"{ATOM}entry")
    }
    assert set(entries) == {loopback.url + p for p in PAGES}
    first = entries[loopback.url + "/news/a/neijiang.html"]
    assert first.findtext(f"{ATOM}title") == TITLES["/news/a/neijiang.html"]
    assert first.findtext(f"{ATOM}published") == "2022-05-25T16:53:43+08:00"
    assert "NW202205252391675717" in first.findtext(f"{ATOM}id")
    assert KEY["/news/a/neijiang.html"][0] in first.findtext(f"{ATOM}content")
    assert page_requests(loopback) == dict.fromkeys(PAGES, 1)


def test_a_redesigned_list_page_fails_loudly_and_keeps_the_items(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    serve_site(loopback)
    cfg = config(tmp_path, db_url, html_source(loopback.url))
    assert aggregator("poll", "-c", str(cfg)).returncode == 0
    before = contents(tmp_path / "public")
    assert len(before) == 3

    loopback.add(
        "/news/list.html",
        (DATA / "list-v2.html").read_bytes(),
        headers={"Content-Type": "text/html"},
    )
    out = aggregator("poll", "-c", str(cfg))
    assert out.returncode == 1
    assert out.stdout.strip() == (
        "kjrb-web failed empty: [sources.html] items selector 'ul.list li' matched nothing"
    )
    assert contents(tmp_path / "public") == before
    table = aggregator("sources", "-c", str(cfg))
    assert "ul.list li" in table.stdout


def test_pages_obey_the_ssrf_guard(tmp_path: Path, loopback: LoopbackServer) -> None:
    """An item linking to a private address is not fetched: the page is a warning."""
    loopback.add(
        "/feed.xml",
        rss(loopback.url, []).replace(
            b"</channel>",
            b"<item><title>t</title><link>http://10.255.255.1/a.html</link>"
            b"<description>only a summary</description></item></channel>",
        ),
        headers={"Content-Type": "application/rss+xml"},
    )
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/agg.db", feed_source(loopback.url))
    out = aggregator("poll", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "kjrb-rss ok new=1" in out.stdout
    assert "http://10.255.255.1/a.html" in out.stderr and "failed" in out.stderr
    assert contents(tmp_path / "public")["http://10.255.255.1/a.html"] == "only a summary"


def test_list_page_dates_are_read_in_the_source_zone(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    serve_site(loopback)
    sources = html_source(loopback.url, timezone="Europe/Berlin")
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/agg.db", sources)
    assert aggregator("poll", "-c", str(cfg)).returncode == 0
    root = etree.parse(str(tmp_path / "public" / "kejiribao.atom")).getroot()
    published = {
        e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}published")
        for e in root.findall(f"{ATOM}entry")
    }
    # 16:53:43 in Berlin (summer time) is 22:53:43 in Shanghai, the zone feeds are written in
    assert published[TITLES["/news/a/neijiang.html"]] == "2022-05-25T22:53:43+08:00"


class _InFlight:
    """A page handler that counts how many of its requests overlap.

    Each request waits (up to a second) for a second one to arrive at the same
    time, so two that are allowed to overlap do, however slow the machine.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.lock = threading.Lock()
        self.overlapped = threading.Event()
        self.now = self.most = 0

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            if self.now > 1:
                self.overlapped.set()
        self.overlapped.wait(1.0)
        with self.lock:
            self.now -= 1
        return Response(200, self.body, {"Content-Type": "text/html"})


@pytest.mark.parametrize("per_host", [1, 2])
def test_pages_share_the_hosts_request_slots(
    tmp_path: Path, loopback: LoopbackServer, per_host: int
) -> None:
    """Two fulltext sources polled at once: their pages never exceed per_host_concurrency."""
    serve_site(loopback)
    counter = _InFlight(PAGES["/news/a/neijiang.html"])
    for path in PAGES:
        loopback.add(path, counter)
    sources = feed_source(loopback.url) + feed_source(loopback.url, source_id="kjrb-copy")
    limits = f"per_host_concurrency = {per_host}\nworkers = 4"
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/agg.db", sources, limits)
    out = aggregator("poll", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    assert sum(page_requests(loopback).values()) == 6  # each source reads each page once
    assert counter.most == per_host


def test_a_large_page_is_extracted_under_the_parse_budget(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """With no time at all, the 65 KB blog page overruns (a warning); the 3 KB one is inline."""
    serve_site(loopback, ["/news/a/neijiang.html", "/news/a/django.html"])
    cfg = config(
        tmp_path, f"sqlite:///{tmp_path}/agg.db", feed_source(loopback.url), 'parse_timeout = "0s"'
    )
    out = aggregator("poll", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "django.html" in out.stderr and "parse exceeded 0s" in out.stderr
    got = contents(tmp_path / "public")
    assert got[loopback.url + "/news/a/django.html"].startswith("摘要")  # kept the feed's text
    assert KEY["/news/a/neijiang.html"][0] in got[loopback.url + "/news/a/neijiang.html"]
