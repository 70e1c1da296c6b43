"""The lxml fast path (``parse.fastfeed``) gives the records feedparser gives.

Each document is parsed twice: by ``parse_fast`` and by ``parse_feedparser``
(the feedparser path forced, as ``parse_document`` takes it where the fast
path is unsure). Whenever the fast path answers, its ``ParsedFeed`` must equal
feedparser's, field for field. The documents: every real fixture (shared
fixtures and ``tests/data/parse/feeds``), a set of generated bench feeds, and
variants of each made here: text in CDATA, comments inside text, an
``xml:base`` with relative links, namespace prefixes renamed (and Atom's
default namespace given a prefix). The fast path must also answer for most
of them, or the comparison would prove nothing.

The fixtures that fall back to feedparser, and why:

* ``bad__truncated_*``, ``bad__incomplete_cdata__*``: not well-formed (lxml refuses);
* ``bad__empty_file__*``: empty (feedparser's path raises ``EmptyFeed``);
* two Atom 0.3 Blogger feeds and one Atom 1.0: XHTML content;
* ``dup__guid_duplicates``: ``media:description`` (feedparser reads it as a description);
* ``real__livemint``: an ``<image>`` inside items; ``rel__relative_links``: two contents;
* the podcast: an undeclared ``content:`` prefix (not well-formed), and iTunes
  elements feedparser has handlers for.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from aggregator.parse.feed import parse_fast, parse_feedparser
from tests.test_parse_feed import FIXTURES, TZ, URL

ROOT = Path(__file__).resolve().parents[1]
OWN = ROOT / "tests" / "data" / "parse" / "feeds"

#: fixture -> why the fast path leaves it to feedparser
FALLBACK: dict[str, str] = {
    "bad__empty_file__newsboat.xml": "empty body",
    "bad__incomplete_cdata__feedparser.xml": "not well-formed",
    "bad__truncated_epoch_dcdate__feedjira.rss.xml": "not well-formed",
    "bad__truncated_root__feedparser.xml": "not well-formed",
    "cjk__big5__0804.blogspot.com.atom03.xml": "Atom 0.3 XHTML content (mode=xml)",
    "cjk__gb2312__eighthday.blogspot.com.atom03.xml": "Atom 0.3 XHTML content (mode=xml)",
    "dup__guid_duplicates__newsboat.rss.xml": "media:description (feedparser: a description)",
    "real__livemint_cdata_everywhere__rsparser.rss.xml": "<image> inside an item",
    "rel__relative_links_script__reader.rss.xml": "two content elements in one item",
    "rel__xml_base_inherit__gofeed.atom.xml": "XHTML content",
    "podcast__itunes_sample__feedjira.rss.xml": "undeclared content: prefix",
}


def documents() -> dict[str, Path]:
    found = {p.name: p for p in sorted(FIXTURES.iterdir()) if p.suffix not in (".json", ".md")}
    found.update((p.name, p) for p in sorted(OWN.iterdir()) if p.suffix != ".md")
    return found


DOCUMENTS = documents()


def both(body: bytes, url: str = URL) -> tuple[Any, Any]:
    fast = parse_fast(body, None, url, TZ, None, 1000)
    try:
        slow: Any = parse_feedparser(body, None, url, None, TZ, None, 1000)
    except Exception as exc:  # noqa: BLE001 - compared by type below
        slow = type(exc)
    return fast, slow


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_fixture_same_records(name: str) -> None:
    fast, slow = both(DOCUMENTS[name].read_bytes())
    if name in FALLBACK:
        assert fast is None, FALLBACK[name]
    else:
        assert fast is not None, "fast path fell back"
        assert fast == slow


def test_the_comparison_can_fail() -> None:
    """A record that differs in one field is told apart (the test is not vacuous)."""
    body = DOCUMENTS["zh__utf8__jekyll-feed_inforest.site.atom.xml"].read_bytes()
    fast, slow = both(body)
    assert fast == slow
    fast_other, _ = both(body.replace("林间</title>".encode(), "林</title>".encode(), 1))
    assert fast_other is not None and fast_other != slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("gen")
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "genfeeds.py"), "--feeds", "20", "--items", "20",
         "--out", str(out), "--port", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return sorted((out / "feeds").iterdir())


def test_generated_feeds_take_the_fast_path(generated: list[Path]) -> None:
    assert len(generated) == 20
    for path in generated:
        fast, slow = both(path.read_bytes(), f"http://127.0.0.1:1/{path.name}")
        assert fast is not None, path.name
        assert fast == slow, path.name


# ------------------------------------------------------------------- generated variants

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _tree(body: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(body.lstrip(), _PARSER)
    except etree.XMLSyntaxError:
        return None


def _leaves(root: etree._Element) -> list[etree._Element]:
    return [
        el
        for el in root.iter()
        if isinstance(el.tag, str) and not len(el) and el.text and el.text.strip()
    ]


def in_cdata(body: bytes) -> bytes | None:
    """Every leaf's text as a CDATA section."""
    root = _tree(body)
    if root is None:
        return None
    for el in _leaves(root):
        if "]]>" not in (el.text or ""):
            el.text = etree.CDATA(el.text or "")
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


