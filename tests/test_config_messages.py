"""Config problems as an admin reads them: TOML words, near misses, every problem at once.

The CLI-facing cases run ``aggregator check-config`` as a real subprocess and
assert the exact line it prints, exit status 2, and that no traceback shows.
"""

from __future__ import annotations

import copy
import datetime
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from aggregator.config import load_config
from aggregator.config.schema import (
    AggregatorSettings,
    Limits,
    PostsSettings,
    ServerSettings,
    SourceConfig,
)
from aggregator.errors import ConfigError

GOOD = """[categories.news]
title = "News"

[[sources]]
id = "s"
url = "http://127.0.0.1/feed"
categories = ["news"]
"""


def check_config(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def problems_in(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[aggregator]\nentries_per_feed = "many"',
            "2: aggregator.entries_per_feed: must be a whole number",
        ),
        ("[aggregator]\ntitle = 5", "2: aggregator.title: must be a string"),
        ("[aggregator]\noutput_dir = 5", "2: aggregator.output_dir: must be a string (a path)"),
        (
            '[aggregator]\ninclude = "x.toml"',
            "2: aggregator.include: must be a list of file names or globs",
        ),
        (
            "[aggregator]\nentries_per_feed = 0",
            "2: aggregator.entries_per_feed: must be at least 1",
        ),
        ('[limits]\njitter = "lots"', "2: limits.jitter: must be a number"),
        ("[limits]\nworkers = 1000", "2: limits.workers: must be at most 256"),
        (
            '[aggregator]\ndefault_interval = "15x"',
            '2: aggregator.default_interval: must be a duration like "15m" '
            '(a whole number, then s, m, h or d), not "15x"',
        ),
        (
            '[server]\ncache_max_age = "99999999d"',
            "2: server.cache_max_age: must be at most 36500d",
        ),
        (
            GOOD + 'enabled = "maybe"',
            "8: sources[0].enabled: must be true or false",
        ),
        (
            GOOD.replace('["news"]', '"news"'),
            "7: sources[0].categories: must be a list of category ids",
        ),
        (GOOD.replace('["news"]', '["news", 3]'), "7: sources[0].categories[1]: must be a string"),
        (GOOD + 'type = "atom"', '8: sources[0].type: must be "feed", "json" or "html"'),
        (GOOD + "priority = 1.5", "8: sources[0].priority: must be a whole number"),
        (
            GOOD.replace('id = "s"', 'id = "Big S"'),
            "5: sources[0].id: may hold only lowercase letters, digits, - and _",
        ),
        (GOOD.replace('id = "s"\n', ""), "4: sources[0].id: is required"),
        (GOOD + 'json = "items"', "8: sources[0].json: must be a table"),
        (GOOD + 'title = ""', "8: sources[0].title: must not be empty"),
        ('[categories.news]\ntitle = ""', "2: categories.news.title: must not be empty"),
        ('[categories]\nnews = "News"', "2: categories.news: must be a table"),
    ],
)
def test_messages_in_toml_terms(tmp_path: Path, text: str, problem: str) -> None:
    assert problems_in(tmp_path, text) == [problem]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[aggregator]\ndatabse = "sqlite:///x.db"',
            "2: aggregator.databse: unknown key; did you mean `database`?",
        ),
        ('[server]\nlisen = "127.0.0.1:1"', "2: server.lisen: unknown key; did you mean `listen`?"),
        ("[limits]\nworker = 3", "2: limits.worker: unknown key; did you mean `workers`?"),
        ('[posts]\ndri = "site"', "2: posts.dri: unknown key; did you mean `dir`?"),
        (
            '[categories.news]\ntitel = "News"\ntitle = "N"',
            "2: categories.news.titel: unknown key; did you mean `title`?",
        ),
        (
            GOOD + 'intervall = "5m"',
            "8: sources[0].intervall: unknown key; did you mean `interval`?",
        ),
        (
            GOOD + 'type = "json"\n[sources.json]\nitems = "a"\ntitel = "t"',
            "11: sources[0].json.titel: unknown key; did you mean `title`?",
        ),
        (
            GOOD + 'type = "json"\n[sources.json]\nitems = "a"\n[sources.json.detail]\n'
            'url = "http://127.0.0.1/{infocode}"\ncontnet = "text"',
            "13: sources[0].json.detail.contnet: unknown key; did you mean `content`?",
        ),
        ('[agregator]\ntitle = "x"', "1: agregator: unknown key; did you mean `aggregator`?"),
        (
            '[[rules]]\nmatch = "x"\naction = "drop"\nfeild = "title"',
            "4: rules[0].feild: unknown key; did you mean `field`?",
        ),
        (
            "[posts]\nzzz = 1",
            "2: posts.zzz: unknown key; known here: archive_after, dir, site_url",
        ),
    ],
)
def test_did_you_mean_at_every_level(tmp_path: Path, text: str, problem: str) -> None:
    assert problem in problems_in(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[source]\nid = "s"',
            "1: source: `[source]` is not a section; sources are an array of tables: "
            "write `[[sources]]`",
        ),
        (
            '[[source]]\nid = "s"',
            "1: source: `[[source]]` is not a section; sources are an array of tables: "
            "write `[[sources]]`",
        ),
        (
            '[sources]\nid = "s"',
            "1: sources: `[sources]` is a single table here; sources are an array of tables: "
            "write `[[sources]]`",
        ),
        (
            'sources = "all"',
            "1: sources: must be an array of tables: write `[[sources]]` for each one",
        ),
        (
            '[category.news]\ntitle = "News"',
            "1: category: `[category.news]` is not a section; each category is a table: "
            "write `[categories.news]`",
        ),
        (
            '[[categories]]\ntitle = "News"',
            "1: categories: `[[categories]]` is not a section; each category is a table: "
            "write `[categories.<id>]`",
        ),
    ],
)
def test_misnamed_tables_explained(tmp_path: Path, text: str, problem: str) -> None:
    assert problems_in(tmp_path, text) == [problem]


