"""The lxml fast path (``parse.fastfeed``) gives the records feedparser gives.

For every real fixture, every golden and a set of generated bench feeds, the
fast path's ``ParsedFeed`` must equal the feedparser path's whenever the fast
path answers; it must answer for the generated feeds and for these fixtures.
The fixtures that fall back to feedparser, and why:

* ``bad__truncated_*``, ``bad__incomplete_cdata__*``: not well-formed (lxml refuses);
* ``bad__empty_file__*``: empty (feedparser's path raises ``EmptyFeed``);
* two Atom 0.3 Blogger feeds and one Atom 1.0: XHTML content;
* ``dup__guid_duplicates``: ``media:description`` (feedparser reads it as a description);
* ``real__livemint``: an ``<image>`` inside items; ``rel__relative_links``: two contents.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aggregator.parse.feed import parse_document, parse_fast
from tests.test_parse_feed import EXPECTED, FIXTURES, TZ, URL

ROOT = Path(__file__).resolve().parents[1]

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
}


def both(body: bytes, url: str = URL) -> tuple[Any, Any]:
    args = (body, None, url, None, TZ, None, 1000)
    fast = parse_fast(*args)
    try:
        slow: Any = parse_document(*args)
    except Exception as exc:  # noqa: BLE001 - compared by type below
        slow = type(exc)
    return fast, slow


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_same_records(name: str) -> None:
    fast, slow = both((FIXTURES / name).read_bytes())
    if name in FALLBACK:
        assert fast is None, FALLBACK[name]
    else:
        assert fast is not None, "fast path fell back"
    if fast is not None:
        assert fast == slow


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
