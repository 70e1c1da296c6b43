"""``import-opml`` / ``export-opml``: reading outlines, planning ids and categories, round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from aggregator.config import load_config
from aggregator.opml_io import (
    OpmlError,
    OpmlFeed,
    plan_import,
    read_opml,
    render_sources_opml,
)
from aggregator.slug import slug as make_slug

OPML_1 = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0"><head><title>reader export</title></head><body>
<outline text="Tech News" title="Tech News">
  <outline type="rss" text="Hacker News" title="Hacker News" xmlUrl="https://hnrss.org/frontpage"/>
  <outline type="rss" text="LWN" xmlUrl="https://lwn.net/headlines/rss"/>
</outline>
<outline text="&#x79D1;&#x6280;">
  <outline type="rss" text="&#x79D1;&#x6280;&#x65E5;&#x62A5;" xmlUrl="http://example.org/kjrb.xml"/>
  <outline type="rss" text="Hacker News again" xmlUrl="https://hnrss.org/frontpage"/>
</outline>
<outline type="rss" text="kjrb" xmlurl="https://example.org/other.xml"/>
<outline type="rss" text="gopher" xmlUrl="gopher://example.org/feed"/>
<outline text="a link, not a feed" type="link" url="https://example.org/"/>
</body></opml>
"""

