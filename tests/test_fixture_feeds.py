"""Every real fixture feed through one ``aggregator poll``: decoded, dated, written.

The fixtures are served by the loopback server; each is its own source. Both
databases: odd text (legacy encodings, control characters) must store alike.
Legacy encodings must arrive as the right characters and zone-less Chinese
dates as +08:00 in the written Atom.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree

from tests.loopback import FIXTURES, LoopbackServer

ATOM = "{http://www.w3.org/2005/Atom}"


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".xml", ".atom"))


def source_id(name: str) -> str:
    return name.split(".")[0].replace("__", "-").replace("_", "-").lower()[:60]


def test_one_poll_over_every_fixture(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> None:
    names = fixture_names()
    assert len(names) >= 30
    sources = "\n".join(
        f'[[sources]]\nid = "{source_id(n)}"\nurl = "{loopback.url}/files/{n}"\n'
        f'categories = ["{n.split("__")[0]}"]\n'
        for n in names
    )
    groups = sorted({n.split("__")[0] for n in names})
    cats = "\n".join(f'[categories.{g}]\ntitle = "{g} feeds"\n' for g in groups)
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f'[aggregator]\ndatabase = "{db_url}"\ntimezone = "Asia/Shanghai"\n'
        f"entries_per_feed = 500\n{cats}\n{sources}",
        encoding="utf-8",
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    out = proc.stdout.read() if proc.stdout else ""
    rss = usage.ru_maxrss / 1024
    print(f"\none poll over {len(names)} fixtures: {wall:.2f}s, peak RSS {rss:.0f} MB")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == {source_id(n) for n in names}
    assert os.waitstatus_to_exitcode(status) == 1  # the empty file fails, the rest do not
    failed = sorted(k for k, v in lines.items() if v.split()[1] == "failed")
    assert failed == ["bad-empty-file-newsboat"], out
    assert "empty" in lines["bad-empty-file-newsboat"]

    public = tmp_path / "public"
    entries: dict[str, etree._Element] = {}
    for feed in public.glob("*.atom"):
        for entry in etree.parse(str(feed)).getroot().iter(f"{ATOM}entry"):
            entries[entry.findtext(f"{ATOM}title")] = entry
    expected = {
        "如何以及何时使用sIFR": "2005-05-28T16:05:36+08:00",  # gb2312, zone-less -> +08:00
        "再談軟體與媒體的典範轉移": None,  # big5
        "Цитата #17703": "2018-03-21T15:27:32+08:00",  # windows-1251, +0300
        "《11月的蕭邦》": None,  # big5 atom 0.3
        "split massive package into modules": None,  # zone-less rdf
    }
    for title, published in expected.items():
        match = [t for t in entries if t.startswith(title)]
        assert match, f"{title!r} missing from the output"
        if published:
            assert entries[match[0]].findtext(f"{ATOM}published") == published
    assert any(t.startswith("Perturbateurs endocriniens") for t in entries)  # latin-1 undeclared
    gmane = next(e for t, e in entries.items() if t.startswith("split massive package"))
    assert gmane.findtext(f"{ATOM}published") == "2012-11-13T14:36:22+08:00"
    for feed in public.glob("*.atom"):
        text = feed.read_text(encoding="utf-8")
        assert "\ufffd" not in text or "enc__" in feed.name, feed.name
