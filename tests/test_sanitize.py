"""sanitize: hostile HTML in, allowlisted HTML out; XML-illegal characters gone."""

from __future__ import annotations

import pytest
from lxml import etree, html

from aggregator.sanitize import clean_html, strip_illegal_xml, text_of

HOSTILE = [
    ("<script>alert(1)</script>ok", "ok"),
    ("<p>a<script type='text/javascript'>alert(1)</script>b</p>", "<p>ab</p>"),
    ("<style>body{display:none}</style><p>x</p>", "<p>x</p>"),
    ('<iframe src="https://evil.example/">inner</iframe>ok', "ok"),
    ("<object data=x><embed src=y></object>ok", "ok"),
    ("<svg onload=alert(1)><script>alert(1)</script></svg>x", "x"),
    ("<math><mi xlink:href='javascript:alert(1)'>x</mi></math>y", "y"),
    ('<img src="x" onerror="alert(1)">', '<img src="x">'),
    ('<img src="mailto:a@b.example">', "<img>"),
    ('<img src="data:image/png;base64,AAAA">', "<img>"),
    ('<img src="javascript:alert(1)">', "<img>"),
    (
        '<img src="https://cdn.example/a.png" alt="a">',
        '<img src="https://cdn.example/a.png" alt="a">',
    ),
    ('<a href="javascript:alert(1)">j</a>', '<a rel="noopener noreferrer">j</a>'),
    ('<a href="JaVaScRiPt:alert(1)">j</a>', '<a rel="noopener noreferrer">j</a>'),
    ('<a href="java\tscript:alert(1)">j</a>', '<a rel="noopener noreferrer">j</a>'),
    ('<a href="vbscript:x">v</a>', '<a rel="noopener noreferrer">v</a>'),
    (
        '<a href="data:text/html,<script>alert(1)</script>">d</a>',
        '<a rel="noopener noreferrer">d</a>',
    ),
    (
        '<a href="https://example.org/" target="_blank" rel="opener">x</a>',
        '<a href="https://example.org/" rel="noopener noreferrer">x</a>',
    ),
    ('<p style="background:url(javascript:x)" class="c" id="i">p</p>', "<p>p</p>"),
    ('<div onmouseover="alert(1)">d</div>', "<div>d</div>"),
    ("<form action=x><input name=a><button>b</button></form>t", "t"),
    ("<!-- <script>alert(1)</script> -->c", "c"),
    ("<meta http-equiv=refresh content='0;url=javascript:x'>m", "m"),
    ("<base href='https://evil.example/'>b", "b"),
    ("<p>unclosed <b>bold", "<p>unclosed <b>bold</b></p>"),
]


@pytest.mark.parametrize(("dirty", "clean"), HOSTILE)
def test_hostile_html_is_cleaned(dirty: str, clean: str) -> None:
    assert clean_html(dirty) == clean


def test_allowlist_keeps_structure() -> None:
    body = (
        "<h2>T</h2><blockquote cite='https://e.org/'>q</blockquote><pre><code>x &lt; y</code></pre>"
        "<ul><li>a</li></ul><ol start='3'><li>b</li></ol>"
        "<table><thead><tr><th colspan='2'>h</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr>"
        "</tbody></table><figure><img src='//cdn.example/x.jpg' alt='x'><figcaption>f</figcaption>"
        "</figure><p><strong>s</strong> <em>e</em> <a href='/rel'>r</a></p>"
    )
    out = clean_html(body)
    for tag in ("h2", "blockquote", "pre", "code", "ul", "ol", "li", "table", "th", "td"):
        assert f"<{tag}" in out
    assert "<figure><img" in out and "<figcaption>f</figcaption>" in out
    assert 'href="/rel" rel="noopener noreferrer"' in out