def with_comments(body: bytes) -> bytes | None:
    """A comment in the middle of every leaf's text."""
    root = _tree(body)
    if root is None:
        return None
    for el in _leaves(root):
        text = el.text or ""
        half = len(text) // 2
        el.text = text[:half]
        comment = etree.Comment(" a comment ")
        comment.tail = text[half:]
        el.insert(0, comment)
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


_ABSOLUTE = re.compile(r"^https?://[^/]+/")


def relative_under_base(body: bytes) -> bytes | None:
    """``xml:base`` on the root (and on each item or entry), links made relative to it."""
    root = _tree(body)
    if root is None:
        return None
    root.set("{http://www.w3.org/XML/1998/namespace}base", "http://base.example/feeds/")
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        local = etree.QName(el).localname
        if local in ("item", "entry"):
            el.set("{http://www.w3.org/XML/1998/namespace}base", "sub/")
        if local in ("link", "guid", "id") and el.text and _ABSOLUTE.match(el.text.strip()):
            el.text = _ABSOLUTE.sub("", el.text.strip())
        if local == "link" and el.get("href") and _ABSOLUTE.match(el.get("href") or ""):
            el.set("href", _ABSOLUTE.sub("../", el.get("href") or ""))
        if local == "enclosure" and el.get("url"):
            el.set("url", _ABSOLUTE.sub("", el.get("url") or ""))
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


def renamed_prefixes(body: bytes) -> bytes | None:
    """Every declared prefix renamed (``dc:`` -> ``pdc:``); a default Atom namespace
    given the prefix ``atomx:``. Textual, on documents without CDATA."""
    root = _tree(body)
    if root is None or b"<![CDATA[" in body:
        return None
    text = etree.tostring(root, encoding="unicode")
    for prefix in {p for el in root.iter() if isinstance(el.tag, str) for p in el.nsmap if p}:
        text = re.sub(rf"(</?)({prefix}):", rf"\1p{prefix}:", text)
        text = re.sub(rf"(\s)({prefix}):([\w-]+=)", rf"\1p{prefix}:\3", text)
        text = text.replace(f"xmlns:{prefix}=", f"xmlns:p{prefix}=")
    if text.count('xmlns="') == 1 and 'xmlns="http://www.w3.org/2005/Atom"' in text:
        text = text.replace(
            'xmlns="http://www.w3.org/2005/Atom"', 'xmlns:atomx="http://www.w3.org/2005/Atom"'
        )
        text = re.sub(r"<(/?)([A-Za-z][\w.-]*)(?=[\s/>])", r"<\1atomx:\2", text)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text).encode()


VARIANTS: dict[str, Callable[[bytes], bytes | None]] = {
    "cdata": in_cdata,
    "comments": with_comments,
    "xml_base": relative_under_base,
    "prefixes": renamed_prefixes,
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_same_records(variant: str, generated: list[Path]) -> None:
    make = VARIANTS[variant]
    sources = [*DOCUMENTS.values(), *generated[:5]]
    compared = fast_answers = 0
    differ: list[str] = []
    for path in sources:
        body = make(path.read_bytes())
        if body is None:
            continue
        compared += 1
        fast, slow = both(body, "http://127.0.0.1:1/" + path.name)
        if fast is None:
            continue
        fast_answers += 1
        if fast != slow:
            differ.append(path.name)
    assert not differ, f"{variant}: fast path differs from feedparser on {differ}"
    # most well-formed documents take the fast path in every variant
    assert compared >= 15 and fast_answers >= compared // 2, (variant, compared, fast_answers)
    print(f"{variant}: {compared} documents, {fast_answers} read by the fast path, all equal")
