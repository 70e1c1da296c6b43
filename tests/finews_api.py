"""A loopback imitation of the Eastmoney APIs the original finews site read, and CLI helpers.

Paths as the original scripts (and ``config/sources.d/eastmoney.toml``) ask them:

    /web/webapi?type=102                    rolling news   {"records": [...]}
    /web/webapi?type=45                     by publisher   var ajaxResult={"nodeList": [...]};
    /information/newmarket/web/webapi?marketType=37|38|39  callback({"record": [...]})
    /NewsData/GetNewsText.do?id=<infoCode>  one article    {"text": "<p>..."}; 404 if unknown

Item shapes are the finews README's (``../shared/fixtures/finews/README.md``).
An ``EastmoneyAPI`` is read at each request: change its lists between polls.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.loopback import LoopbackServer, Request, Response

FINEWS = Path(__file__).parent / "data" / "write" / "finews"
SEED_POST = FINEWS / "2022-05-25-NW202205252391675717.md"
SEED_PAGE = FINEWS / "category-kejiribao.html"
CODE = "NW202205252391675717"
TITLE = "科技金融+组团发展 内江高新区力造百亿级产业集群"
SEED_TIME = "2022-05-25 16:53:43"
SEED_DIGEST = "内江高新区绘制的入围全国高新区排名百强的蓝图。"
SHARE_PAGE = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode="
SHARE = SHARE_PAGE + CODE
PRESETS = Path(__file__).resolve().parents[1] / "config" / "sources.d" / "eastmoney.toml"
BODY_API = "/NewsData/GetNewsText.do"

JSON = {"Content-Type": "application/json; charset=utf-8"}
SCRIPT = {"Content-Type": "text/javascript; charset=utf-8"}


def seed_body() -> str:
    """The seed post's article HTML, CRLF line ends and all, as the body API gave it."""
    text = SEED_POST.read_bytes().decode("utf-8")
    body = text.split("---\n", 2)[2]
    return body.rsplit("\n\n<http", 1)[0]


def node(title: str | None, publisher: str, infocode: str, showtime: str) -> dict[str, Any]:
    """One item of the by-publisher list (type 45); ``infocode`` bare or with ``NW``."""
    item: dict[str, Any] = {"from": publisher, "infocode": infocode, "showtime": showtime}
    if title is not None:
        item["title"] = title
    return item


def rolling_record(title: str, infocode: str, showtime: str, digest: str) -> dict[str, Any]:
    """One item of the rolling list (type 102)."""
    bare = infocode.removeprefix("NW")
    return {
        "title": title,
        "digest": f"【{title}】{digest}",
        "id": bare,
        "infoCode": infocode,
        "url_w": f"http://finance.eastmoney.com/news/11060,{bare}.html",
        "showtime": showtime,
    }


def market_record(title: str, medianame: str, infocode: str, when: str) -> dict[str, Any]:
    """One item of a market news list (37, 38, 39)."""
    return {"title": title, "medianame": medianame, "infoCode": infocode, "datetime": when}


def dumps(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False)


@dataclass
class EastmoneyAPI:
    """What the imitation answers now; every list is read again at each request."""

    by_publisher: list[dict[str, Any]] = field(default_factory=list)
    rolling: list[dict[str, Any]] = field(default_factory=list)
    market: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bodies: dict[str, str] = field(default_factory=dict)  #: infoCode -> article HTML

    def install(self, loopback: LoopbackServer) -> None:
        loopback.add("/web/webapi", self._webapi)
        loopback.add("/information/newmarket/web/webapi", self._market)
        loopback.add(BODY_API, self._body)

    def _webapi(self, request: Request) -> Response:
        kind = request.query.get("type")
        if kind == "45":  # JSONP, as the APIs answer when asked so
            text = "var ajaxResult=" + dumps({"nodeList": self.by_publisher}) + ";"
            return Response(200, text.encode(), SCRIPT)
        if kind == "102":
            return Response(200, dumps({"records": self.rolling}).encode(), JSON)
        return Response(404, b"{}", JSON)

    def _market(self, request: Request) -> Response:
        records = self.market.get(request.query.get("marketType", ""))
        if records is None:
            return Response(404, b"{}", JSON)
        text = "callback(" + dumps({"record": records}) + ")"
        return Response(200, text.encode(), SCRIPT)

    def _body(self, request: Request) -> Response:
        code = request.query.get("id", "")
        if code not in self.bodies:
            return Response(404, b"{}", JSON)
        return Response(200, dumps({"text": self.bodies[code], "code": code}).encode(), JSON)


def pipeline_api(title: str = TITLE) -> EastmoneyAPI:
    """The seed under 科技日报 (bare code), one 中国基金报 item; the seed again as rolling news."""
    other = "NW202205252391675718"
    return EastmoneyAPI(
        by_publisher=[
            node(title, "科技日报", CODE[2:], SEED_TIME),
            node("另一条新闻", "中国基金报", other, "2022-05-25 15:00:00"),
        ],
        rolling=[rolling_record(TITLE, CODE, SEED_TIME, SEED_DIGEST)],
        bodies={CODE: seed_body(), other: "<p>另一条新闻的正文</p>"},
    )


def rss_feed() -> bytes:
    """The seed in an RSS feed of the publisher, linking to the share page."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>科技日报</title><link>http://127.0.0.1/</link>
<description>kjrb</description><lastBuildDate>Wed, 25 May 2022 09:00:00 GMT</lastBuildDate>
<item><title>{TITLE}</title><link>{SHARE.replace("&", "&amp;")}</link>
<guid isPermaLink="false">kjrb-1</guid><pubDate>Wed, 25 May 2022 16:53:43 +0800</pubDate>
<description>短摘要</description></item>
</channel></rss>""".encode()


def serve_finews(loopback: LoopbackServer, title: str = TITLE) -> EastmoneyAPI:
    """The pipeline test's world: ``pipeline_api`` plus the RSS feed at ``/kjrb.xml``."""
    api = pipeline_api(title)
    api.install(loopback)
    loopback.add("/kjrb.xml", rss_feed(), headers={"Content-Type": "application/rss+xml"})
    return api


_UPSTREAM = re.compile(
    r"http://(?:183\.136\.162\.242|43\.240\.125\.15:1818|choicewzp1\.eastmoney\.com)(?=/)"
)


def presets_on(base: str) -> str:
    """``eastmoney.toml`` with its API hosts pointed at ``base``; every source enabled."""
    text = _UPSTREAM.sub(base, PRESETS.read_text(encoding="utf-8"))
    assert "183.136" not in text and "43.240" not in text and "choicewzp1" not in text
    return text.replace("enabled = false", "enabled = true")


def aggregator(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess, as admins run it."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args], capture_output=True, text=True, timeout=120
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (relative name -> bytes, mtime in ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
