"""The feed server over real HTTP: validators, 304s, gzip, HEAD, types, 404s, traversal.

The files are written by the real writers (``aggregator.write`` renderers and
``replace_with_gzip``); the server is the real uvicorn app in a thread on a
free loopback port. ``write_site``, ``site`` and ``served`` are shared with
test_serve_*.py, test_browser.py and test_newsboat.py.
"""

from __future__ import annotations

import gzip
import http.client
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest

from aggregator.config import Config, load_config
from aggregator.model import Category, CategoryInfo, Entry
from aggregator.serve import ServerHandle
from aggregator.serve.files import RECHECK_SECONDS, FileCache, accepts_gzip, file_name
from aggregator.write import (
    ALL_FEED,
    feed_meta,
    render_atom,
    render_index,
    render_opml,
    replace_with_gzip,
)
from aggregator.write.jsonfeed import render_json
from aggregator.write.page import render_page
from aggregator.write.rss import render_rss
from aggregator.write.snapshot import take_snapshot

CST = timezone(timedelta(hours=8))
SEED_TITLE = "科技金融+组团发展 内江高新区力造百亿级产业集群"

CATEGORIES = (
    Category("kejiribao", "科技日报新闻", "Science and Technology Daily"),
    Category("zhengquanshibao", "证券时报新闻"),
    Category("world", "World <&> News"),
)


def _entry(n: int, cats: tuple[str, ...], title: str, infocode: str | None = None) -> Entry:
    published = datetime(2022, 5, 25, 16, 53, 43, tzinfo=CST) - timedelta(hours=n)
    return Entry(
        key=f"ic:{infocode}" if infocode else f"src:demo:guid:{n}",
        infocode=infocode,
        title=title,
        link=f"https://example.org/news/{n}.html",
        content_html=f"<p>{title}：正文第{n}段。</p>",
        content_raw=None,
        summary_html=None,
        author="科技日报" if "kejiribao" in cats else None,
        published=published,
        updated=published,
        categories=cats,
    )


ENTRIES = (
    _entry(0, ("kejiribao",), SEED_TITLE, "NW202205252391675717"),
    _entry(1, ("kejiribao", "zhengquanshibao"), "创新驱动 高质量发展", "NW202205252391675718"),
    _entry(2, ("zhengquanshibao",), "A股三大指数集体收涨"),
    _entry(3, ("kejiribao",), "Quantum sensors reach the field"),
    _entry(4, ("world",), "Markets close higher"),
)


