"""Names from the network never collide with each other or with the outputs (issue 13).

Publisher categories (``category_from = "author"``) are chosen in dedupe from
the store's categories; declared categories may not take the ids the outputs
use. Tables for the pure choice, the real CLI against a loopback API on SQLite
and PostgreSQL for the whole path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from aggregator.dedupe import publisher_category
from aggregator.model import CategoryNames
from tests.loopback import LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"
DECLARED = CategoryNames(
    {"科技日报新闻": "kejiribao", "News": "news"}, frozenset({"kejiribao", "news"})
)


@pytest.mark.parametrize(
    ("name", "ident"),
    [
        ("科技日报", "kejiribao"),  # declared for it: titled <name>新闻
        ("KeJiRiBao", "kejiribao-"),  # the same pinyin, another name
        ("News", "news-"),  # the admin's news is titled News, not News新闻
        ("ALL", "all-"),  # reserved for all.atom
        ("Status", "status-"),
        ("新华社", "xinhuashe"),
    ],
)
def test_publisher_ids_never_collide(name: str, ident: str) -> None:
    category = publisher_category(name, DECLARED)
    assert category is not None
    if ident.endswith("-"):
        assert category.id.startswith(ident) and len(category.id) == len(ident) + 8
        assert category.id not in DECLARED.ids
        assert publisher_category(name, DECLARED) == category  # the same on every run
    else:
        assert category.id == ident
    assert category.title == f"{name}新闻"


def test_a_publisher_keeps_the_id_it_was_given() -> None:
    """Once stored (title -> id), a name keeps its id whatever came before it."""
    known = CategoryNames({"KeJiRiBao新闻": "kejiribao"}, frozenset({"kejiribao"}))
    assert publisher_category("KeJiRiBao", known).id == "kejiribao"  # type: ignore[union-attr]
    other = publisher_category("科技日报", known)
    assert other is not None and other.id.startswith("kejiribao-")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args], capture_output=True, text=True, timeout=180
    )


def test_reserved_category_ids_are_config_errors(tmp_path: Path) -> None:
    for reserved in ("all", "index", "health", "status"):
        config = tmp_path / f"{reserved}.toml"
        config.write_text(
            f'[categories.{reserved}]\ntitle = "x"\n'
            f'[[sources]]\nid = "s"\nurl = "http://127.0.0.1/"\ncategories = ["{reserved}"]\n',
            encoding="utf-8",
        )
        checked = cli("check-config", "-c", str(config))
        assert checked.returncode == 2, checked.stdout + checked.stderr
        assert f"categories.{reserved}: category id is reserved" in checked.stdout + checked.stderr


def publishers(*names: str) -> bytes:
    """The API's list; each name's item keeps its infoCode whatever the order."""
    nodes = [
        {
            "code": f"NW2026030100000000{sum(map(ord, name)) % 100:02d}",
            "title": f"by {name}",
            "from": name,
            "time": f"2026-03-01 09:{i:02d}:00",
        }
        for i, name in enumerate(names)
    ]
    return json.dumps({"list": nodes}).encode()


def titles(path: Path) -> set[str]:
    root = etree.parse(str(path)).getroot()
    return {e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")}


def test_publishers_never_take_another_category(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    names = ("科技日报", "KeJiRiBao", "News", "ALL")
    url = loopback.add("/api", publishers(*names), headers={"Content-Type": "application/json"})
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
[categories.kejiribao]
title = "科技日报新闻"
[categories.news]
title = "News"
[[sources]]
id = "pub"
url = "{url}"
categories = []
category_from = "author"
type = "json"
[sources.json]
items = "list"
infocode = "code"
title = "title"
published = "time"
author = "from"
link = "http://example.org/a?infoCode={{infocode}}"
""",
        encoding="utf-8",
    )
    done = cli("poll", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    public = tmp_path / "public"
    assert titles(public / "all.atom") == {f"by {n}" for n in names}  # the site-wide feed
    assert titles(public / "kejiribao.atom") == {"by 科技日报"}
    assert not (public / "news.atom").exists() or titles(public / "news.atom") == set()
    feeds = {p.name: titles(p) for p in public.glob("*.atom")}
    owners = {next(iter(t)): name for name, t in feeds.items() if len(t) == 1}
    for name, prefix in (("KeJiRiBao", "kejiribao-"), ("News", "news-"), ("ALL", "all-")):
        assert owners[f"by {name}"].startswith(prefix), feeds

    # the next poll, another order: every name keeps its id
    loopback.add("/api", publishers(*reversed(names)), headers={"Content-Type": "application/json"})
    again = cli("poll", "-c", str(config))
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p.name: titles(p) for p in public.glob("*.atom")} == feeds