def test_every_problem_in_one_run(tmp_path: Path) -> None:
    """A source with a bad key still has its duplicate id and undeclared category named."""
    found = problems_in(
        tmp_path,
        GOOD
        + """
[[sources]]
id = "s"
url = "ftp://127.0.0.1/other"
categories = ["news", "sport", "nwes"]
interval = "often"
""",
    )
    assert found == [
        "10: sources[1].id: duplicate source id 's' (first in "
        f"{tmp_path / 'aggregator.toml'} at sources[0])",
        "11: sources[1].url: only http and https URLs are allowed, not 'ftp://127.0.0.1/other'",
        "12: sources[1].categories: category 'sport' is not declared "
        "(add a [categories.sport] table)",
        "12: sources[1].categories: category 'nwes' is not declared; did you mean `news`? "
        "(else add a [categories.nwes] table)",
        '13: sources[1].interval: must be a duration like "15m" '
        '(a whole number, then s, m, h or d), not "often"',
    ]


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "aggregator.toml"
    path.write_bytes('[categories.news]\ntitle = "新闻"\n'.encode("gb18030"))
    out = check_config("-c", str(path))
    assert (out.returncode, out.stdout) == (
        2,
        f"{path}:2: not UTF-8 text (byte 0xd0); save the file as UTF-8\n",
    )


def test_a_reserved_category_id_is_a_problem_where_it_is_used(tmp_path: Path) -> None:
    found = problems_in(tmp_path, GOOD.replace('["news"]', '["news", "all"]'))
    assert found == [
        "7: sources[0].categories: category 'all' is reserved for the outputs "
        "(all, health, index, status)"
    ]


def test_a_category_declared_with_a_problem_still_counts_as_declared(tmp_path: Path) -> None:
    found = problems_in(tmp_path, GOOD.replace('title = "News"', "title = 3"))
    assert found == ["2: categories.news.title: must be a string"]


def test_check_config_lists_every_path_tried_when_none_is_found(tmp_path: Path) -> None:
    out = check_config(cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == (
        "no config file found; tried: -c (not given), $AGGREGATOR_CONFIG (not set), "
        "/etc/aggregator/aggregator.toml (no such file), "
        f"{tmp_path / 'config' / 'aggregator.toml'} (no such file)\n"
    )
    assert "Traceback" not in out.stderr


def test_check_config_names_a_missing_file_and_where_it_came_from(tmp_path: Path) -> None:
    out = check_config("-c", str(tmp_path / "typo.toml"))
    assert (out.returncode, out.stdout) == (
        2,
        f"{tmp_path / 'typo.toml'}: config file not found (given with -c)\n",
    )
    env_run = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config"],
        capture_output=True,
        text=True,
        env={**os.environ, "AGGREGATOR_CONFIG": str(tmp_path / "env.toml")},
        timeout=120,
    )
    assert env_run.returncode == 2
    assert (
        env_run.stdout
        == f"{tmp_path / 'env.toml'}: config file not found (from $AGGREGATOR_CONFIG)\n"
    )
    assert "Traceback" not in out.stderr + env_run.stderr


def test_check_config_bounds_a_long_category_id(tmp_path: Path) -> None:
    """Issue 13: a 150-character category id was a pydantic traceback and exit 1."""
    cid = "c" * 150
    path = tmp_path / "aggregator.toml"
    path.write_text(GOOD + f'\n[categories.{cid}]\ntitle = "Long"\n', encoding="utf-8")
    out = check_config("-c", str(path))
    assert out.returncode == 2
    assert out.stdout == (
        f"{path}:9: categories.{cid}: category id is 150 characters long; at most 100\n"
    )
    assert "Traceback" not in out.stderr


