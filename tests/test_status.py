"""``aggregator sources``: the table shows stored text as text, titles beside ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aggregator.config import load_config
from aggregator.model import PollStatus, SourceState
from aggregator.poll import open_store


def test_sources_table_shows_markup_like_text_as_it_is(tmp_path: Path, sqlite_url: str) -> None:
    """Issue 13: a stored error holding ``[/x]`` crashed the table (rich read it as markup)."""
    path = tmp_path / "aggregator.toml"
    path.write_text(
        f'[aggregator]\ndatabase = "{sqlite_url}"\n'
        '[categories.news]\ntitle = "News"\n'
        '[[sources]]\nid = "kjrb"\ntitle = "科技日报 [bold]RSS[/]"\n'
        'url = "http://127.0.0.1:9/kjrb.xml"\ncategories = ["news"]\n'
        '[[sources]]\nid = "plain"\nurl = "http://127.0.0.1:9/plain.xml"\ncategories = ["news"]\n',
        encoding="utf-8",
    )
    store = open_store(load_config(path))
    try:
        store.save_state(
            SourceState(
                "kjrb",
                status=PollStatus.FAILED,
                error_kind="parse",
                error_message="mismatched tag [/x] on line 1",
            )
        )
    finally:
        store.close()
    out = subprocess.run(
        [sys.executable, "-m", "aggregator", "sources", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "│" in line]
    header = next(line for line in lines if "┃" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]][:2] == ["id", "title"]
    assert cells[0][:6] == [
        "kjrb",
        "科技日报 [bold]RSS[/]",
        "news",
        "-",
        "failed",
        "parse: mismatched tag [/x] on line 1",
    ]
    assert cells[1][:2] == ["plain", ""]
