"""Issue 3's acceptance test: one ``aggregator poll`` over a good feed and every hostile case.

One real subprocess polls a good feed (a real fixture), a 301-moved copy of
it, and a source for each hostile behaviour of the loopback server. It must
finish in under 90 s with a peak RSS under 400 MB (``os.wait4``: on Linux
the figure covers the process and the parse children it reaped), exit 1,
name every failed source on its ``failed`` line, keep the good feed and the
moved copy intact, let nothing of /etc/passwd or of an expanded entity reach
any file, and the next poll of the good feed must be a conditional GET
answered 304.

"A public name redirected to loopback" runs in the same subprocess: the
command is started through a three-line launcher that gives
``aggregator.poll`` a Fetcher with a staged resolver (``public.example`` ->
127.0.0.1) and classifier (127.0.0.1 counts as public, as if it were on the
internet); everything else is the real CLI. The source then redirects to
127.0.0.2, a loopback address, and must be refused.

Run with ``-s`` to see the measured figures; they are also written to
``hostile-poll-<limits>.txt`` in the test's folder.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.store import Store
from tests.loopback import FIXTURES, LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
ATOM = "{http://www.w3.org/2005/Atom}"
GOOD = "zh__utf8__jekyll-feed_inforest.site.atom.xml"
PASSWD = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()[0]
#: an expanded entity would leave one of these: the laughs, quadratic's "x"s, the passwd file
LEAKS = (b"root:x:0:0", PASSWD.encode(), b"lollollol", b"x" * 200)

LAUNCHER = """
import functools, ipaddress, sys
import aggregator.poll
from aggregator.fetch import Fetcher, is_public, system_resolve
entry = ipaddress.ip_address("127.0.0.1")
def resolve(host, port):
    return ["127.0.0.1"] if host == "public.example" else system_resolve(host, port)
classify = lambda ip: ip == entry or is_public(ip)
aggregator.poll.Fetcher = functools.partial(Fetcher, resolve=resolve, classify=classify)
from aggregator.cli import main
sys.argv[0] = "aggregator"
main()
"""

#: id -> (path on the loopback server, kind of its failure or None when it must succeed)
SOURCES: dict[str, tuple[str, str | None]] = {
    "good": (f"/files/{GOOD}", None),
    "moved": ("/redirect/301/1/files/moved-copy.xml", None),
    "slow": ("/slow", "timeout"),
    "stall": ("/stall", "timeout"),
    "huge": ("/huge", "too_large"),
    "gzipbomb": ("/gzipbomb", "too_large"),
    "laughs": ("/billion-laughs", None),
    "quadratic": ("/quadratic", None),
    "xxe": ("/xxe", None),
    "html": ("/html", "not_a_feed"),
    "e500": ("/status/500", "5xx"),
    "r429": ("/429?retry=3600", "429"),
    "gone": ("/status/410", "gone"),
    "chain": ("/redirect/301/8/files/moved-copy.xml", "redirects"),
    "ssrf": ("/redirect-to?code=302&url=http://127.0.0.2:{port}/files/moved-copy.xml", "blocked"),
}
#: entities are dropped, not expanded: these read as feeds (or fail) but never leak
NEUTRALIZED = {"laughs", "quadratic", "xxe"}

LIMITS = {
    "small": '[limits]\nfetch_deadline = "5s"\nread_timeout = "3s"\n',
    "default": "",  # README defaults: 60 s deadline, 30 s read timeout, ...
}


def write_config(folder: Path, loopback: LoopbackServer, limits: str) -> Path:
    text = f"""
[aggregator]
database = "sqlite:///{folder}/var/aggregator.db"
output_dir = "public"

