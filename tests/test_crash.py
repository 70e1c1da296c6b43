"""Crash safety: ``aggregator poll`` killed with SIGKILL at many moments, then run again.

A real subprocess polls a dozen loopback sources (some answer slowly, some
are large enough to be parsed in a child process, two share infoCode items
so they merge) and is killed at delays spread over a whole run. Every kill
is followed by a poll that runs to completion, and then:

* every output feed is well-formed XML with no entry id twice, its gzip twin
  holds the same bytes, and no temporary file is left in ``output_dir``;
* the database has no duplicate item or version keys;
* nothing committed before is lost (item keys only grow, feeds never shrink);
* the feeds say exactly what the store holds (a fresh rendering of the store
  gives the same bytes), even where the killed run had already saved the
  sources' validators, so the next poll saw only 304s.

The sources' content changes between rounds, so every killed run has work
to do. The first kill lands while the command starts, the others spread over
its work (from its first request to its exit, measured on an earlier run).
SQLite gets 10 kills, PostgreSQL 5.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import create_engine, text

from aggregator.config import load_config
from aggregator.outputs import write_outputs
from aggregator.store import Store
from aggregator.store.engine import normalize_url
from aggregator.write import replace_file
from tests.loopback import LoopbackServer, Request, Response

ROOT = Path(__file__).resolve().parents[1]
ATOM = "{http://www.w3.org/2005/Atom}"
STATIC = [
    "zh__utf8__jekyll-feed_inforest.site.atom.xml",
    "zh__utf8__bbc-chinese-2013.atom",
    "cjk__gb2312__softsea.net.rss.xml",
]
DYNAMIC = 9  #: sources whose items grow and change every round
SLOW = {1: 0.6, 4: 0.4, 7: 0.8}  #: dynamic source -> seconds before it answers


class Rounds:
    """The content of the dynamic sources at the current round."""

    def __init__(self) -> None:
        self.round = 0

    def feed(self, index: int) -> bytes:
        r = self.round
        items = []
        for j in range(4 + 3 * r):
            code = f"NW2026030100000{j:05d}"  # sources 0 and 1 carry the same articles
            link = (
                f"http://example.org/a?infoCode={code}"
                if index < 2
                else f"http://example.org/s{index}/{j}"
            )
            title = f"item {j} of s{index}" + (f" rev {r}" if j == r % 4 else "")
            items.append(
                f"<item><title>{title}</title><link>{link.replace('&', '&amp;')}</link>"
                f"<guid>s{index}-{j}</guid>"
                f"<pubDate>Sun, 01 Mar 2026 {j // 60 % 24:02d}:{j % 60:02d}:00 GMT</pubDate>"
                f"<description>&lt;p&gt;body {j} {'x' * (j % 7) * 40}&lt;/p&gt;</description>"
                "</item>"
            )
        return (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>s{index}</title><link>http://example.org/</link><description>d</description>"
            + "".join(reversed(items))
            + "</channel></rss>"
        ).encode()

    def handler(self, index: int):  # type: ignore[no-untyped-def]
        def handle(request: Request) -> Response:
            body = self.feed(index)
            etag = '"' + hashlib.sha1(body).hexdigest()[:12] + '"'
            if index in SLOW:
                time.sleep(SLOW[index])
            if request.headers.get("if-none-match") == etag:
                return Response(304, b"", {"ETag": etag})
            return Response(200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})

        return handle


def write_config(folder: Path, db_url: str, loopback: LoopbackServer, rounds: Rounds) -> Path:
    text_ = f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
entries_per_feed = 40

[limits]
fetch_deadline = "8s"
read_timeout = "5s"

[categories.alpha]
title = "Alpha"
[categories.beta]
title = "Beta"
[categories.gamma]
title = "Gamma"
"""
    cats = ["alpha", "beta", "gamma"]
    for i, name in enumerate(STATIC):
        url = loopback.url_for(f"/files/{name}")
        text_ += f'\n[[sources]]\nid = "static{i}"\nurl = "{url}"\ncategories = ["{cats[i]}"]\n'
    for i in range(DYNAMIC):
        url = loopback.add(f"/dyn/{i}", rounds.handler(i))
        both = f'"{cats[i % 3]}", "{cats[(i + 1) % 3]}"' if i % 2 else f'"{cats[i % 3]}"'
        text_ += f'\n[[sources]]\nid = "dyn{i}"\nurl = "{url}"\ncategories = [{both}]\n'
    path = folder / "aggregator.toml"
    path.write_text(text_, encoding="utf-8")
    return path