def test_a_file_matched_by_two_globs_is_read_once(tmp_path: Path) -> None:
    """Issue 13: it was reported as a duplicate of itself."""
    path = tmp_path / "aggregator.toml"
    path.write_text(
        '[aggregator]\ninclude = ["sources.d/*.toml", "sources.d/a.toml", "./sources.d/a.*"]\n'
        + GOOD.replace('"s"', '"main"'),
        encoding="utf-8",
    )
    (tmp_path / "sources.d").mkdir()
    (tmp_path / "sources.d" / "a.toml").write_text(
        GOOD.split("[[sources]]")[1].join(["[[sources]]", ""])
    )
    (tmp_path / "sources.d" / "a.toml").write_text("[[sources]]" + GOOD.split("[[sources]]")[1])
    config = load_config(path)
    assert [s.id for s in config.sources] == ["main", "s"]
    out = check_config("-c", str(path))
    assert out.returncode == 0, out.stdout


HOSTILE: list[Any] = [
    "",
    "x" * 5000,
    "\x00",
    "../../etc/passwd",
    "a\nb",
    -1,
    10**30,
    1.5,
    float("nan"),
    True,
    [],
    [1],
    {},
    {"a": 1},
    datetime.datetime(2020, 1, 1),
    "9" * 5000 + "s",
]


def test_no_value_of_any_key_raises_anything_but_config_error(tmp_path: Path) -> None:
    """Every known key, given every kind of TOML value: a ConfigError or a Config, nothing else."""
    base: dict[str, Any] = {
        "categories": {"n": {"title": "N"}},
        "sources": [{"id": "s", "url": "http://127.0.0.1/", "categories": ["n"]}],
    }
    docs = []
    for name, model in (
        ("aggregator", AggregatorSettings),
        ("server", ServerSettings),
        ("limits", Limits),
        ("posts", PostsSettings),
    ):
        for key in model.model_fields:
            for value in HOSTILE:
                doc = copy.deepcopy(base)
                doc[name] = {key: value}
                docs.append(doc)
    for key, field in SourceConfig.model_fields.items():
        for value in HOSTILE:
            doc = copy.deepcopy(base)
            doc["sources"][0][field.alias or key] = value
            docs.append(doc)
    for top in ("sources", "categories", "source", "category", "aggregator", "posts"):
        for value in HOSTILE:
            doc = copy.deepcopy(base)
            doc[top] = value
            docs.append(doc)
    path = tmp_path / "aggregator.toml"
    escaped = []
    for doc in docs:
        path.write_text(tomli_w.dumps(doc), encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as exc:
            assert exc.problems
        except Exception as exc:  # the point of the test
            escaped.append((doc, exc))
    assert escaped == []


def test_check_config_print_shows_the_effective_config_as_toml(tmp_path: Path) -> None:
    """Defaults filled in, includes merged in; the printed TOML loads back to the same config."""
    path = tmp_path / "aggregator.toml"
    path.write_text(
        '[aggregator]\ninclude = ["sources.d/*.toml"]\ndefault_interval = "10m"\n'
        + GOOD
        + 'title = "科技 \\"RSS\\" \\u007f"\n',
        encoding="utf-8",
    )
    (tmp_path / "sources.d").mkdir()
    (tmp_path / "sources.d" / "json.toml").write_text(
        '[[sources]]\nid = "api"\nurl = "http://127.0.0.1/api"\ncategories = []\n'
        'category_from = "author"\ntype = "json"\ninterval = "90s"\n'
        '[sources.json]\nitems = "list"\n[sources.json.detail]\n'
        'url = "http://127.0.0.1/d/{infocode}"\ncontent = "text"\n',
        encoding="utf-8",
    )
    out = check_config("-c", str(path), "--print")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == f"{path}: ok (2 sources, 1 categories)\n"
    printed = tomllib.loads(out.stdout)
    assert printed["aggregator"]["output_dir"] == str(tmp_path / "public")
    assert printed["aggregator"]["default_interval"] == "10m"
    assert "include" not in printed["aggregator"]
    assert printed["server"]["listen"] == "127.0.0.1:8080"
    assert printed["limits"]["workers"] == 8 and printed["limits"]["fetch_deadline"] == "1m"
    assert [(s["id"], s["interval"], s["enabled"]) for s in printed["sources"]] == [
        ("s", "10m", True),
        ("api", "90s", True),
    ]
    assert printed["sources"][0]["title"] == '科技 "RSS" \x7f'
    assert printed["sources"][1]["json"]["detail"]["content"] == "text"
    assert "[[sources]]\n" in out.stdout and "\n[sources.json.detail]\n" in out.stdout

    again = tmp_path / "printed" / "aggregator.toml"
    again.parent.mkdir()
    again.write_text(out.stdout, encoding="utf-8")
    skip = {"path": True, "rule_origins": True, "aggregator": {"include"}}
    first, second = load_config(path), load_config(again)
    assert second.model_dump(exclude=skip) == first.model_dump(exclude=skip) | {
        "sources": tuple(s.model_dump() | {"interval": first.interval(s)} for s in first.sources)
    }
