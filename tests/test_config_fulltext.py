"""Config keys of issue 18: ``fulltext``, ``type = "html"`` and ``[sources.html]``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.errors import ConfigError

HEAD = """
[aggregator]
database = "sqlite:///x.db"

[categories.news]
title = "News"
"""

GOOD = """
[[sources]]
id = "web"
url = "http://127.0.0.1:9/news/"
type = "html"
categories = ["news"]
fulltext = "css:div.article"
[sources.html]
items = "ul.list li"
title = "a"
link = "a@href"
published = "span.time"
summary = "p.digest"
infocode = "a@data-id"

[[sources]]
id = "rss"
url = "http://127.0.0.1:9/feed.xml"
categories = ["news"]
fulltext = "auto"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(HEAD + text, encoding="utf-8")
    return path


def test_good_keys_load(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    web, rss = config.sources
    assert web.type == "html" and web.html is not None and web.html.link == "a@href"
    assert web.fulltext == "css:div.article" and rss.fulltext == "auto"


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "says"),
    [
        ('items = "ul.list li"', 'items = "ul..list"', 15, "sources[0].html.items", "bad CSS"),
        ('link = "a@href"', 'link = "a@"', 17, "sources[0].html.link", "nothing after '@'"),
        ('"css:div.article"', '"css:div["', 13, "sources[0].fulltext", "bad CSS"),
        ('fulltext = "auto"', 'fulltext = "full"', 26, "sources[1].fulltext", '"auto" or'),
        ('type = "html"', 'type = "feed"', 8, "sources[0]", 'only for type = "html"'),
    ],
)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, key: str, says: str
) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert (problem.line, problem.key) == (line, key)
    assert says in problem.message


def test_html_type_without_its_table_is_an_error(tmp_path: Path) -> None:
    text = GOOD.split("[sources.html]")[0] + GOOD.split('infocode = "a@data-id"')[1]
    out = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", "-c", str(write(tmp_path, text))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert 'sources[0]: type = "html" needs a [sources.html] table' in out.stdout + out.stderr


def test_fulltext_and_a_json_detail_request_exclude_each_other(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[sources]]
id = "api"
url = "http://127.0.0.1:9/api"
type = "json"
categories = ["news"]
fulltext = "auto"
[sources.json]
items = "list"
[sources.json.detail]
url = "http://127.0.0.1:9/d?id={infocode}"
content = "text"
""",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.key == "sources[0]" and "keep one of them" in problem.message
