"""Article extraction (aggregator.extract) on real pages: what stays, what goes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from aggregator.extract import FulltextRule, extract_article, parse_rule
from aggregator.sanitize import clean_html, text_of

DATA = Path(__file__).parent / "data" / "fulltext"
URL = "https://www.kjrb.example.org/news/a/neijiang.html"


def page(name: str) -> bytes:
    raw = (DATA / name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


def test_auto_keeps_the_chinese_article_and_drops_the_page_around_it() -> None:
    html = extract_article(page("kjrb-neijiang.gbk.html"), {}, URL, parse_rule("auto"))
    assert html is not None
    text = text_of(clean_html(html, base_url=URL))
    assert "内江高新区如何对园区企业进行培育规划" in text  # GBK decoded by its <meta>
    assert "为15家企业兑付产业扶持资金2.4亿元" in text  # the list
    assert "奋力冲击全国百强" in text
    for boilerplate in ("限时优惠", "网友评论", "内江加油", "相关阅读", "京ICP备", "分享到"):
        assert boilerplate not in text, boilerplate
    assert "<h2>创新产业扶持推进科技金融赋能</h2>" in html
    assert "<li>" in html


def test_auto_on_a_real_blog_page_keeps_headings_code_images_and_absolute_links() -> None:
    url = "https://www.caktusgroup.com/blog/2015/06/08/testing-client-side-applications/"
    html = extract_article(page("caktusgroup.com.django.html.gz"), {}, url, parse_rule("auto"))
    assert html is not None
    clean = clean_html(html, base_url=url)
    text = text_of(clean)
    assert "Was I losing my mind?" in text
    assert "from django.conf import settings" in text
    for boilerplate in ("New Call-to-action", "You might also like:", "Get tips, see case studies"):
        assert boilerplate not in text
    assert "<h4>Finding a Fix</h4>" in clean
    assert '<img src="https://' in clean
    assert 'href="http' in clean and 'href="/' not in clean


def test_css_rule_takes_the_matching_element_with_links_made_absolute() -> None:
    html = extract_article(
        page("kjrb-neijiang.gbk.html"),
        {"content-type": "text/html"},
        URL,
        parse_rule("css:div.article"),
    )
    assert html is not None and html.startswith('<div class="article">')
    assert "内江高新区诞生在沱江之畔" in html
    assert 'src="https://www.kjrb.example.org/news/a/images/lehong.jpg"' in html
    assert 'href="https://www.kjrb.example.org/tag/baima.html"' in html
    assert "网友评论" not in html and "限时优惠" not in html


def test_css_rule_joins_every_match_and_gives_none_when_nothing_matches() -> None:
    body = b"<html><body><p class=x>one</p><div><p class=x>two</p></div></body></html>"
    html = extract_article(body, {}, URL, parse_rule("css:p.x"))
    assert html == '<p class="x">one</p>\n<p class="x">two</p>'
    assert extract_article(body, {}, URL, parse_rule("css:div.article")) is None
    assert extract_article(b"", {}, URL, parse_rule("css:p")) is None
    assert extract_article(b"   ", {}, URL, parse_rule("auto")) is None


def test_an_xml_declared_xhtml_page_is_read() -> None:
    body = (
        b'<?xml version="1.0" encoding="gbk"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        b'<body><div id="c">' + "正文内容".encode("gbk") + b"</div></body></html>"
    )
    assert extract_article(body, {}, URL, parse_rule("css:#c")) == '<div id="c">正文内容</div>'


@pytest.mark.parametrize(
    ("text", "rule"),
    [("auto", FulltextRule("auto")), ("css: div.a > p ", FulltextRule("css", "div.a > p"))],
)
def test_rules_parse(text: str, rule: FulltextRule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize("text", ["Auto", "css:", "css:div..a", "css:p[", "xpath://p", ""])
def test_bad_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rule(text)


def test_a_short_gbk_page_is_read_by_its_meta_charset() -> None:
    """Two characters are too few to guess from (bare, they read as Big5): the meta decides."""
    body = b'<meta charset="gbk"><p id="c">' + "标题".encode("gbk") + b"</p>"
    assert extract_article(body, {}, URL, parse_rule("css:#c")) == '<p id="c">标题</p>'