MAIN = """[aggregator]
database = "sqlite:///db.sqlite"
include = ["sources.d/*.toml"]
{extra}
[categories.kejiribao]
title = "科技日报新闻"

[[sources]]
id = "kjrb"
url = "https://example.org/kjrb-main.xml"
categories = ["kejiribao"]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(MAIN.format(extra=""), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Hacker News", "hacker-news"),
        ("科技日报", "kejiribao"),
        ("BBC 中文网", "bbc-zhongwenwang"),
        ("Café Crème!", "cafe-creme"),
        ("证券时报·e公司", "zhengquanshibao-egongsi"),  # publishers' ids: the same rule
        ("21世纪经济报道", "21shijijingjibaodao"),
        ("Reuters 路透社", "reuters-lutoushe"),
        ("  --  ", ""),
        ("x" * 80, "x" * 60),
    ],
)
def test_slug(title: str, slug: str) -> None:
    assert make_slug(title, 60) == slug


def test_read_opml_finds_feed_outlines_and_their_folders() -> None:
    feeds = read_opml(OPML_1)
    assert [(f.url, f.title, f.folder) for f in feeds] == [
        ("https://hnrss.org/frontpage", "Hacker News", "Tech News"),
        ("https://lwn.net/headlines/rss", "LWN", "Tech News"),
        ("http://example.org/kjrb.xml", "科技日报", "科技"),
        ("https://hnrss.org/frontpage", "Hacker News again", "科技"),
        ("https://example.org/other.xml", "kjrb", None),
        ("gopher://example.org/feed", "gopher", None),
    ]


@pytest.mark.parametrize(
    "data",
    [b"not xml", b"<rss version='2.0'><channel/></rss>", b"<opml version='2.0'><head/></opml>"],
)
def test_read_opml_refuses_what_is_not_opml(data: bytes) -> None:
    with pytest.raises(OpmlError):
        read_opml(data)


def test_read_opml_refuses_external_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("SECRET")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<opml version="2.0"><body><outline text="&x;" xmlUrl="http://e.org/f"/></body></opml>'
    ).encode()
    with pytest.raises(OpmlError, match="external entity"):
        read_opml(data)


def test_plan_ids_categories_and_skips(config: Path) -> None:
    plan = plan_import(read_opml(OPML_1), load_config(config), None)
    assert [(s.id, s.url, s.categories) for s in plan.sources] == [
        ("hacker-news", "https://hnrss.org/frontpage", ("tech-news", "keji")),
        ("lwn", "https://lwn.net/headlines/rss", ("tech-news",)),
        ("kejiribao", "http://example.org/kjrb.xml", ("keji",)),
        ("kjrb-2", "https://example.org/other.xml", ("imported",)),  # "kjrb" is taken
    ]
    assert plan.categories == (
        ("tech-news", "Tech News"),
        ("keji", "科技"),
        ("imported", "Imported"),
    )
    assert [url for url, _ in plan.skipped] == ["gopher://example.org/feed"]
    assert "only http and https" in plan.skipped[0][1]


def test_plan_with_a_given_category_and_known_urls(config: Path) -> None:
    feeds = [
        OpmlFeed("https://example.org/kjrb-main.xml", "dup", "Folder", None),
        OpmlFeed("https://example.org/new.xml", None, "Folder", None),
    ]
    plan = plan_import(feeds, load_config(config), "kejiribao")
    assert plan.skipped == (("https://example.org/kjrb-main.xml", "already configured as kjrb"),)
    assert [(s.id, s.categories) for s in plan.sources] == [("example-org-new-xml", ("kejiribao",))]
    assert plan.categories == ()  # declared already


def test_import_cli_writes_an_included_file(config: Path) -> None:
    opml = config.parent / "feeds.opml"
    opml.write_bytes(OPML_1)
    out = cli("import-opml", str(opml), "-c", str(config))
    assert out.returncode == 0, out.stderr
    assert "added hacker-news https://hnrss.org/frontpage categories=tech-news,keji" in out.stdout
    assert "skipped gopher://example.org/feed: only http" in out.stdout
    assert "4 sources added to" in out.stdout
    written = config.parent / "sources.d" / "imported.toml"
    loaded = load_config(config)
    assert {s.id for s in loaded.sources} == {"kjrb", "hacker-news", "lwn", "kejiribao", "kjrb-2"}
    assert loaded.categories["keji"].title == "科技"
    assert cli("check-config", "-c", str(config)).returncode == 0

    # the same file again: nothing new; another: appended to the same included file
    again = cli("import-opml", str(opml), "-c", str(config))
    assert again.returncode == 0 and "nothing to add" in again.stdout
    before = written.read_text(encoding="utf-8")
    more = config.parent / "more.opml"
    more.write_bytes(
        b'<opml version="2.0"><body><outline text="Tech News">'
        b'<outline text="LWN weekly" xmlUrl="https://lwn.net/weekly.rss"/>'
        b"</outline></body></opml>"
    )
    out = cli("import-opml", str(more), "-c", str(config), "--category", "news")
    assert out.returncode == 0, out.stderr
    assert written.read_text(encoding="utf-8").startswith(before)
    loaded = load_config(config)
    assert loaded.source("lwn-weekly") is not None
    assert loaded.source("lwn-weekly").categories == ("news",)  # type: ignore[union-attr]
    assert loaded.categories["news"].title == "news"


def test_import_refuses_a_file_the_config_does_not_include(config: Path) -> None:
    opml = config.parent / "feeds.opml"
    opml.write_bytes(OPML_1)
    notes = config.parent / "sources.d" / "notes.txt"
    notes.parent.mkdir()
    notes.write_bytes(b"keep me\n")
    out = cli("import-opml", str(opml), "-c", str(config), "--output", "sources.d/notes.txt")
    assert out.returncode == 2
    assert "not one of the included files" in out.stderr
    assert notes.read_bytes() == b"keep me\n"  # put back as it was
    out = cli("import-opml", str(opml), "-c", str(config), "--output", "elsewhere.toml")
    assert out.returncode == 2 and not (config.parent / "elsewhere.toml").exists()


def test_import_usage_errors(config: Path) -> None:
    opml = config.parent / "feeds.opml"
    opml.write_bytes(b"<html/>")
    out = cli("import-opml", str(opml), "-c", str(config))
    assert out.returncode == 2 and "not OPML" in out.stderr
    opml.write_bytes(OPML_1)
    out = cli("import-opml", str(opml), "-c", str(config), "--category", "Not Valid")
    assert out.returncode == 2 and "--category" in out.stderr


def test_round_trip(tmp_path: Path) -> None:
    first = tmp_path / "a" / "aggregator.toml"
    first.parent.mkdir()
    first.write_text(
        MAIN.format(extra="")
        + """
[categories.tech]
title = "Technology & <more>"

[[sources]]
id = "hn"
url = "https://hnrss.org/frontpage?points=100&count=30"
categories = ["kejiribao", "tech"]

[[sources]]
id = "lwn"
url = "https://lwn.net/headlines/rss"
categories = ["tech"]