def start_poll(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def feeds(out: Path) -> dict[str, list[str]]:
    """Entry ids of every feed file; asserts each is well-formed with unique ids."""
    found = {}
    for path in sorted(out.glob("*.atom")):
        root = etree.fromstring(path.read_bytes())  # raises on a half-written file
        ids = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        assert not dupes, (path.name, dupes)
        found[path.name] = ids
    return found


def database_keys(db_url: str) -> set[str]:
    """Item keys; asserts no key (or source version) is stored twice."""
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            twice = conn.execute(
                text("SELECT key FROM items GROUP BY key HAVING count(*) > 1")
            ).all()
            assert not twice, twice
            twice = conn.execute(
                text(
                    "SELECT source_id, key FROM item_versions GROUP BY source_id, key "
                    "HAVING count(*) > 1"
                )
            ).all()
            assert not twice, twice
            return {row.key for row in conn.execute(text("SELECT key FROM items"))}
    finally:
        engine.dispose()


def assert_outputs_match_store(config_path: Path, folder: Path) -> None:
    """A fresh rendering of the store into another folder gives the same feeds."""
    config = load_config(config_path)
    fresh = folder / "fresh"
    config = config.model_copy(
        update={"aggregator": config.aggregator.model_copy(update={"output_dir": fresh})}
    )
    store = Store.open(config.aggregator.database)
    try:
        write_outputs(config, store, None)
    finally:
        store.close()
    out = config_path.parent / "public"
    for path in sorted(fresh.glob("*.atom")):
        assert (out / path.name).read_bytes() == path.read_bytes(), f"{path.name} is stale"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_at_many_points_loses_and_doubles_nothing(
    tmp_path: Path, loopback: LoopbackServer, backend: str, request: pytest.FixtureRequest
) -> None:
    db_url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    kills = 10 if backend == "sqlite" else 5
    rounds = Rounds()
    config = write_config(tmp_path, db_url, loopback, rounds)
    out = tmp_path / "public"
    began = time.monotonic()

    # two runs, uninterrupted: the first fills the store, the second (like every later
    # one: the static feeds answer 304) tells how long start-up and work take
    run_to_the_end(config, loopback)
    rounds.round += 1
    startup, work = run_to_the_end(config, loopback)

    keys = database_keys(db_url)
    sizes = {name: len(ids) for name, ids in feeds(out).items()}
    killed = 0
    for n in range(kills):
        rounds.round += 1
        victim = start_poll(config)
        if n == 0:  # once while starting: imports, migrations, config
            wait_for(victim, lambda: False, startup * 0.6)
        else:  # the rest spread over the work: fetches, parses, commits, writes
            seen = len(loopback.requests)
            wait_for(victim, lambda seen=seen: len(loopback.requests) > seen, 30)
            wait_for(victim, lambda: False, work * 0.95 * (n - 1) / max(kills - 2, 1))
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
            killed += 1
        victim.communicate(timeout=30)
        feeds(out)  # at the moment of the crash: every feed whole

        run_to_the_end(config, loopback)
        now_keys = database_keys(db_url)
        assert keys <= now_keys, f"lost after kill {n}: {sorted(keys - now_keys)[:5]}"
        keys = now_keys
        now_sizes = {name: len(ids) for name, ids in feeds(out).items()}
        for name, size in sizes.items():
            assert now_sizes.get(name, 0) >= size, (n, name)
        sizes = now_sizes
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        assert not leftovers, leftovers
        for path in out.glob("*.atom"):
            twin = path.with_name(path.name + ".gz")
            assert gzip.decompress(twin.read_bytes()) == path.read_bytes(), path.name
        assert_outputs_match_store(config, tmp_path / f"check{n}")
    assert killed >= kills - 2  # the kills did land inside runs (timing varies with load)
    assert len(keys) > 100
    print(
        f"\n{backend}: {killed} kills over {work:.1f}s of work after {startup:.1f}s of start-up, "
        f"{len(keys)} items kept, {time.monotonic() - began:.0f}s in all"
    )


def wait_for(proc: subprocess.Popen[bytes], done: Callable[[], bool], seconds: float) -> None:
    """Until ``done()``, ``seconds`` pass, or ``proc`` exits; in small steps."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None and not done():
        time.sleep(0.01)


def run_to_the_end(config: Path, loopback: LoopbackServer) -> tuple[float, float]:
    """One complete poll that must succeed; (seconds to its first request, seconds after)."""
    seen = len(loopback.requests)
    started = time.monotonic()
    proc = start_poll(config)
    wait_for(proc, lambda: len(loopback.requests) > seen, 60)
    first = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout.decode() + stderr.decode()[-3000:]
    return first - started, time.monotonic() - first


def test_a_killed_writer_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The first write of a process into a folder removes dead writers' temporary files."""
    code = (
        "import os, sys, tempfile; "
        "tempfile.mkstemp(prefix=f'.all.atom.{os.getpid()}.', suffix='.tmp', dir=sys.argv[1]); "
        "os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    (orphan,) = tmp_path.glob(".all.atom.*.tmp")
    mine = tmp_path / f".x.atom.{os.getpid()}.abcdefgh.tmp"  # a live writer's: kept
    mine.write_bytes(b"")
    replace_file(tmp_path / "all.atom", b"<feed/>")
    assert not orphan.exists() and mine.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["all.atom", mine.name])


def test_feeds_catch_up_after_a_poll_killed_before_writing(
    tmp_path: Path, loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the store committed (validators saved) but before the feeds were written:
    the next poll sees only a 304, and must still bring the feeds up to the store."""
    import aggregator.outputs
    import aggregator.poll
    from aggregator.model import PollStatus

    rounds = Rounds()
    loopback.add("/dyn/0", rounds.handler(0))
    config_path = tmp_path / "aggregator.toml"
    config_path.write_text(
        f'[aggregator]\ndatabase = "sqlite:///{tmp_path}/agg.db"\noutput_dir = "public"\n'
        '[categories.alpha]\ntitle = "Alpha"\n'
        f'[[sources]]\nid = "dyn0"\nurl = "{loopback.url}/dyn/0"\ncategories = ["alpha"]\n'
    )
    config = load_config(config_path)
    aggregator.poll.poll_once(config, None)
    assert len(feeds(tmp_path / "public")["alpha.atom"]) == 4

    rounds.round = 2

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this point runs

    monkeypatch.setattr(aggregator.outputs, "write_outputs", killed)
    with pytest.raises(KeyboardInterrupt):
        aggregator.poll.poll_once(config, None)
    monkeypatch.undo()

    (result,) = aggregator.poll.poll_once(config, None)
    assert result.status == PollStatus.UNCHANGED  # a 304: this poll changed nothing itself
    assert len(feeds(tmp_path / "public")["alpha.atom"]) == 10
    assert_outputs_match_store(config_path, tmp_path / "fresh")
