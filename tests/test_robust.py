"""Polite, robust polling (issue 3), proven through ``update_source`` and ``aggregator poll``.

Each test stands up sources on the loopback server (tests/loopback.py) and
runs the real pipeline: in-process through ``update_source`` where a test
needs a fixed clock (``Harness``: the fetcher and the update share it, and
jitter is 0, so next-poll times are exact), and as ``aggregator poll`` in a
subprocess where the command's own output, exit status or process matter.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

from aggregator.config import Limits, load_config, parse_duration
from aggregator.fetch import Fetcher, is_public
from aggregator.model import PollStatus, SourceState, UpdateResult
from aggregator.poll import open_store, poll_once
from aggregator.store import Store
from aggregator.store.engine import normalize_url
from aggregator.update import UpdateContext, update_source
from tests.loopback import FIXTURES, HTML_PAGE, LoopbackServer, Request, Response, closed_port

ROOT = Path(__file__).resolve().parents[1]
GOOD = "zh__utf8__jekyll-feed_inforest.site.atom.xml"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


# --- helpers ---------------------------------------------------------------------------


def rss(n: int, *, prefix: str = "item", ttl: int | None = None, title: str = "feed") -> bytes:
    """A well-formed RSS 2.0 document with ``n`` dated items."""
    items = "".join(
        f"<item><title>{prefix} {i}</title><link>http://example.org/{prefix}/{i}</link>"
        f"<guid>{prefix}-{i}</guid><pubDate>Sun, 01 Mar 2026 0{i % 10}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;text of {prefix} {i}&lt;/p&gt;</description></item>"
        for i in range(n)
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl is not None else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://example.org/</link><description>d</description>{ttl_tag}{items}"
        "</channel></rss>"
    ).encode()


def write_config(
    folder: Path, db_url: str, sources: dict[str, str], limits: str = "", extra: str = ""
) -> Path:
    """A config with one category and ``sources`` (id -> url); small limits, no jitter.

    ``limits``: ``key = value`` lines that replace the defaults here.
    """
    table = {
        "jitter": "0",
        "connect_timeout": '"3s"',
        "read_timeout": '"3s"',
        "fetch_deadline": '"5s"',
    }
    for line in limits.splitlines():
        if line.strip():
            key, value = (part.strip() for part in line.split("=", 1))
            table[key] = value
    limits = "\n".join(f"{k} = {v}" for k, v in table.items())
    text = f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
default_interval = "15m"

[limits]
{limits}

[categories.news]
title = "News"
{extra}
"""
    for sid, url in sources.items():
        text += f'\n[[sources]]\nid = "{sid}"\nurl = "{url}"\ncategories = ["news"]\n'
    path = folder / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def aggregator(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def lines_by_source(stdout: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line for line in stdout.splitlines() if line.strip()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def feeds_of(files: dict[str, bytes]) -> dict[str, bytes]:
    """The item feeds, pages and indexes: not what reports the sources' condition (the
    health feed, status.html) nor the write counter, which a failed poll moves on purpose."""
    return {
        name: data
        for name, data in files.items()
        if not name.startswith(("health.", "status.html", ".written"))
    }


def dump_database(url: str) -> str:
    """Every row of every table as text (both backends), to search for leaked content."""
    engine = create_engine(normalize_url(url))
    try:
        meta = MetaData()
        meta.reflect(engine)
        out = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    out.append(f"{table.name}: {tuple(row)!r}")
        return "\n".join(out)
    finally:
        engine.dispose()


class Harness:
    """One config, store and fetcher; ``poll(id)`` runs ``update_source`` at ``self.now``."""

    def __init__(
        self, folder: Path, db_url: str, sources: dict[str, str], limits: str = "", **fetch_kw
    ):
        self.folder, self.db_url, self.limits_text = folder, db_url, limits
        self.now = NOW
        self.fetch_kw = fetch_kw
        self.config = load_config(write_config(folder, db_url, sources, limits))
        self.store = open_store(self.config)
        self.fetcher = Fetcher(self.config.limits, clock=lambda: self.now, **fetch_kw)

    def reconfigure(self, sources: dict[str, str]) -> None:
        self.config = load_config(write_config(self.folder, self.db_url, sources, self.limits_text))
        self.store.sync_config(self.config.sources, [], self.now)

    def poll(self, sid: str) -> UpdateResult:
        ctx = UpdateContext(
            self.config, self.store, self.fetcher, lambda: self.now, random.Random(0)
        )
        source = self.config.source(sid)
        assert source is not None
        return update_source(ctx, source, self.store.state(sid))

    def state(self, sid: str) -> SourceState:
        return self.store.state(sid)

    def set_state(self, sid: str, **changes: object) -> None:
        from dataclasses import replace

        self.store.save_state(replace(self.state(sid), **changes))  # type: ignore[arg-type]

    def close(self) -> None:
        self.fetcher.close()
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(
        sources: dict[str, str], limits: str = "", db_url: str | None = None, **kw: object
    ) -> Harness:
        url = db_url or f"sqlite:///{tmp_path / 'db' / 'agg.db'}"
        made.append(Harness(tmp_path, url, sources, limits, **kw))
        return made[-1]

    yield make
    for h in made:
        h.close()


def sequence(*responses: Response) -> Callable[[Request], Response]:
    """A handler answering with ``responses`` in turn (the last one repeats)."""
    calls = iter(range(10_000))

    def handle(request: Request) -> Response:
        i = next(calls)
        return responses[min(i, len(responses) - 1)]

    return handle


def headers_of(loopback: LoopbackServer, path: str) -> list[tuple[str | None, str | None]]:
    return [
        (r.headers.get("if-none-match"), r.headers.get("if-modified-since"))
        for r in loopback.requests_to(path)
    ]


# --- 1. conditional GET, exactly -------------------------------------------------------

LM1 = "Sun, 01 Mar 2026 10:00:00 GMT"
LM2 = "Sun, 01 Mar 2026 11:00:00 GMT"


def test_conditional_get_through_aggregator_poll(tmp_path: Path, loopback: LoopbackServer) -> None:
    """2nd request carries the 200's validators, 3rd the ones the 304 refreshed."""
    body = rss(3)

    def cond(request: Request) -> Response:
        inm = request.headers.get("if-none-match")
        if inm == '"v1"':  # the server has moved on to a new validator for the same bytes
            return Response(304, b"", {"ETag": '"v2"', "Last-Modified": LM2})
        if inm == '"v2"':
            return Response(304, b"", {"ETag": '"v2"'})
        return Response(200, body, {"ETag": '"v1"', "Last-Modified": LM1})

    url = loopback.add("/cond.xml", cond)
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/agg.db", {"cond": url})
    outputs = [aggregator("poll", "-c", str(config)) for _ in range(3)]
    assert [o.returncode for o in outputs] == [0, 0, 0], [o.stderr for o in outputs]
    assert outputs[0].stdout.startswith("cond ok new=3")
    assert [o.stdout.strip() for o in outputs[1:]] == ["cond unchanged", "cond unchanged"]
    assert headers_of(loopback, "/cond.xml") == [
        (None, None),
        ('"v1"', LM1),  # ETag and Last-Modified of the 200
        ('"v2"', LM2),  # both refreshed by the 304
    ]
    # a 304 that names no Last-Modified keeps the one we had
    assert aggregator("poll", "-c", str(config)).returncode == 0
    assert headers_of(loopback, "/cond.xml")[-1] == ('"v2"', LM2)


def test_etag_is_preferred_over_last_modified(harness, loopback: LoopbackServer) -> None:
    """With both validators sent, the ETag decides (RFC 9110 §13.2.2): a changed one gets a 200."""
    served = {"body": rss(2), "etag": '"a"'}

    def handle(request: Request) -> Response:
        headers = {"ETag": served["etag"], "Last-Modified": LM1}
        if request.headers.get("if-none-match") == served["etag"]:
            return Response(304, b"", headers)
        return Response(200, served["body"], headers)

    h = harness({"src": loopback.add("/pref.xml", handle)})
    assert h.poll("src").status == PollStatus.OK
    served.update(body=rss(3), etag='"b"')  # same Last-Modified, new ETag
    result = h.poll("src")
    assert (result.status, result.new) == (PollStatus.OK, 1)
    assert h.state("src").etag == '"b"'
    assert headers_of(loopback, "/pref.xml")[1] == ('"a"', LM1)


def test_only_last_modified_then_none(harness, loopback: LoopbackServer) -> None:
    """Validators come from every 200: one without any clears the old ones."""
    h = harness(
        {
            "src": loopback.add(
                "/lm.xml",
                sequence(
                    Response(200, rss(1), {"Last-Modified": LM1}),
                    Response(200, rss(2), {}),
                    Response(200, rss(2), {}),
                ),
            )
        }
    )
    for _ in range(3):
        assert h.poll("src").status == PollStatus.OK
    assert headers_of(loopback, "/lm.xml") == [(None, None), (None, LM1), (None, None)]
    state = h.state("src")
    assert (state.etag, state.last_modified) == (None, None)


def test_validators_never_go_to_another_url(harness, loopback: LoopbackServer) -> None:
    """Neither to a redirect target, nor to the source's URL after the config changed it."""
    loopback.add_file("a.xml", rss(2))
    loopback.add_file("b.xml", rss(2, prefix="b"))
    temp = loopback.url_for(f"/redirect-to?code=302&url={loopback.url}/files/a.xml")
    h = harness({"tmp": temp, "moved": loopback.url_for("/files/a.xml")})
    for _ in range(2):
        assert h.poll("tmp").status == PollStatus.OK
    assert all(r.headers.get("if-none-match") is None for r in loopback.requests)
    assert all(r.headers.get("if-modified-since") is None for r in loopback.requests)

    assert h.poll("moved").status == PollStatus.OK  # validators of /files/a.xml stored
    assert h.poll("moved").status == PollStatus.UNCHANGED
    h.reconfigure({"tmp": temp, "moved": loopback.url_for("/files/b.xml")})
    loopback.reset()
    loopback.add_file("b.xml", rss(2, prefix="b"))
    assert h.poll("moved").status == PollStatus.OK
    assert headers_of(loopback, "/files/b.xml") == [(None, None)]


# --- 2. politeness ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "failures_after", "delay"),
    [
        ("/429?retry=3600", 2, timedelta(hours=1)),  # 429: not a failure of the source
        ("/429?retry=DATE", 2, timedelta(hours=2)),  # HTTP-date form
        ("/429?retry=259200", 2, timedelta(hours=24)),  # 3 days: capped at max_interval
        ("/503?retry=7200", 3, timedelta(hours=2)),  # 503 counts, and is honoured
        ("/503?retry=DATE", 3, timedelta(hours=2)),
    ],
)
def test_retry_after(harness, loopback, path, failures_after, delay) -> None:
    date = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    h = harness({"src": loopback.url_for(path.replace("DATE", date.replace(" ", "%20")))})
    h.set_state("src", consecutive_failures=2)
    result = h.poll("src")
    assert result.status == PollStatus.FAILED
    state = h.state("src")
    assert state.consecutive_failures == failures_after
    assert state.next_due_at == NOW + delay
    assert state.error_kind == ("429" if "429" in path else "5xx")


@pytest.mark.parametrize(
    ("headers", "ttl", "delay"),
    [
        ({}, None, INTERVAL),
        ({"Cache-Control": "public, max-age=7200"}, None, timedelta(hours=2)),
        (
            {"Expires": format_datetime(NOW + timedelta(hours=3), usegmt=True)},
            None,
            timedelta(hours=3),
        ),
        (
            {"Cache-Control": "max-age=3600", "Expires": "Sun, 01 Mar 2026 20:00:00 GMT"},
            None,
            timedelta(hours=1),
        ),  # max-age wins over Expires
        ({}, 240, timedelta(hours=4)),  # RSS <ttl> in minutes
        ({"Cache-Control": "max-age=600"}, 5, INTERVAL),  # floors never shorten the interval
        ({"Cache-Control": "max-age=864000"}, None, timedelta(hours=24)),  # capped
        ({}, 100_000, timedelta(hours=24)),
        ({"Cache-Control": "no-cache, max-age=7200"}, None, INTERVAL),
    ],
)
def test_interval_floors(harness, loopback, headers, ttl, delay) -> None:
    url = loopback.add("/floor.xml", rss(1, ttl=ttl), headers=headers)
    h = harness({"src": url})
    assert h.poll("src").status == PollStatus.OK
    assert h.state("src").next_due_at == NOW + delay


def test_a_304_carrying_cache_control_sets_the_floor(harness, loopback) -> None:
    h = harness(
        {
            "src": loopback.add(
                "/cc.xml",
                sequence(
                    Response(200, rss(1), {"ETag": '"e"'}),
                    Response(304, b"", {"ETag": '"e"', "Cache-Control": "max-age=5400"}),
                ),
            )
        }
    )
    assert h.poll("src").status == PollStatus.OK
    assert h.state("src").next_due_at == NOW + INTERVAL
    h.now += INTERVAL
    assert h.poll("src").status == PollStatus.UNCHANGED
    assert h.state("src").next_due_at == h.now + timedelta(minutes=90)


def test_per_host_limit_across_sources_in_one_poll(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """16 sources, 8 per host name, 8 workers: never more than 2 at once per host."""
    lock = threading.Lock()
    now: dict[str, int] = {}
    peak: dict[str, int] = {}
    peak_total = [0]

    def slow_feed(request: Request) -> Response:
        host = request.headers["host"].rsplit(":", 1)[0]
        with lock:
            now[host] = now.get(host, 0) + 1
            peak[host] = max(peak.get(host, 0), now[host])
            peak_total[0] = max(peak_total[0], sum(now.values()))
        time.sleep(0.4)
        with lock:
            now[host] -= 1
        return Response(200, rss(1, prefix=request.path.strip("/")), {})

    sources = {}
    for i in range(8):
        loopback.add(f"/p{i}", slow_feed)
        sources[f"ip{i}"] = f"http://127.0.0.1:{loopback.port}/p{i}"
        sources[f"name{i}"] = f"http://localhost:{loopback.port}/p{i}"
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/agg.db", sources)
    done = aggregator("poll", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines_by_source(done.stdout)) == 16
    assert peak == {"127.0.0.1": 2, "localhost": 2}, peak
    assert peak_total[0] > 2  # the pool does run sources in parallel


# --- 3. backoff, 410, permanent redirects ---------------------------------------------


def test_backoff_doubles_to_the_cap_and_recovers(harness, loopback: LoopbackServer) -> None:
    h = harness({"src": loopback.add("/flaky.xml", b"", status=500)})
    delays = []
    for _ in range(8):
        assert h.poll("src").status == PollStatus.FAILED
        state = h.state("src")
        delays.append(state.next_due_at - h.now)
        h.now = state.next_due_at
    minutes = [int(d.total_seconds() // 60) for d in delays]
    assert minutes == [15, 30, 60, 120, 240, 360, 360, 360]
    assert h.state("src").consecutive_failures == 8
    loopback.add("/flaky.xml", rss(2))
    assert h.poll("src").status == PollStatus.OK
    state = h.state("src")
    assert (state.consecutive_failures, state.error_kind, state.error_message) == (0, None, None)
    assert state.next_due_at == h.now + INTERVAL


def test_410_disables_the_source_and_says_so(tmp_path: Path, loopback: LoopbackServer) -> None:
    loopback.add("/gone.xml", b"gone", status=410)
    loopback.add_file("good.xml", rss(2))
    config = write_config(
        tmp_path,
        f"sqlite:///{tmp_path}/agg.db",
        {"gone": loopback.url_for("/gone.xml"), "good": loopback.url_for("/files/good.xml")},
    )
    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 1
    line = lines_by_source(first.stdout)["gone"]
    assert line.startswith("gone failed gone: HTTP 410 Gone: source disabled"), line

    table = aggregator("sources", "-c", str(config))
    row = next(r for r in table.stdout.splitlines() if "│ gone" in r)
    assert "disabled" in row and "410 Gone" in row

    second = aggregator("poll", "-c", str(config))
    assert second.returncode == 0, second.stdout
    assert "gone" not in lines_by_source(second.stdout)
    assert len(loopback.requests_to("/gone.xml")) == 1  # later polls skip it

    loopback.add("/gone.xml", rss(1, prefix="back"))  # the admin asks for it by name
    again = aggregator("poll", "-c", str(config), "--source", "gone")
    assert again.stdout.startswith("gone ok new=1"), again.stdout
    third = aggregator("poll", "-c", str(config))
    assert "gone" in lines_by_source(third.stdout)


@pytest.mark.parametrize(("code", "moves"), [(301, True), (308, True), (302, False), (307, False)])
def test_permanent_redirects_move_the_url_only_when_confirmed(
    harness, loopback: LoopbackServer, code: int, moves: bool
) -> None:
    loopback.add_file("new.xml", rss(2))
    new = loopback.url_for("/files/new.xml")
    loopback.add("/old.xml", lambda r: Response(code, b"", {"Location": new}))
    h = harness({"src": loopback.url_for("/old.xml")})  # redirect_confirmations = 3
    for n in range(1, 6):
        assert h.poll("src").status in (PollStatus.OK, PollStatus.UNCHANGED)
        state = h.state("src")
        if moves and n >= 3:
            assert state.url == new, n
        else:
            assert state.url is None, n
            assert state.redirect_seen == (n if moves else 0)
    old_requests = len(loopback.requests_to("/old.xml"))
    assert old_requests == (3 if moves else 5)
    if moves:  # the moved source polls the new URL directly, conditionally
        assert headers_of(loopback, "/files/new.xml")[-1][0] is not None


def test_inconsistent_permanent_redirect_restarts_the_count(
    harness, loopback: LoopbackServer
) -> None:
    loopback.add_file("a.xml", rss(1))
    loopback.add_file("b.xml", rss(1))
    targets = iter(["a", "a", "b", "b", "b"])
    loopback.add(
        "/old.xml",
        lambda r: Response(301, b"", {"Location": f"{loopback.url}/files/{next(targets)}.xml"}),
    )
    h = harness({"src": loopback.url_for("/old.xml")})
    seen = []
    for _ in range(5):
        h.poll("src")
        seen.append((h.state("src").url, h.state("src").redirect_seen))
    b = loopback.url_for("/files/b.xml")
    assert seen == [(None, 1), (None, 2), (None, 1), (None, 2), (b, 0)]


# --- 4. hard limits --------------------------------------------------------------------


def test_readme_limits_table_matches_the_code() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### `[limits]`", 1)[1].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.MULTILINE))
    defaults = Limits()
    assert set(rows) == set(Limits.model_fields)
    for key, shown in rows.items():
        value = getattr(defaults, key)
        if isinstance(value, timedelta):
            assert parse_duration(shown) == value, key
        else:
            assert type(value)(shown) == value, key


def test_items_per_fetch_is_capped(harness, loopback: LoopbackServer) -> None:
    h = harness({"src": loopback.add("/many.xml", rss(30))}, "max_items_per_fetch = 10")
    result = h.poll("src")
    assert (result.status, result.new) == (PollStatus.OK, 10)
    assert h.state("src").item_count == 10


def test_detail_requests_per_poll_are_capped(tmp_path: Path, loopback: LoopbackServer) -> None:
    import json

    items = [
        {"code": f"NW2022052523916757{i:02d}", "title": f"t{i}", "time": "2022-05-25 16:53:43"}
        for i in range(5)
    ]
    loopback.add(
        "/list", json.dumps({"items": items}).encode(), headers={"Content-Type": "application/json"}
    )
    loopback.add(
        "/detail",
        lambda r: Response(
            200, json.dumps({"text": "<p>body</p>"}).encode(), {"Content-Type": "application/json"}
        ),
    )
    extra = f"""
[[sources]]
id = "api"
url = "{loopback.url}/list"
categories = ["news"]
type = "json"
[sources.json]
items = "items"
infocode = "code"
title = "title"
published = "time"
link = "http://example.org/{{infocode}}"
[sources.json.detail]
url = "{loopback.url}/detail?id={{infocode}}"
content = "text"
"""
    config = load_config(
        write_config(
            tmp_path, f"sqlite:///{tmp_path}/agg.db", {}, "max_details_per_poll = 2", extra
        )
    )
    first = poll_once(config, None)
    assert (first[0].status, first[0].new) == (PollStatus.OK, 5)
    assert len(loopback.requests_to("/detail")) == 2
    assert sum("detail budget spent" in w for w in first[0].warnings) == 3
    poll_once(config, None)
    poll_once(config, None)
    assert len(loopback.requests_to("/detail")) == 5  # the rest came in later polls
    poll_once(config, None)
    assert len(loopback.requests_to("/detail")) == 5


@pytest.mark.parametrize(
    ("path", "limits", "kind", "message"),
    [
        ("/redirect/302/6/files/x.xml", "", "redirects", "more than 5 redirects"),
        ("/redirect/302/5/files/x.xml", "", None, None),
        ("/files/x.xml", "max_redirects = 0\nmax_body_bytes = 4096", "too_large", "over 4 KiB"),
        ("/gzip/x.xml", "max_body_bytes = 4096", "too_large", "after decompression"),
        ("/slow", 'fetch_deadline = "2s"', "timeout", "2s (total deadline)"),
        ("/stall", 'read_timeout = "1s"', "timeout", "1s (read)"),
    ],
)
def test_hard_limits_through_the_pipeline(harness, loopback, path, limits, kind, message) -> None:
    loopback.add_file("x.xml", rss(40))
    started = time.monotonic()
    h = harness({"src": loopback.url_for(path)}, limits)
    result = h.poll("src")
    assert time.monotonic() - started < 10
    if kind is None:
        assert result.status == PollStatus.OK
        return
    assert (result.status, result.error_kind) == (PollStatus.FAILED, kind)
    assert message in (result.error_message or "")


# --- 5. hostile XML through the whole poll ---------------------------------------------

PASSWD_LINE = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()[0]
#: what an expanded entity would leave: the laughs, the 100 KB of "x", the passwd file
LEAKS = (PASSWD_LINE, "root:x:0:0", "lollollol", "x" * 200)


def assert_nothing_leaked(output_dir: Path, db_url: str) -> None:
    for path in output_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip

                data = gzip.decompress(data)
            text = data.decode("utf-8", "replace")
            for leak in LEAKS:
                assert leak not in text, (path.name, leak[:20])
    dumped = dump_database(db_url)
    for leak in LEAKS:
        assert leak not in dumped, leak[:20]


def test_hostile_xml_through_poll(tmp_path: Path, loopback: LoopbackServer, db_url: str) -> None:
    loopback.add_file("good.xml", rss(2))
    config = load_config(
        write_config(
            tmp_path,
            db_url,
            {
                "good": loopback.url_for("/files/good.xml"),
                "laughs": loopback.url_for("/billion-laughs"),
                "quadratic": loopback.url_for("/quadratic"),
                "xxe": loopback.url_for("/xxe"),
            },
        )
    )
    started = time.monotonic()
    results = {r.source_id: r for r in poll_once(config, None)}
    assert time.monotonic() - started < 30
    assert results["good"].new == 2
    for sid in ("laughs", "quadratic", "xxe"):
        assert results[sid].status in (PollStatus.OK, PollStatus.FAILED), sid
    assert_nothing_leaked(config.aggregator.output_dir, db_url)
    public = snapshot(config.aggregator.output_dir)
    assert b"secret" in public["news.atom"]  # the xxe item is there, its entity is not


# --- 6. SSRF through poll --------------------------------------------------------------


def test_public_name_redirected_to_loopback_is_blocked(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """In-process ``poll_once`` with a Fetcher whose resolver and classifier are injected.

    ``public.example`` resolves to 127.0.0.1 and that one address counts as
    public (standing in for the internet); every other address is judged as
    usual, so a redirect to 127.0.0.2 (loopback) must be refused.
    """
    import ipaddress
    import socket

    loopback.add_file("feed.xml", rss(2))
    entry = ipaddress.ip_address("127.0.0.1")

    def resolve(host: str, port: int) -> list[str]:
        if host in ("public.example", "localhost"):
            return ["127.0.0.1"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    port = loopback.port
    sources = {
        "public": f"http://public.example:{port}/files/feed.xml",
        "ssrf": f"http://public.example:{port}/redirect-to?code=302"
        f"&url=http://127.0.0.2:{port}/files/feed.xml",
        "ssrf6": f"http://public.example:{port}/redirect-to?code=301&url=http://[::1]:{port}/x",
        "nodns": f"http://nowhere.example:{port}/files/feed.xml",
        "bridge": f"http://127.0.0.1:{port}/redirect-to?url=http://localhost:{port}/files/feed.xml",
    }
    config = load_config(write_config(tmp_path, f"sqlite:///{tmp_path}/agg.db", sources))
    fetcher = Fetcher(
        config.limits, resolve=resolve, classify=lambda ip: ip == entry or is_public(ip)
    )
    with fetcher:
        results = {r.source_id: r for r in poll_once(config, None, fetcher=fetcher)}
    assert results["public"].status == PollStatus.OK  # the staged DNS works
    for sid in ("ssrf", "ssrf6"):
        assert (results[sid].status, results[sid].error_kind) == (PollStatus.FAILED, "blocked")
        assert "loopback" in (results[sid].error_message or "")
    assert results["nodns"].error_kind == "dns"
    # a source the admin configured on loopback is trusted, wherever it redirects
    assert results["bridge"].status == PollStatus.OK
    assert not [r for r in loopback.requests if r.path == "/x"]


# --- 7. every failure typed, stored, shown ---------------------------------------------

FAILURES = {
    # id: (path, kind, words in the message)
    "stall": ("/stall", "timeout", "timed out after 3s (read)"),
    "slow": ("/slow", "timeout", "timed out after 5s (total deadline)"),
    "huge": ("/huge", "too_large", "body over 10 MiB"),
    "bomb": ("/gzipbomb", "too_large", "after decompression"),
    "e500": ("/status/500", "5xx", "HTTP 500 Internal Server Error"),
    "e404": ("/status/404", "4xx", "HTTP 404 Not Found"),
    "r429": ("/429?retry=60", "429", "HTTP 429 Too Many Requests"),
    "gone": ("/status/410", "gone", "HTTP 410 Gone"),
    "html": ("/html", "not_a_feed", "an HTML page, not a feed"),
    "empty": ("/empty", "empty", "the body is empty"),
    "garbage": ("/garbage", "unparseable", "not XML"),
    "loop": ("/redirect/301/9/files/x.xml", "redirects", "more than 5 redirects"),
    "reset": ("/reset", "connect", "connection"),
    "refused": ("REFUSED", "connect", "connection refused"),
}


def test_every_failure_is_typed_stored_and_shown(tmp_path: Path, loopback: LoopbackServer) -> None:
    loopback.add("/garbage", b"\x00\x01\x02 {{ not a feed ]] \xff\xfe", headers={})
    loopback.add_file("x.xml", rss(1))
    refused = f"http://127.0.0.1:{closed_port()}/feed.xml"
    sources = {
        sid: (refused if path == "REFUSED" else loopback.url_for(path))
        for sid, (path, _, _) in FAILURES.items()
    }
    db = f"sqlite:///{tmp_path}/agg.db"
    config = write_config(tmp_path, db, sources)
    before = datetime.now(UTC)
    polled = aggregator("poll", "-c", str(config))
    assert polled.returncode == 1
    lines = lines_by_source(polled.stdout)
    for sid, (_, kind, words) in FAILURES.items():
        assert lines[sid].startswith(f"{sid} failed {kind}: "), lines[sid]
        assert words in lines[sid], lines[sid]

    store = Store.open(db)
    try:
        states = {s.source_id: s for s in store.states()}
    finally:
        store.close()
    for sid, (_, kind, words) in FAILURES.items():
        state = states[sid]
        assert state.error_kind == kind and words in (state.error_message or "")
        assert state.last_poll_at is not None and state.last_poll_at >= before - timedelta(1)
        assert state.status in (PollStatus.FAILED, PollStatus.DISABLED)

    table = aggregator("sources", "-c", str(config)).stdout
    for sid, (_, kind, _) in FAILURES.items():
        row = next(r for r in table.splitlines() if r.startswith(f"│ {sid} "))
        assert (f"{kind}:" in row) or (sid == "gone" and "410 Gone" in row), row


def test_dns_and_blocked_are_typed(tmp_path: Path, loopback: LoopbackServer) -> None:
    """Kinds that need a resolver: in-process with the injected one (no DNS here)."""
    import socket

    def resolve(host: str, port: int) -> list[str]:
        if host == "internal.example":
            return ["10.0.0.7"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    config = load_config(
        write_config(
            tmp_path,
            f"sqlite:///{tmp_path}/agg.db",
            {"nodns": "http://no-such-host.example/feed", "private": "http://internal.example/f"},
        )
    )
    with Fetcher(config.limits, resolve=resolve) as fetcher:
        results = {r.source_id: r for r in poll_once(config, None, fetcher=fetcher)}
    assert results["nodns"].error_kind == "dns"
    assert "no-such-host.example" in (results["nodns"].error_message or "")
    assert results["private"].error_kind == "blocked"
    assert "10.0.0.7" in (results["private"].error_message or "")


# --- 8. nothing lost -------------------------------------------------------------------


def truncated(name: str, fraction: float) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return data[: int(len(data) * fraction)]


BROKEN = {
    "empty body": b"",
    "blank": b"  \n\t\n",
    "html page": HTML_PAGE,
    "garbage": b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff",
    "truncated 5%": truncated(GOOD, 0.05),
    "truncated 40%": truncated(GOOD, 0.4),
    "truncated 75%": truncated(GOOD, 0.75),
    "truncated 99%": truncated(GOOD, 0.99),
    "zero items": (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>emptied</title><id>urn:x</id><updated>2026-03-01T00:00:00Z</updated></feed>"
    ),
    "zero items rss": b'<rss version="2.0"><channel><title>t</title></channel></rss>',
}


@pytest.mark.parametrize("fixture", [GOOD, "cjk__gb2312__softsea.net.rss.xml"])
def test_broken_documents_lose_and_change_nothing(
    tmp_path: Path, loopback: LoopbackServer, fixture: str
) -> None:
    loopback.add("/feed.xml", (FIXTURES / fixture).read_bytes(), etag=False, last_modified=False)
    db = f"sqlite:///{tmp_path}/agg.db"
    config = load_config(write_config(tmp_path, db, {"src": loopback.url_for("/feed.xml")}))
    (first,) = poll_once(config, None)
    assert first.status == PollStatus.OK and first.new > 0
    out = config.aggregator.output_dir
    before = snapshot(out)
    stored = dump_database(db)
    cuts = {
        name: truncated(fixture, float(name.split()[1].rstrip("%")) / 100)
        for name in BROKEN
        if name.startswith("truncated")
    }
    for name, body in {**BROKEN, **cuts}.items():
        loopback.add("/feed.xml", body, etag=False, last_modified=False)
        (result,) = poll_once(config, None)
        assert result.new == 0 and result.updated == 0, (name, result)
        assert feeds_of(snapshot(out)) == feeds_of(before), name
        items_now = [
            line
            for line in dump_database(db).splitlines()
            if line.startswith(("items:", "item_versions:", "item_categories:"))
        ]
        items_before = [
            line
            for line in stored.splitlines()
            if line.startswith(("items:", "item_versions:", "item_categories:"))
        ]
        assert items_now == items_before, name
