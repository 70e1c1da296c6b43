"""``[[rules]]`` in the config: read from the main file and includes, refused with file:line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.errors import ConfigError

MAIN = """
[aggregator]
include = ["rules.d/*.toml"]

[categories.news]
title = "News"

[categories.tech]
title = "Tech"

[[sources]]
id = "em-a"
url = "http://127.0.0.1:9/a.xml"
categories = ["news"]

[[rules]]
sources = ["em-*"]
field = "title"
match = '广告|推广'
action = "drop"
"""


def write(tmp_path: Path, main: str, **includes: str) -> Path:
    (tmp_path / "rules.d").mkdir(exist_ok=True)
    for name, text in includes.items():
        (tmp_path / "rules.d" / f"{name}.toml").write_text(text, encoding="utf-8")
    path = tmp_path / "aggregator.toml"
    path.write_text(main, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_rules_from_main_then_includes_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MAIN,
        b='[[rules]]\nmatch = "x"\naction = "file"\nto = ["tech"]\n',
        a='[[rules]]\nmatch = "^【广告】"\naction = "retitle"\nreplace = ""\n',
    )
    config = load_config(path)
    assert [r.action for r in config.rules] == ["drop", "retitle", "file"]
    assert config.rules[0].sources == ("em-*",)
    assert config.rule_origins[0] == f"{path}:16"
    assert config.rule_origins[1] == f"{tmp_path / 'rules.d' / 'a.toml'}:1"


BAD = [
    ('match = "(unclosed"\naction = "drop"', 1, "rules[1].match", "not a valid regular expression"),
    ('field = "titel"\nmatch = "x"\naction = "drop"', 1, "rules[1].field", '"title"'),
    ('match = "x"\naction = "explode"', 2, "rules[1].action", '"drop"'),
    ('match = "x"\naction = "file"', 0, "rules[1]", "needs `to`"),
    ('match = "x"\naction = "unfile"', 0, "rules[1]", "needs `to`"),
    ('match = "x"\naction = "retitle"', 0, "rules[1]", "needs `replace`"),
    (
        'match = "(x)"\naction = "retitle"\nreplace = "\\\\2"',
        0,
        "rules[1]",
        "invalid group reference",
    ),
    ('match = "x"\naction = "drop"\nto = ["tech"]', 0, "rules[1]", "`to` is only for"),
    ('match = "x"\naction = "drop"\ncolour = "red"', 3, "rules[1].colour", "unknown key"),
    ('match = "x"\naction = "file"\nto = ["nope"]', 3, "rules[1].to", "'nope' is not declared"),
    (
        'categories = ["nope"]\nmatch = "x"\naction = "drop"',
        1,
        "rules[1].categories",
        "not declared",
    ),
]


@pytest.mark.parametrize(("body", "offset", "key", "message"), BAD)
def test_bad_rule_is_a_problem_with_file_line_and_key(
    tmp_path: Path, body: str, offset: int, key: str, message: str
) -> None:
    path = write(tmp_path, MAIN + "\n[[rules]]\n" + body + "\n")
    header = (MAIN + "\n[[rules]]\n").count("\n")  # the [[rules]] line
    found = problems(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{header + offset}: {key}: "), found
    assert message in found[0]


def test_bad_regex_in_an_include_names_that_file(tmp_path: Path) -> None:
    path = write(tmp_path, MAIN, x='\n\n[[rules]]\nmatch = "a[b"\naction = "drop"\n')
    found = problems(path)
    assert found == [
        f"{tmp_path / 'rules.d' / 'x.toml'}:4: rules[0].match: not a valid regular "
        "expression: unterminated character set at position 1"
    ]


def test_check_config_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, MAIN + '\n[[rules]]\nmatch = "(a"\naction = "drop"\n')
    run = subprocess.run(
        ["aggregator", "check-config", "-c", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 2
    line = (MAIN + "\n[[rules]]\n").count("\n") + 1
    assert f"{path}:{line}: rules[1].match: not a valid regular expression" in run.stdout