[[sources]]
id = "em-api"
url = "https://example.org/api?type=45"
categories = []
category_from = "author"
type = "json"
[sources.json]
items = "nodeList"
""",
        encoding="utf-8",
    )
    exported = cli("export-opml", "-c", str(first))
    assert exported.returncode == 0, exported.stderr
    root = etree.fromstring(exported.stdout.encode())
    assert root.get("version") == "2.0"
    folders = root.findall("body/outline[@category]")
    assert [(f.get("category"), f.get("text")) for f in folders] == [
        ("/kejiribao", "科技日报新闻"),
        ("/tech", "Technology & <more>"),
    ]
    assert [o.get("xmlUrl") for o in folders[1]] == [
        "https://hnrss.org/frontpage?points=100&count=30",
        "https://lwn.net/headlines/rss",
    ]
    (link,) = root.findall("body/outline[@type='link']")
    assert link.get("url") == "https://example.org/api?type=45"

    second = tmp_path / "b" / "aggregator.toml"
    second.parent.mkdir()
    second.write_text('[aggregator]\ninclude = ["sources.d/*.toml"]\n', encoding="utf-8")
    opml = tmp_path / "exported.opml"
    opml.write_text(exported.stdout, encoding="utf-8")
    imported = cli("import-opml", str(opml), "-c", str(second))
    assert imported.returncode == 0, imported.stderr
    config = load_config(second)
    assert [(s.id, s.url, s.categories) for s in config.sources] == [
        ("kjrb", "https://example.org/kjrb-main.xml", ("kejiribao",)),
        ("hn", "https://hnrss.org/frontpage?points=100&count=30", ("kejiribao", "tech")),
        ("lwn", "https://lwn.net/headlines/rss", ("tech",)),
    ]
    assert config.categories["tech"].title == "Technology & <more>"
    # exported again: the same document, less the JSON API (an OPML file cannot carry it)
    again = render_sources_opml(config).decode()
    assert again == "".join(
        line for line in exported.stdout.splitlines(keepends=True) if 'type="link"' not in line
    )


NASTY_TITLES = [
    "DEL\x7fin the middle",
    'say "hi"',
    "back\\slash \\u0041 \\n",
    "two\nlines",
    "tab\there",
    "'''triple''' and \"\"\"triple\"\"\"",
    "# not a comment ] [[sources]]",
    "[/x] markup",
    "line\u2028separator \u00a0nbsp",
    "科技日报 RSS",
]


def _xml_attr(text: str) -> str:
    return "".join(c if c.isalnum() or c in " -_" else f"&#x{ord(c):X};" for c in text)


def test_nasty_titles_round_trip_through_toml_and_opml(config: Path) -> None:
    """Issue 13: a title with U+007F wrote TOML that did not load; now a TOML library writes it."""
    outlines = "".join(
        f'<outline text="{_xml_attr(t)}" xmlUrl="http://127.0.0.1/{n}.xml"/>'
        for n, t in enumerate(NASTY_TITLES)
    )
    opml = config.parent / "nasty.opml"
    opml.write_text(
        f'<opml version="2.0"><body><outline text="{_xml_attr(NASTY_TITLES[0])}">'
        f"{outlines}</outline></body></opml>",
        encoding="utf-8",
    )
    out = cli("import-opml", str(opml), "-c", str(config))
    assert out.returncode == 0, out.stderr
    loaded = load_config(config)
    imported = [s for s in loaded.sources if s.id != "kjrb"]
    assert [s.title for s in imported] == NASTY_TITLES
    assert [c.title for c in loaded.categories.values()][-1] == NASTY_TITLES[0]
    assert cli("check-config", "-c", str(config)).returncode == 0

    # a second import appends to the same file, which still loads
    opml.write_text(
        '<opml version="2.0"><body>'
        f'<outline text="{_xml_attr(NASTY_TITLES[1])}" xmlUrl="http://127.0.0.1/more.xml"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    assert cli("import-opml", str(opml), "-c", str(config)).returncode == 0
    assert load_config(config).sources[-1].title == NASTY_TITLES[1]

    # export-opml names each outline by its title
    exported = cli("export-opml", "-c", str(config))
    assert exported.returncode == 0, exported.stderr
    root = etree.fromstring(exported.stdout.encode())
    by_url = {o.get("xmlUrl"): o for o in root.iter("outline") if o.get("xmlUrl")}
    for n, title in enumerate(NASTY_TITLES):
        assert by_url[f"http://127.0.0.1/{n}.xml"].get("text") == title
        assert by_url[f"http://127.0.0.1/{n}.xml"].get("title") == title
    assert by_url["https://example.org/kjrb-main.xml"].get("text") == "kjrb"  # no title: the id