{limits}
[categories.good]
title = "好的"
[categories.moved]
title = "搬家"
[categories.hostile]
title = "Hostile"
"""
    for sid, (path, _) in SOURCES.items():
        host = "public.example" if sid == "ssrf" else "127.0.0.1"
        url = f"http://{host}:{loopback.port}{path.format(port=loopback.port)}"
        category = sid if sid in ("good", "moved") else "hostile"
        text += f'\n[[sources]]\nid = "{sid}"\nurl = "{url}"\ncategories = ["{category}"]\n'
    config = folder / "aggregator.toml"
    config.write_text(text, encoding="utf-8")
    return config


def run_measured(args: list[str], timeout: float) -> tuple[int, str, str, float, float]:
    """Run, reap with ``os.wait4``; (exit code, stdout, stderr, wall seconds, peak RSS MB)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            wall,
            usage.ru_maxrss / 1024,  # KiB on Linux
        )


def every_file(folder: Path) -> dict[str, bytes]:
    files = {}
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            files[str(path.relative_to(folder))] = (
                gzip.decompress(data) if path.suffix == ".gz" else data
            )
    return files


def titles(path: Path) -> list[str]:
    root = etree.parse(str(path)).getroot()
    return sorted(e.findtext(f"{ATOM}title") or "" for e in root.iter(f"{ATOM}entry"))


@pytest.mark.parametrize("limits", ["small", "default"])
def test_one_poll_over_every_hostile_case(
    tmp_path: Path, loopback: LoopbackServer, limits: str
) -> None:
    good_bytes = (FIXTURES / GOOD).read_bytes()
    loopback.add_file("moved-copy.xml", good_bytes)
    config = write_config(tmp_path, loopback, LIMITS[limits])

    code, stdout, stderr, wall, peak_mb = run_measured(
        [sys.executable, "-c", LAUNCHER, "poll", "-c", str(config)], timeout=120
    )
    figures = f"hostile poll ({limits} limits): {wall:.1f} s wall, peak RSS {peak_mb:.0f} MB"
    print(f"\n{figures}\n{stdout}")
    (tmp_path / f"hostile-poll-{limits}.txt").write_text(figures + "\n" + stdout)

    assert wall < 90, figures
    assert peak_mb < 400, figures
    assert code == 1, stdout + stderr[-3000:]

    lines = {line.split(" ", 1)[0]: line for line in stdout.splitlines() if line.strip()}
    assert set(lines) == set(SOURCES), stdout
    for sid, (_, kind) in SOURCES.items():
        if sid in NEUTRALIZED:
            continue
        if kind is None:
            assert lines[sid].startswith(f"{sid} ok new="), lines[sid]
        else:
            assert lines[sid].startswith(f"{sid} failed {kind}: "), lines[sid]
    assert "loopback" in lines["ssrf"]
    assert "source disabled" in lines["gone"]

    # the good feed and the moved copy are intact: every item of the fixture, once
    expected = sorted(e.title for e in feedparser.parse(good_bytes).entries)
    public = tmp_path / "public"
    assert titles(public / "good.atom") == expected
    assert titles(public / "moved.atom") == expected

    # nothing of /etc/passwd or an expanded entity in any file: outputs, database, logs
    for name, data in every_file(tmp_path).items():
        for leak in LEAKS:
            assert leak not in data, (name, leak[:20])
    for leak in LEAKS:
        assert leak.decode() not in stdout + stderr

    store = Store.open(f"sqlite:///{tmp_path}/var/aggregator.db")
    try:
        states = {s.source_id: s for s in store.states()}
    finally:
        store.close()
    assert states["r429"].next_due_at >= datetime.now(UTC) + timedelta(minutes=55)
    assert states["r429"].consecutive_failures == 0
    assert states["gone"].disabled_reason
    assert states["moved"].redirect_seen == 1  # a 301 moves the URL after 3 polls, not 1

    # the next poll of the good feed is a conditional GET answered 304
    loopback_before = len(loopback.requests_to(f"/files/{GOOD}"))
    again = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config), "--source", "good"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (again.returncode, again.stdout.strip()) == (0, "good unchanged"), again.stderr
    (request,) = loopback.requests_to(f"/files/{GOOD}")[loopback_before:]
    assert request.headers.get("if-none-match") and request.headers.get("if-modified-since")