def test_relative_urls_resolved_against_the_item_link() -> None:
    base = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW1"
    dirty = '<a href="/x?a=1&amp;b=2">r</a><img src="img/a.png"><img src="//cdn.example/b.png">'
    assert clean_html(dirty, base_url=base) == (
        '<a href="http://finews.zning.xyz/x?a=1&amp;b=2" rel="noopener noreferrer">r</a>'
        '<img src="http://finews.zning.xyz/html_News/img/a.png">'
        '<img src="http://cdn.example/b.png">'
    )
    # no base, or one that is not http(s) or does not parse: relative URLs stay as they are
    for bad in (None, "javascript:alert(1)", "http://[bad", "ftp://x/"):
        assert clean_html('<a href="/x">x</a>', base_url=bad) == (
            '<a href="/x" rel="noopener noreferrer">x</a>'
        )
    # a base never lets a dangerous scheme through
    assert clean_html('<a href="javascript:alert(1)">j</a>', base_url=base) == (
        '<a rel="noopener noreferrer">j</a>'
    )


def test_no_handler_or_script_survives_a_parse() -> None:
    dirty = "".join(d for d, _ in HOSTILE)
    root = html.fragment_fromstring(clean_html(dirty), create_parent="div")
    for el in root.iter():
        assert el.tag not in {"script", "style", "iframe", "object", "embed", "svg", "math", "form"}
        for name, value in el.attrib.items():
            assert not name.startswith("on")
            assert name not in {"style", "class", "id", "target"}
            assert "javascript:" not in value.lower().replace("\t", "")
        if el.tag == "a":
            assert el.get("rel") == "noopener noreferrer"


def test_none_and_empty() -> None:
    assert clean_html(None) is None
    assert clean_html("") == ""
    assert text_of(None) == ""
    assert text_of("") == ""


ILLEGAL = "\x00\x01\x08\x0b\x0c\x0e\x1f\ufffe\uffff\ud800\udfff"


def test_strip_illegal_xml() -> None:
    assert strip_illegal_xml(f"a{ILLEGAL}b") == "ab"
    keep = "tab\tnl\ncr\r 中文 \ue000 \ufffd \U0001f389 \x7f \x85"
    assert strip_illegal_xml(keep) == keep


def test_cleaned_html_is_xml_safe() -> None:
    out = clean_html(f"<p>a{ILLEGAL}b</p>")
    assert out == "<p>ab</p>"
    el = etree.Element("content")
    el.text = out  # lxml raises on any XML-illegal character
    assert etree.tostring(el)


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("<p>Hello&nbsp;&amp; <b>world</b></p>", "Hello & world"),
        ("<p>one</p><p>two</p>", "one two"),
        ("line<br>break", "line break"),
        ("  lots \n\n of \t space  ", "lots of space"),
        ("<script>alert(1)</script><style>x{}</style>visible", "visible"),
        ("&lt;not a tag&gt; &#x4e2d;&#25991;", "<not a tag> 中文"),
        ("<p>科技日报</p>\r\n <p>内江</p>", "科技日报 内江"),
        (f"a{ILLEGAL}b", "ab"),
        ("<!-- comment -->c", "c"),
        ("plain", "plain"),
    ],
)
def test_text_of(fragment: str, text: str) -> None:
    assert text_of(fragment) == text


BASES = [
    "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW1",
    "https://a.example",
    "https://a.example:8443/d/e/?q=1&r=2",
    "http://127.0.0.1:8000/a/f0001.html",
    "http://A.example:80/d/../e;p#f",  # not plain: nh3 joins it
]
REFERENCES = [
    "/x?a=1&amp;b=2", "img/a.png", "//cdn.example/b.png", "//cdn.example", "//CDN.example:80/x",
    "../../a", "./x", "..", "/a/../b", "a//b", "?q", "?", "#f", "#", "", " /x ", "a b", "中文.png",
    "%2e%2e/x", "%41", "1a:b", "x;y", "a\\b", "&quot;x", "&lt;x&gt;", "x&#1;y", "//[bad/x",
]  # fmt: skip


@pytest.mark.parametrize("base", BASES)
def test_relative_urls_joined_as_nh3_joins_them(base: str) -> None:
    """Every relative link the shared cleaner leaves is found, and nh3's own
    rewrite_with_base joins it: the same output as that cleaner alone."""
    from aggregator.sanitize import _clean_with_base

    for ref in REFERENCES:
        dirty = f'<p><a href="{ref}" title="t">a</a><img alt="i" src="{ref}"></p>'
        assert clean_html(dirty, base_url=base) == _clean_with_base(dirty, base), (ref, base)
