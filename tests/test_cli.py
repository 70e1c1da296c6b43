"""The command line as an admin meets it: one-line errors and exit statuses, read-only
commands that only read, help pages that stand alone. Every command runs as a process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from sqlalchemy import text

from aggregator.cli import main
from aggregator.store.engine import MIGRATIONS, head_revision, make_engine

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "poll", "build", "serve", "check-config", "sources", "export-opml")


def aggregator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**environ, **(env or {})},
    )


def write_config(folder: Path, database: str, extra: str = "") -> Path:
    path = folder / "aggregator.toml"
    path.write_text(
        f"""[aggregator]
database = "{database}"
{extra}
[categories.news]
title = "News"

[[sources]]
id = "one"
url = "http://127.0.0.1:9/feed.xml"
categories = ["news"]
""",
        encoding="utf-8",
    )
    return path


def assert_one_line_error(out: subprocess.CompletedProcess[str], status: int) -> str:
    """No traceback; stderr's last line is ``error: …``; the exit status is ``status``."""
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.returncode == status, (out.returncode, out.stderr)
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), out.stderr
    return last


# ------------------------------------------------------------ the error boundary

BAD_URLS = {
    "unreadable": ("nonsense", "not a database URL"),
    "unsupported": ("mysql://nobody@127.0.0.1/x", "'mysql' databases are not supported"),
    "driver missing": ("postgresql+psycopg2://nobody@127.0.0.1/x", "the driver of"),
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_a_bad_database_url_is_a_config_error(tmp_path: Path, case: str) -> None:
    url, says = BAD_URLS[case]
    config = write_config(tmp_path, url)
    line = assert_one_line_error(aggregator("sources", "-c", str(config)), 2)
    assert "aggregator.toml:2: aggregator.database: " in line and says in line
    checked = aggregator("check-config", "-c", str(config))
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    assert f"aggregator.toml:2: aggregator.database: {says}" in checked.stdout
    assert_one_line_error(aggregator("poll", "-c", str(config)), 2)


def test_a_database_that_does_not_answer_is_a_run_time_failure(tmp_path: Path) -> None:
    config = write_config(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert aggregator("check-config", "-c", str(config)).returncode == 0
    for command in ("sources", "poll", "build"):
        line = assert_one_line_error(aggregator(command, "-c", str(config)), 1)
        assert "127.0.0.1" in line and "refused" in line, line


def test_poll_with_an_unwritable_output_dir(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    config = write_config(tmp_path, "sqlite:///var/db.sqlite", extra='output_dir = "afile/public"')
    out = aggregator("poll", "-c", str(config))
    line = assert_one_line_error(out, 1)
    assert f"cannot write {tmp_path / 'afile' / 'public'}" in line and "output_dir" in line
    assert out.stdout == ""  # the per-source lines come only with the files written
    line = assert_one_line_error(aggregator("build", "-c", str(config)), 1)
    assert "output_dir" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_log_level_from_the_environment(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, "sqlite:///var/db.sqlite")
    out = aggregator(command, "-c", str(config), env={"AGGREGATOR_LOG_LEVEL": "verbose"})
    line = assert_one_line_error(out, 2)
    assert "AGGREGATOR_LOG_LEVEL" in line and "'verbose' is not a log level" in line
    assert not (tmp_path / "var").exists()


def test_log_level_on_every_command(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///var/db.sqlite")
    bad = aggregator("check-config", "--log-level", "loud", "-c", str(config))
    assert "--log-level" in assert_one_line_error(bad, 2)
    for command in COMMANDS:
        help_text = aggregator(command, "--help").stdout
        assert "--log-level LEVEL" in help_text, command
    debug = aggregator("sources", "--log-level", "DEBUG", "-c", str(config))
    assert debug.returncode == 0, debug.stderr
    quiet = aggregator("poll", "--log-level", "error", "-c", str(config))
    assert quiet.returncode == 1 and "poll source=one" not in quiet.stderr
    loud = aggregator("poll", "-c", str(config), env={"AGGREGATOR_LOG_LEVEL": "warning"})
    assert loud.returncode == 1 and "poll source=one status=failed" in loud.stderr


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    assert "--bogus" in assert_one_line_error(aggregator("poll", "--bogus"), 2)
    assert "nope" in assert_one_line_error(aggregator("nope"), 2)
    config = write_config(tmp_path, "sqlite:///var/db.sqlite")
    unknown = aggregator("poll", "-c", str(config), "--source", "ghost")
    assert "ghost" in assert_one_line_error(unknown, 2)


# ------------------------------------------------------------ read-only commands


def _migrate_to(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def _snapshot(url: str) -> tuple[list[str], int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            rows = conn.execute(text("SELECT count(*) FROM sources")).scalar_one()
            return versions, int(rows)
    finally:
        engine.dispose()


def _digest(path: Path) -> dict[str, str]:
    """The bytes of the database file and its WAL, by name."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.parent.glob(path.name + "*"))
        if not p.name.endswith("-shm")
    }


def test_sources_leaves_an_old_schema_alone(tmp_path: Path, db_url: str) -> None:
    _migrate_to(db_url, "0001")
    config = write_config(tmp_path, db_url)
    before = _snapshot(db_url)
    sqlite_file = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite") else None
    digest = _digest(sqlite_file) if sqlite_file else None

    out = aggregator("sources", "-c", str(config))
    line = assert_one_line_error(out, 1)
    assert f"the database schema is at 0001, this version needs {head_revision()}" in line
    assert "aggregator poll or aggregator run to upgrade" in line
    assert _snapshot(db_url) == before == (["0001"], 0)
    if sqlite_file:
        assert _digest(sqlite_file) == digest

    # poll is the command that upgrades; sources then reads
    assert aggregator("poll", "-c", str(config)).returncode == 1  # the source is unreachable
    assert _snapshot(db_url) == ([head_revision()], 1)
    table = aggregator("sources", "-c", str(config))
    assert table.returncode == 0 and "connect" in table.stdout


def test_sources_creates_no_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///var/new.db")
    out = aggregator("sources", "-c", str(config))
    assert out.returncode == 0, out.stderr
    assert "one" in out.stdout and "news" in out.stdout
    assert "no database at" in out.stderr and "aggregator poll or run makes it" in out.stderr
    assert not (tmp_path / "var").exists()


def test_sources_on_a_current_database_writes_nothing(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, db_url)
    assert aggregator("poll", "-c", str(config)).returncode == 1
    before = _snapshot(db_url)
    sqlite_file = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite") else None
    digest = _digest(sqlite_file) if sqlite_file else None
    # a source added to the config: sources lists it, but no row is written for it
    config.write_text(
        config.read_text() + '\n[[sources]]\nid = "two"\nurl = "http://127.0.0.1:9/2"\n'
        'categories = ["news"]\n'
    )
    table = aggregator("sources", "-c", str(config))
    assert table.returncode == 0 and "two" in table.stdout
    assert _snapshot(db_url) == before
    if sqlite_file:
        assert _digest(sqlite_file) == digest


# ------------------------------------------------------------ help and version


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command that runs, as its words (``("rules", "test")``)."""
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found += _leaves(command, path) if isinstance(command, click.Group) else [path]
    return found


@pytest.mark.parametrize("command", _leaves(main), ids=" ".join)
def test_each_help_page_stands_alone(command: tuple[str, ...]) -> None:
    out = aggregator(*command, "--help")
    assert out.returncode == 0
    for needed in (
        "-c, --config PATH",
        "--log-level LEVEL",
        "Exit status:",
        "  0  ",
        "  2  a configuration or usage error",
        "Environment:",
        "AGGREGATOR_CONFIG",
        "AGGREGATOR_LOG_LEVEL",
    ):
        assert needed in out.stdout, (command, needed)


def test_repeatable_options_say_so() -> None:
    assert "poll only this source (repeatable)" in aggregator("poll", "--help").stdout


def test_version_names_the_key_libraries() -> None:
    out = aggregator("--version")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == "aggregator 0.1.0"
    assert lines[1].startswith(f"Python {sys.version.split()[0]} ")
    for name in (
        "feedparser",
        "feedgen",
        "APScheduler",
        "SQLAlchemy",
        "requests",
        "urllib3",
        "psycopg",
        "nh3",
        "pydantic",
    ):
        assert any(line.split()[:1] == [name] and line.split()[1][0].isdigit() for line in lines), (
            name
        )


def test_the_man_page_is_the_help_text() -> None:
    """docs/aggregator.1 is what ``python -m aggregator.manpage`` writes from --help's records."""
    from aggregator.manpage import render

    page = (ROOT / "docs" / "aggregator.1").read_text("utf-8")
    assert page == render(), "remake it: python -m aggregator.manpage > docs/aggregator.1"
    for words in _leaves(main):
        assert f".SS aggregator {' '.join(words).replace('-', chr(92) + '-')}\n" in page
    for needed in ("AGGREGATOR_CONFIG", "AGGREGATOR_LOG_LEVEL", "(repeatable)", ".SH EXIT STATUS"):
        assert needed in page