def config_file(tmp_path: Path, listen: str = "127.0.0.1:0", **aggregator: str) -> Path:
    """A real config file: the categories above, one source, SQLite beside it."""
    settings = {
        "database": "sqlite:///var/aggregator.db",
        "output_dir": "public",
        "base_url": "http://127.0.0.1:8080/",
        "title": "测试聚合",
        **aggregator,
    }
    lines = ["[aggregator]", *(f'{k} = "{v}"' for k, v in settings.items())]
    lines += ["[server]", f'listen = "{listen}"', 'cache_max_age = "2m"']
    for c in CATEGORIES:
        lines += [f"[categories.{c.id}]", f'title = "{c.title}"']
    lines += [
        "[[sources]]",
        'id = "kjrb"',
        'url = "https://example.org/kjrb.xml"',
        'categories = ["kejiribao"]',
        "[[sources]]",
        'id = "zqsb"',
        'url = "https://example.org/zqsb.xml"',
        'categories = ["zhengquanshibao"]',
        "[[sources]]",
        'id = "off"',
        'url = "https://example.org/off.xml"',
        'categories = ["world"]',
        "enabled = false",
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "aggregator.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_site(config: Config, entries: tuple[Entry, ...] = ENTRIES) -> list[CategoryInfo]:
    """Every output, as ``write_outputs`` would write it; returns the index rows."""
    settings = config.aggregator
    out = settings.output_dir
    by_id = {c.id: c for c in CATEGORIES}
    newest_first = sorted(entries, key=lambda e: e.published, reverse=True)
    rows = []
    empty = datetime(2000, 1, 1, tzinfo=CST)
    for c in CATEGORIES:
        mine = [e for e in newest_first if c.id in e.categories]
        replace_with_gzip(
            out / f"{c.id}.atom", render_atom(feed_meta(c, settings, empty), mine, by_id, settings)
        )
        snapshot = take_snapshot(feed_meta(c, settings, empty), mine, by_id, settings.base_url)
        replace_with_gzip(out / f"{c.id}.rss", render_rss(snapshot, settings))
        replace_with_gzip(out / f"{c.id}.json", render_json(snapshot, settings))
        replace_with_gzip(out / f"{c.id}.html", render_page(snapshot, settings, settings.formats))
        rows.append(
            CategoryInfo(
                c.id,
                c.title,
                c.description,
                len(mine),
                max((e.updated for e in mine), default=None),
            )
        )
    replace_with_gzip(
        out / f"{ALL_FEED}.atom",
        render_atom(feed_meta(None, settings, empty), newest_first, by_id, settings),
    )
    replace_with_gzip(out / "index.html", render_index(rows, settings))
    replace_with_gzip(out / "index.opml", render_opml(rows, settings))
    return rows


@dataclass
class Site:
    config: Config
    out: Path
    rows: list[CategoryInfo]


def make_site(tmp_path: Path, listen: str = "127.0.0.1:0") -> Site:
    """A config file in ``tmp_path`` and every output written under its ``public/``."""
    config = load_config(config_file(tmp_path, listen))
    rows = write_site(config)
    return Site(config, config.aggregator.output_dir, rows)


def settle() -> None:
    """Wait until the server looks at the files on disk again (files.RECHECK_SECONDS)."""
    time.sleep(RECHECK_SECONDS + 0.05)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  #: lower-case names; a repeated header's values joined by ", "
    body: bytes


def fetch(
    handle: ServerHandle, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> Answer:
    """One request, the path sent byte for byte as given (no normalisation, no decoding)."""
    conn = http.client.HTTPConnection(handle.host, handle.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        got: dict[str, str] = {}
        for name, value in response.getheaders():
            key = name.lower()
            got[key] = f"{got[key]}, {value}" if key in got else value
        return Answer(response.status, got, body)
    finally:
        conn.close()


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/", "index.html"),
        ("/index.html", "index.html"),
        ("/index.opml", "index.opml"),
        ("/all.atom", "all.atom"),
        ("/kejiribao.atom", "kejiribao.atom"),
        ("/a_b-9.atom", "a_b-9.atom"),
        ("/kejiribao.rss", "kejiribao.rss"),
        ("/all.json", "all.json"),
        ("/kejiribao.html", "kejiribao.html"),
        ("/health.atom", "health.atom"),
        ("/status.html", "status.html"),
        ("/kejiribao.xml", None),
        ("/kejiribao.json.gz", None),
        ("", None),
        ("/index.htm", None),
        ("/Kejiribao.atom", None),
        ("/kejiribao.atom/", None),
        ("/kejiribao.atom.gz", None),
        ("/index.html.gz", None),
        ("/../etc/passwd", None),
        ("/../x.atom", None),
        ("//x.atom", None),
        ("/sub/x.atom", None),
        ("/.atom", None),
        ("/x.atom\n", None),
        ("/" + "a" * 101 + ".atom", None),
    ],
)
def test_file_name_admits_only_known_names(path: str, name: str | None) -> None:
    assert file_name(path) == name


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        (b"", False),
        (b"gzip", True),
        (b"gzip, deflate, br", True),
        (b"deflate, gzip;q=0.5", True),
        (b"GZIP", True),
        (b"x-gzip", True),
        (b"br", False),
        (b"identity", False),
        (b"gzip;q=0", False),
        (b"gzip; q=0.000", False),
        (b"*", True),
        (b"*;q=0", False),
        (b"*, gzip;q=0", False),
        (b"gzip;q=0, *", False),
        (b"br, *;q=0.1", True),
    ],
)
def test_accepts_gzip(header: bytes | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


def test_file_cache_looks_again_only_after_recheck(tmp_path: Path) -> None:
    feed = tmp_path / "a.atom"
    replace_with_gzip(feed, b"<feed>one</feed>")
    patient, eager = FileCache(tmp_path, 60, recheck=60), FileCache(tmp_path, 60, recheck=0)
    for cache in (patient, eager):
        assert cache.fresh("a.atom") == (None, True)
        assert cache.load("a.atom") is not None
    first = patient.fresh("a.atom")[0]
    assert first is not None and first.body == b"<feed>one</feed>"
    replace_with_gzip(feed, b"<feed>two</feed>")
    assert patient.fresh("a.atom") == (first, True)  # within its minute: no stat
    assert eager.fresh("a.atom") == (None, True)  # changed: load again
    new = eager.load("a.atom")
    assert new is not None and new.body == b"<feed>two</feed>" and new.etag != first.etag
    assert gzip.decompress(new.gz) == new.body
    feed.unlink()
    assert eager.fresh("a.atom") == (None, False)
    assert FileCache(tmp_path, 60).fresh("missing.atom") == (None, False)


# ---------------------------------------------------------------- over HTTP


@pytest.mark.parametrize(
    ("path", "file", "content_type"),
    [
        ("/kejiribao.atom", "kejiribao.atom", "application/atom+xml; charset=utf-8"),
        ("/all.atom", "all.atom", "application/atom+xml; charset=utf-8"),
        ("/kejiribao.rss", "kejiribao.rss", "application/rss+xml; charset=utf-8"),
        ("/kejiribao.json", "kejiribao.json", "application/feed+json; charset=utf-8"),
        ("/kejiribao.html", "kejiribao.html", "text/html; charset=utf-8"),
        ("/index.opml", "index.opml", "text/x-opml; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/", "index.html", "text/html; charset=utf-8"),
    ],
)
def test_files_are_served_with_validators(
    site: Site, served: ServerHandle, path: str, file: str, content_type: str
) -> None:
    answer = fetch(served, path)
    on_disk = site.out / file
    assert answer.status == 200
    assert answer.body == on_disk.read_bytes()
    assert answer.headers["content-type"] == content_type
    assert answer.headers["content-length"] == str(len(answer.body))
    assert answer.headers["cache-control"] == "max-age=120"
    assert answer.headers["vary"].lower() == "accept-encoding"
    assert "content-encoding" not in answer.headers
    etag = answer.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    modified = parsedate_to_datetime(answer.headers["last-modified"])
    assert int(modified.timestamp()) == int(on_disk.stat().st_mtime)
    assert "server" not in answer.headers


def test_the_seed_article_is_in_its_feed(served: ServerHandle) -> None:
    body = fetch(served, "/kejiribao.atom").body.decode("utf-8")
    assert SEED_TITLE in body
    assert "urn:infocode:NW202205252391675717" in body


def test_etag_is_stable_and_distinct_per_file(served: ServerHandle) -> None:
    first = fetch(served, "/kejiribao.atom").headers["etag"]
    assert fetch(served, "/kejiribao.atom").headers["etag"] == first
    assert fetch(served, "/all.atom").headers["etag"] != first


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        "W/{etag}",
        '"nope", {etag}',
        '"nope",W/{etag}',
        "*",
        "{gz_etag}",
    ],
)
def test_if_none_match_gives_304(served: ServerHandle, if_none_match: str) -> None:
    full = fetch(served, "/kejiribao.atom")
    gz = fetch(served, "/kejiribao.atom", headers={"Accept-Encoding": "gzip"})
    value = if_none_match.format(etag=full.headers["etag"], gz_etag=gz.headers["etag"])
    answer = fetch(served, "/kejiribao.atom", headers={"If-None-Match": value})
    assert answer.status == 304
    assert answer.body == b""
    assert answer.headers["etag"] == full.headers["etag"]
    assert answer.headers["vary"].lower() == "accept-encoding"
    assert answer.headers["cache-control"] == "max-age=120"
    assert "content-length" not in answer.headers or answer.headers["content-length"] == "0"
    assert "transfer-encoding" not in answer.headers


