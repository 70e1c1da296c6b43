"""The validated-config cache (config/cache.py): used only while every byte it was made
from is the same; anything else is a full load, with the same errors.

Each load runs in its own interpreter, as the CLI does: whether it validated shows in
which modules it loaded (pydantic's plugin loader is imported when validators are built,
and a cache hit builds none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config.cache import cache_file

LOAD = """
import json, sys
from aggregator.config.cache import load_config_cached
from aggregator.errors import ConfigError
try:
    config = load_config_cached(sys.argv[1])
except ConfigError as exc:
    print(json.dumps({"problems": [str(p) for p in exc.problems]}))
else:
    print(json.dumps({
        "validated": "pydantic.plugin._loader" in sys.modules,
        "urls": [s.url for s in config.sources],
        "database": config.aggregator.database,
    }))
"""

MAIN = """[aggregator]
database = "sqlite:///agg.db"
include = ["sources.d/*.toml"{extra}]

[categories.news]
title = "News"

[[sources]]
id = "one"
url = "http://127.0.0.1:9/one.xml"
categories = ["news"]
"""


def source(sid: str) -> str:
    return f'[[sources]]\nid = "{sid}"\nurl = "{url(sid)}"\ncategories = ["news"]\n'


@pytest.fixture
def cache_home(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def load(config: Path, cache_home: Path, cwd: Path | None = None) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "XDG_CACHE_HOME": str(cache_home)},
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def write_main(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "sources.d").mkdir(exist_ok=True)
    main = tmp_path / "aggregator.toml"
    main.write_text(MAIN.format(extra=extra), encoding="utf-8")
    return main


def cached(main: Path, cache_home: Path) -> Path:
    """The cache file of ``main`` under ``cache_home`` (this process's $XDG_CACHE_HOME differs)."""
    return cache_home / "aggregator" / cache_file(main.absolute()).name


def url(sid: str) -> str:
    return f"http://127.0.0.1:9/{sid}.xml"


def test_a_second_load_is_not_validated_and_gives_the_same_config(
    tmp_path: Path, cache_home: Path
) -> None:
    main = write_main(tmp_path)
    (tmp_path / "sources.d" / "a.toml").write_text(source("two"), encoding="utf-8")
    first = load(main, cache_home)
    assert first["validated"] is True
    assert cached(main, cache_home).is_file()
    second = load(main, cache_home)
    assert second == {**first, "validated": False}
    assert second["urls"] == [url("one"), url("two")]
    # the relative database path is the config folder's, whatever the working directory
    elsewhere = load(Path(os.path.relpath(main, tmp_path.parent)), cache_home, cwd=tmp_path.parent)
    assert elsewhere["database"] == f"sqlite:///{tmp_path / 'agg.db'}"


def test_an_edit_of_the_main_file_is_never_served_from_the_cache(
    tmp_path: Path, cache_home: Path
) -> None:
    main = write_main(tmp_path)
    load(main, cache_home)
    stat = main.stat()
    # same length, same mtime: only the bytes tell
    main.write_text(MAIN.format(extra="").replace("one.xml", "uno.xml"), encoding="utf-8")
    os.utime(main, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = load(main, cache_home)
    assert edited["validated"] is True and edited["urls"] == [url("uno")]
    assert load(main, cache_home) == {**edited, "validated": False}


def test_an_edit_of_an_included_file_is_never_served_from_the_cache(
    tmp_path: Path, cache_home: Path
) -> None:
    main = write_main(tmp_path, extra=', "more.toml"')
    (tmp_path / "more.toml").write_text(source("two"), encoding="utf-8")
    assert load(main, cache_home)["urls"] == [url("one"), url("two")]
    (tmp_path / "more.toml").write_text(source("two").replace("two.xml", "dos.xml"), "utf-8")
    assert load(main, cache_home)["urls"] == [url("one"), "http://127.0.0.1:9/dos.xml"]
    # a file the glob takes in from now on, then one that goes away
    (tmp_path / "sources.d" / "b.toml").write_text(source("three"), encoding="utf-8")
    added = load(main, cache_home)
    assert added["validated"] is True and url("three") in added["urls"]
    (tmp_path / "sources.d" / "b.toml").unlink()
    assert url("three") not in load(main, cache_home)["urls"]
    (tmp_path / "more.toml").unlink()
    gone = load(main, cache_home)
    assert gone["problems"] == [f"{main}:3: aggregator.include: included file not found: more.toml"]


def test_an_invalid_edit_gives_the_full_load_errors(tmp_path: Path, cache_home: Path) -> None:
    main = write_main(tmp_path)
    inc = tmp_path / "sources.d" / "a.toml"
    inc.write_text(source("two"), encoding="utf-8")
    load(main, cache_home)
    inc.write_text(source("two").replace('"two"', '"Two!"'), encoding="utf-8")
    cached = load(main, cache_home)
    uncached = load(main, tmp_path / "empty-cache")
    assert cached == uncached
    assert cached["problems"] == [
        f"{inc}:2: sources[0].id: may hold only lowercase letters, digits, - and _"
    ]


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.write_bytes(b"not a pickle"),
        lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),
        lambda f: f.write_bytes(b""),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_a_corrupt_cache_file_falls_back_to_a_full_load(
    tmp_path: Path, cache_home: Path, damage: object
) -> None:
    main = write_main(tmp_path)
    first = load(main, cache_home)
    damage(cached(main, cache_home))  # type: ignore[operator]
    again = load(main, cache_home)
    assert again == first  # validated anew, same config
    assert load(main, cache_home) == {**first, "validated": False}  # and the file made whole


def test_a_cache_file_others_may_write_is_not_read(tmp_path: Path, cache_home: Path) -> None:
    main = write_main(tmp_path)
    load(main, cache_home)
    file = cached(main, cache_home)
    assert file.stat().st_mode & 0o777 == 0o600
    file.chmod(0o666)
    assert load(main, cache_home)["validated"] is True


def test_check_config_and_commands_report_an_invalid_edit_alike(
    tmp_path: Path, cache_home: Path
) -> None:
    main = write_main(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "aggregator", *args, "-c", str(main)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)

    assert cli("export-opml").returncode == 0  # a valid config, now cached
    assert cached(main, cache_home).is_file()
    main.write_text(MAIN.format(extra="").replace("[[sources]]", "[[sorces]]"), "utf-8")
    problem = f"{main}:8: sorces: unknown key; did you mean `sources`?"
    check = cli("check-config")
    assert (check.returncode, check.stdout) == (2, problem + "\n")
    export = cli("export-opml")
    assert (export.returncode, export.stderr) == (2, f"error: {problem}\n")
