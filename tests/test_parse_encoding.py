"""Encodings: every cjk/enc/zh fixture comes out as the real text, and the rules one by one."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.model import Fetched, ParsedFeed
from aggregator.parse import parse_feed
from aggregator.parse.encoding import (
    charset_from_content_type,
    codecs_for_label,
    declared_xml_encoding,
    decode_body,
)

FIXTURES = Path(
    os.environ.get(
        "AGGREGATOR_FEED_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds",
    )
)
TZ = ZoneInfo("Asia/Shanghai")


def parse(body: bytes, content_type: str | None = None) -> ParsedFeed:
    headers = {"content-type": content_type} if content_type else {}
    fetched = Fetched("http://example.org/feed.xml", 200, body, headers, datetime.now(UTC), 0.1)
    return parse_feed(fetched, tz=TZ)


#: fixture -> (codec, feed title, {item index: item title}, a string of the decoded body)
CASES = {
    "cjk__big5__0804.blogspot.com.atom03.xml": (
        "cp950",
        "0",
        {0: "《11月的蕭邦》", 1: "話不投機半句多"},
        "蕭邦",
    ),
    "cjk__big5__digitalwall.com.rss.xml": (
        "cp950",
        "《個人．家庭．數位化 - 數位之牆》",
        {0: "再談軟體與媒體的典範轉移"},
        "1996年六月，筆者發表文章「軟體與媒體的典範轉移」",
    ),
    "cjk__gb2312__2.blog.westca.com.rdf.xml": (
        "gb18030",
        "Edwin的森林小屋",
        {0: "有什么歌能够比它更让你更陶醉呢？"},
        "希望与痛苦是如此联系",
    ),
    "cjk__gb2312__bbs.blogsome.com.rss092.xml": (
        "gb18030",
        "Let's talk.Let's think.",
        {0: "活该麦当劳", 1: "“阵风”战斗机(组图)"},
        "活该，要是我连你的服务器都弄短路",
    ),
    "cjk__gb2312__chen56.blogcn.com.rdf.xml": (
        "gb18030",
        "chen56的开发者日志",
        {0: "搬家", 1: "pico和webwork集成"},
        "屁股洗干净，换个blog，重新做人",
    ),
    "cjk__gb2312__cnblog.org.rss092.xml": (
        "gb18030",
        "CNBlog:Blog On Blog",
        {1: "出版商oreilly推出了开放图书项目,在这个项目中部分图书"},
        "开放图书项目",
    ),
    "cjk__gb2312__eighthday.blogspot.com.atom03.xml": (
        "gb18030",
        "Live for the moment...",
        {0: "又颠了", 1: "梦醒时分"},
        "我想我最好还是别再发艺术史PhD的春秋大梦了",
    ),
    "cjk__gb2312__softsea.net.rss.xml": (
        "gb18030",
        "系统工具",
        {0: "Trojan Remover 6.4.5 Date 12.28"},
        "系统工具",
    ),
    "cjk__gb2312__w3cn.org.rss.xml": (
        "gb18030",
        "网页设计师 - 文章教程",
        {0: "如何以及何时使用sIFR", 1: "HTML4标签的默认样式列表"},
        "<author>阿宏</author>",
    ),
    "enc__windows-1251__miniflux.rss.xml": (
        "cp1251",
        "iBash.Org.Ru",
        {0: "Цитата #17703", 1: "Цитата #17705"},
        "есть у кого жаба программер",
    ),
    "enc__latin1_undeclared__miniflux.rss.xml": (
        "cp1252",
        "Flux RSS du magazine de psychologie Le Cercle Psy",
        {2: "La criminalité liée surtout à... l'ennui ?"},
        "L'oisiveté est mère de tous les vices",
    ),
    "enc__utf8_declared_latin1__miniflux.atom.xml": ("utf-8", "테스트 피드", {0: "Café"}, "Café"),
    "enc__invalid_encoding_name__miniflux.atom.xml": ("utf-8", "테스트 피드", {0: "Café"}, "Café"),
    "enc__iso-8859-7_date__feedparser.xml": (
        "iso8859-7",
        None,
        {},
        "Τρι, 29 Ιούν 2004 12:53:00 GMT",
    ),
    "enc__double_encoded_html__feedparser.xml": ("utf-8", None, {}, "&#226;&#128;&#166;"),
    "enc__utf8_rtl_urdu__miniflux.rss.xml": (
        "utf-8",
        "BBC News اردو - پاکستان کے لیے امریکی امداد کی بہار و خزاں",
        {1: "امریکہ کے ساتھ خفیہ معلومات کا تبادلہ اور فوجی تعاون معطل کر دیا: وزیر دفاع"},
        "اردو",
    ),
    "zh__utf8__bbc-chinese-2013.atom": (
        "utf-8",
        "bbcchinese.com | 主页",
        {0: "白宫提名艾伦为北约最高司令官", 1: "国际货币基金组织称全球经济恢复放缓"},
        "xml:lang",
    ),
    "zh__utf8__jekyll-feed_inforest.site.atom.xml": (
        "utf-8",
        "林间",
        {0: "译 - 使用iStyle格式化Verilog代码", 1: "记一篇日语短文"},
        "今年（2019）7月的JLPT也快要开始了",
    ),
}


def test_every_cjk_enc_zh_fixture_has_a_case() -> None:
    names = {p.name for p in FIXTURES.iterdir() if p.name.startswith(("cjk__", "enc__", "zh__"))}
    assert names == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_decodes_to_real_text(name: str) -> None:
    codec, title, item_titles, snippet = CASES[name]
    body = (FIXTURES / name).read_bytes()
    decoded = decode_body(body)
    assert decoded.encoding == codec
    assert snippet in decoded.text
    assert "\ufffd" not in decoded.text
    feed = parse(body)
    assert feed.title == title
    for index, item_title in item_titles.items():
        assert feed.items[index].title == item_title


def test_cjk_authors_and_bodies() -> None:
    feed = parse((FIXTURES / "cjk__gb2312__w3cn.org.rss.xml").read_bytes())
    assert [i.author for i in feed.items[:2]] == ["阿宏", "阿捷"]
    feed = parse((FIXTURES / "enc__windows-1251__miniflux.rss.xml").read_bytes())
    assert feed.items[0].content is not None
    assert "xxx: есть у кого жаба программер" in feed.items[0].content


def test_declaration_lie_is_reported() -> None:
    body = (FIXTURES / "enc__utf8_declared_latin1__miniflux.atom.xml").read_bytes()
    assert any("declared iso-8859-1 but the bytes are UTF-8" in w for w in parse(body).warnings)
    body = (FIXTURES / "enc__invalid_encoding_name__miniflux.atom.xml").read_bytes()
    assert any("unknown label 'invalid'" in w for w in parse(body).warnings)


def test_double_encoded_html_is_given_as_the_document_says() -> None:
    (item,) = parse((FIXTURES / "enc__double_encoded_html__feedparser.xml").read_bytes()).items
    assert item.content == "\u2026"  # feedparser's own expectation for this file


RSS_ZH = (
    '<?xml version="1.0" encoding="{enc}"?><rss version="2.0"><channel><title>{title}</title>'
    "<item><title>{title}</title></item></channel></rss>"
)


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("gb2312", "gb18030", "科技日报新闻"),
        ("GB2312", "gb18030", "科技日报新闻"),
        ("gbk", "gb18030", "科技日报新闻"),
        ("gb_2312-80", "gb18030", "科技日报新闻"),
        ("x-gbk", "gb18030", "科技日报新闻"),
        ("gb2312", "gb18030", "𠀀 is only in GB18030"),
        ("big5", "big5hkscs", "香港𨋢"),  # an HKSCS character cp950 lacks
        ("big5", "cp950", "數位之牆"),
        ("shift_jis", "cp932", "日本語のフィード"),
        ("euc-kr", "cp949", "테스트 피드"),
        ("koi8-r", "koi8-r", "Привет"),
        ("windows-1251", "cp1251", "Цитата"),
        ("iso-8859-1", "cp1252", "Café “quoted”"),  # Latin-1 labels read as windows-1252
    ],
)
def test_declared_labels(label: str, codec: str, text: str) -> None:
    body = RSS_ZH.format(enc=label, title=text).encode(codec)
    decoded = decode_body(body)
    assert decoded.encoding == codec
    assert parse(body).title == text


def test_http_charset_beats_the_declaration() -> None:
    body = RSS_ZH.format(enc="utf-8", title="科技日报").encode("gb18030")
    decoded = decode_body(body, 'text/xml; charset="GB2312"')
    assert decoded.encoding == "gb18030" and "科技日报" in decoded.text
    assert parse(body, "application/rss+xml; charset=gbk").title == "科技日报"


def test_weak_http_charset_yields_to_a_multibyte_declaration() -> None:
    # Servers default to ISO-8859-1; a GB2312 declaration that decodes cleanly wins.
    body = RSS_ZH.format(enc="gb2312", title="科技日报").encode("gb18030")
    assert parse(body, "text/xml; charset=ISO-8859-1").title == "科技日报"


def test_http_utf8_with_latin1_bytes_is_sniffed() -> None:
    body = RSS_ZH.format(enc="utf-8", title="Le Cercle Psy : l'oisiveté est mère").encode("cp1252")
    assert parse(body, "text/xml; charset=utf-8").title == "Le Cercle Psy : l'oisiveté est mère"


def test_undeclared_utf8_and_bom() -> None:
    body = b"<rss version='2.0'><channel><title>" + "林间".encode() + b"</title></channel></rss>"
    assert parse(body).title == "林间"
    assert parse(b"\xef\xbb\xbf" + body).title == "林间"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_32_without_bom(codec: str) -> None:
    text = (
        '<?xml version="1.0"?><rss version="2.0"><channel>'
        "<title>科技日报 Café</title></channel></rss>"
    )
    body = text.encode(codec)
    assert decode_body(body).encoding == codec
    assert parse(body).title == "科技日报 Café"


def test_a_utf16_label_on_8bit_bytes_is_stale() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><rss version="2.0"><channel><title>林间</title>'
    decoded = decode_body((body + "</channel></rss>").encode("utf-8"))
    assert decoded.encoding == "utf-8"
    assert any("declared utf-16" in w for w in decoded.warnings)
    assert parse((body + "</channel></rss>").encode("utf-8")).title == "林间"


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_utf16_and_32_with_bom_and_a_declaration(codec: str) -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?><feed xmlns="http://www.w3.org/2005/Atom"><title>林间</title></feed>'
    assert parse(text.encode(codec)).title == "林间"


def test_a_few_bad_bytes_are_replaced_not_fatal() -> None:
    body = (
        RSS_ZH.format(enc="big5", title="數位之牆")
        .encode("cp950")
        .replace(b"</rss>", b"\xff\xff</rss>")
    )
    decoded = decode_body(body)
    assert decoded.encoding == "cp950"
    assert any("replaced" in w for w in decoded.warnings)
    assert parse(body).title == "數位之牆"


def test_helpers() -> None:
    assert charset_from_content_type("text/xml; charset=GB2312") == "gb2312"
    assert charset_from_content_type("text/xml;charset='utf-8'") == "utf-8"
    assert charset_from_content_type("text/xml") is None
    assert charset_from_content_type(None) is None
    assert declared_xml_encoding(b"\n\n  <?xml version='1.0' encoding='Big5' ?><rss/>") == "big5"
    assert declared_xml_encoding(b"<rss/>") is None
    assert codecs_for_label("invalid") == ()
    assert codecs_for_label("GBK") == ("gb18030",)
    assert codecs_for_label("big5") == ("cp950", "big5hkscs")