def test_if_none_match_mismatch_gives_200(served: ServerHandle) -> None:
    answer = fetch(served, "/kejiribao.atom", headers={"If-None-Match": '"other", W/"x"'})
    assert answer.status == 200 and answer.body


def test_if_modified_since(site: Site, served: ServerHandle) -> None:
    last_modified = fetch(served, "/all.atom").headers["last-modified"]
    mtime = (site.out / "all.atom").stat().st_mtime
    for value, status in [
        (last_modified, 304),
        (formatdate(mtime + 3600, usegmt=True), 304),
        (formatdate(mtime - 3600, usegmt=True), 200),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 200),  # RFC 850 form, long ago
        ("not a date", 200),
    ]:
        answer = fetch(served, "/all.atom", headers={"If-Modified-Since": value})
        assert answer.status == status, value
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3)
    answer = fetch(
        served, "/all.atom", headers={"If-Modified-Since": last_modified, "If-None-Match": '"x"'}
    )
    assert answer.status == 200


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("kejiribao.atom", "application/atom+xml; charset=utf-8"),
        ("kejiribao.rss", "application/rss+xml; charset=utf-8"),
        ("kejiribao.json", "application/feed+json; charset=utf-8"),
    ],
)
def test_gzip_when_accepted(site: Site, served: ServerHandle, name: str, content_type: str) -> None:
    plain = fetch(served, f"/{name}")
    answer = fetch(served, f"/{name}", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert answer.status == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["vary"].lower() == "accept-encoding"
    assert answer.headers["content-type"] == content_type
    assert answer.headers["content-length"] == str(len(answer.body))
    assert gzip.decompress(answer.body) == plain.body
    # the precompressed twin is served as it is, not compressed again
    assert answer.body == (site.out / f"{name}.gz").read_bytes()
    # each representation has its own strong validator
    assert answer.headers["etag"] != plain.headers["etag"]
    again = fetch(
        served,
        f"/{name}",
        headers={"Accept-Encoding": "gzip", "If-None-Match": answer.headers["etag"]},
    )
    assert again.status == 304 and again.headers["etag"] == answer.headers["etag"]
    refused = fetch(served, f"/{name}", headers={"Accept-Encoding": "gzip;q=0, br"})
    assert "content-encoding" not in refused.headers and refused.body == plain.body


def test_stale_or_missing_gzip_twin_is_not_served(site: Site, served: ServerHandle) -> None:
    feed = site.out / "world.atom"
    twin = site.out / "world.atom.gz"
    twin.write_bytes(gzip.compress(b"an older version"))
    answer = fetch(served, "/world.atom", headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(answer.body) == feed.read_bytes()
    twin.unlink()
    os.utime(feed, ns=(time.time_ns(), time.time_ns() + 10**9))  # make the server look again
    settle()
    answer = fetch(served, "/world.atom", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert gzip.decompress(answer.body) == feed.read_bytes()


@pytest.mark.parametrize(
    "path", ["/kejiribao.atom", "/kejiribao.rss", "/kejiribao.json", "/", "/index.opml"]
)
def test_head_has_the_headers_of_get_and_no_body(served: ServerHandle, path: str) -> None:
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        get = fetch(served, path, headers=headers)
        head = fetch(served, path, method="HEAD", headers=headers)
        assert head.status == 200
        assert head.body == b""
        get.headers.pop("date", None)
        head.headers.pop("date", None)
        assert head.headers == get.headers
    conditional = fetch(
        served, path, method="HEAD", headers={"If-None-Match": fetch(served, path).headers["etag"]}
    )
    assert conditional.status == 304


@pytest.mark.parametrize(
    "path",
    [
        "/nope.atom",
        "/index.htm",
        "/favicon.ico",
        "/kejiribao.atom.gz",
        "/index.html.gz",
        "/kejiribao.atom/",
        "/kejiribao",
        "/public/",
        "/.",
        "/..",
        "/../etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%2f..%2fetc%2fpasswd",
        "/..%252f..%252fetc%252fpasswd",
        "//etc/passwd",
        "///etc/passwd",
        "/%2fetc%2fpasswd",
        "/..%5c..%5cetc%5cpasswd",
        "/%00.atom",
        "/kejiribao.atom%00.html",
        "/aggregator.toml",
        "/var/aggregator.db",
        "/../aggregator.toml",
        "/%2e%2e/aggregator.toml",
        "/%2e%2e%2faggregator.toml",
    ],
)
def test_unknown_names_and_traversal_get_404(served: ServerHandle, path: str) -> None:
    answer = fetch(served, path)
    assert answer.status in (400, 404), path
    assert b"root:" not in answer.body
    assert b"[aggregator]" not in answer.body
    assert b"<" not in answer.body  # no listing, no feed, no page


def test_no_directory_listing_and_no_index_page(site: Site, served: ServerHandle) -> None:
    (site.out / "index.html").unlink()
    (site.out / "folder.atom").mkdir()
    assert fetch(served, "/").status == 404
    assert fetch(served, "/index.html").status == 404
    assert fetch(served, "/folder.atom").status == 404


def test_a_symlink_out_of_output_dir_is_not_needed_to_escape(
    site: Site, served: ServerHandle
) -> None:
    # only the regex-checked name is looked up, directly under output_dir
    (site.out.parent / "secret.atom").write_text("secret")
    assert fetch(served, "/../secret.atom").status == 404
    assert fetch(served, "/%2e%2e/secret.atom").status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405(served: ServerHandle, method: str) -> None:
    for path in ("/kejiribao.atom", "/", "/healthz", "/metrics"):
        answer = fetch(served, path, method=method)
        assert answer.status == 405, (method, path)
        assert answer.headers["allow"] == "GET, HEAD"
    assert fetch(served, "/nope.txt", method="POST").status == 404


def test_a_replaced_file_is_served_fresh(site: Site, served: ServerHandle) -> None:
    before = fetch(served, "/kejiribao.atom")
    newer = (
        _entry(-1, ("kejiribao",), "新的一篇", "NW202205262391675719"),
        *ENTRIES,
    )
    write_site(site.config, newer)
    settle()
    after = fetch(served, "/kejiribao.atom")
    assert after.status == 200
    assert "新的一篇" in after.body.decode()
    assert after.body == (site.out / "kejiribao.atom").read_bytes()
    assert after.headers["etag"] != before.headers["etag"]
    stale = fetch(served, "/kejiribao.atom", headers={"If-None-Match": before.headers["etag"]})
    assert stale.status == 200
    gz = fetch(served, "/kejiribao.atom", headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.body) == after.body
    # a same-size rewrite in the same mtime tick still changes the inode (atomic replace)
    fresh = fetch(served, "/kejiribao.atom", headers={"If-None-Match": after.headers["etag"]})
    assert fresh.status == 304


def test_a_deleted_file_is_gone(site: Site, served: ServerHandle) -> None:
    assert fetch(served, "/world.atom").status == 200
    (site.out / "world.atom").unlink()
    settle()
    assert fetch(served, "/world.atom").status == 404


def test_keep_alive_serves_many_answers_on_one_connection(served: ServerHandle) -> None:
    conn = http.client.HTTPConnection(served.host, served.port, timeout=10)
    try:
        etag = None
        for _ in range(20):
            conn.request("GET", "/all.atom", headers={"If-None-Match": etag or '"x"'})
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 304)
            etag = response.getheader("etag")
        assert response.status == 304
    finally:
        conn.close()
