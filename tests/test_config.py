"""Config loading: the contract's keys, includes, and problems with file/line/key."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from aggregator.config import load_config, parse_duration, resolve_config_path
from aggregator.errors import ConfigError

CONTRACT_EXAMPLE = """
[aggregator]
database = "sqlite:///var/aggregator.db"
output_dir = "public"
base_url = "http://127.0.0.1:8080/"
timezone = "Asia/Shanghai"
entries_per_feed = 50
default_interval = "15m"
include = ["sources.d/*.toml"]

[server]
listen = "127.0.0.1:8080"

[categories.kejiribao]
title = "科技日报新闻"
description = "Science and Technology Daily"

[[sources]]
id = "kjrb-rss"
url = "https://example.org/kjrb.xml"
categories = ["kejiribao"]
interval = "10m"
type = "feed"
infocode_pattern = 'infoCode=([A-Z]{2}\\d+)'
priority = 0
enabled = true

[[sources]]
id = "em-publishers"
url = "https://example.org/api/list?type=45"
categories = []
category_from = "author"
type = "json"
[sources.json]
items = "nodeList"
infocode = "infocode"
title = "title"
published = "showtime"
link = "https://example.org/NewsShare.html?infoCode={infocode}"
content = "content"
summary = "digest"
author = "from"
[sources.json.detail]
url = "https://example.org/NewsData/GetNewsText.do?id={infocode}"
content = "text"

[posts]
dir = "site"
site_url = "//finews.example.org"
"""


def write(tmp_path: Path, text: str, name: str = "aggregator.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_contract_example_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT_EXAMPLE)
    write(
        tmp_path / "sources.d",
        '[[sources]]\nid = "extra"\nurl = "http://127.0.0.1/x"\ncategories = ["kejiribao"]\n',
        "more.toml",
    )
    config = load_config(path)
    assert config.aggregator.database == f"sqlite:///{tmp_path}/var/aggregator.db"
    assert config.aggregator.output_dir == tmp_path / "public"
    assert config.posts is not None and config.posts.dir == tmp_path / "site"
    assert [s.id for s in config.sources] == ["kjrb-rss", "em-publishers", "extra"]
    em = config.source("em-publishers")
    assert em is not None and em.json_ is not None and em.json_.detail is not None
    assert em.json_.detail.content == "text"
    assert em.category_from == "author"
    kjrb = config.source("kjrb-rss")
    assert kjrb is not None and config.interval(kjrb) == timedelta(minutes=10)
    assert config.interval(em) == timedelta(minutes=15)
    assert config.category("kejiribao").title == "科技日报新闻"  # type: ignore[union-attr]


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE))
    with pytest.raises(ValidationError):
        config.aggregator.entries_per_feed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1s", timedelta(seconds=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["15x", "m", "-1s", "1.5h", ""])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_every_problem_named_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[aggregator]
default_interval = "15x"
include = ["sources.d/*.toml"]
colour = "blue"

[categories.news]
title = "News"

[[sources]]
id = "a"
url = "ftp://example.org/feed"
categories = ["news", "missing"]

[[sources]]
id = "b"
url = "https://example.org/feed"
categories = ["news"]
bogus = 1

[[sources]]
id = "c"
url = "https://example.org/c"
categories = ["missing"]
""",
    )
    write(
        tmp_path / "sources.d",
        '[[sources]]\nid = "a"\nurl = "https://example.org/2"\n'
        'categories = ["news"]\ninterval = "0s"\n',
        "dup.toml",
    )
    found = problems_of(path)
    text = "\n".join(found)
    assert f"{path}:2: aggregator.default_interval" in text
    assert f"{path}:4: aggregator.colour: unknown key" in text
    assert f"{path}:11: sources[0].url" in text
    assert f"{path}:18: sources[1].bogus: unknown key" in text
    inc = tmp_path / "sources.d" / "dup.toml"
    assert f"{inc}:5: sources[0].interval: must be at least 1s" in text
    assert f"{path}:23: sources[2].categories: category 'missing' is not declared" in text


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[aggregator]\ninclude = ["more.toml"]\n[categories.n]\ntitle = "N"\n'
        '[[sources]]\nid = "x"\nurl = "http://127.0.0.1/a"\ncategories = ["n"]\n',
    )
    write(
        tmp_path,
        '[[sources]]\nid = "x"\nurl = "http://127.0.0.1/b"\ncategories = ["n"]\n',
        "more.toml",
    )
    text = "\n".join(problems_of(path))
    assert f"{tmp_path / 'more.toml'}:2: sources[0].id: duplicate source id 'x'" in text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('id = "Bad Id"\nurl = "http://127.0.0.1/"\ncategories = ["n"]', "sources[0].id"),
        (
            'id = "j"\nurl = "http://127.0.0.1/"\ncategories = ["n"]\ntype = "json"',
            "[sources.json]",
        ),
        ('id = "e"\nurl = "http://127.0.0.1/"\ncategories = []', "category_from"),
        (
            'id = "r"\nurl = "http://127.0.0.1/"\ncategories = ["n"]\ninfocode_pattern = "("',
            "regular expression",
        ),
        (
            'id = "t"\nurl = "http://127.0.0.1/"\ncategories = ["n"]\ntype = "atom"',
            "sources[0].type",
        ),
        ('id = "u"\nurl = "file:///etc/passwd"\ncategories = ["n"]', "only http and https"),
    ],
)
def test_source_problems(tmp_path: Path, body: str, needle: str) -> None:
    path = write(tmp_path, f'[categories.n]\ntitle = "N"\n[[sources]]\n{body}\n')
    assert needle in "\n".join(problems_of(path))


def test_toml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[aggregator]\noutput_dir = "x\n')
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:2:") and "TOML syntax" in problem


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("arg.toml", "env.toml", "config/aggregator.toml"):
        write(tmp_path, "", name)
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(tmp_path / "env.toml"))
    assert resolve_config_path(str(tmp_path / "arg.toml")) == tmp_path / "arg.toml"
    assert resolve_config_path(None) == tmp_path / "env.toml"
    monkeypatch.delenv("AGGREGATOR_CONFIG")
    monkeypatch.chdir(tmp_path)
    resolved = resolve_config_path(None)
    assert resolved in (Path("/etc/aggregator/aggregator.toml"), Path("config/aggregator.toml"))
    with pytest.raises(ConfigError, match=r"arg\.toml: config file not found \(given with -c\)"):
        resolve_config_path(str(tmp_path / "config" / "arg.toml"))


def test_check_config_cli(tmp_path: Path) -> None:
    good = write(tmp_path, CONTRACT_EXAMPLE)
    (tmp_path / "sources.d").mkdir()
    ok = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", "-c", str(good)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path, '[aggregator]\nentries_per_feed = "many"\n', "bad.toml")
    out = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", "-c", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert f"{bad}:2: aggregator.entries_per_feed" in out.stdout


def test_shipped_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    config = load_config(root / "config" / "aggregator.toml")
    assert config.sources
