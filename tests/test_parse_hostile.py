"""Hostile documents: entity bombs, XXE, and parses that must stay inside their budget."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import load_config
from aggregator.dedupe import dedupe_feed
from aggregator.errors import EmptyFeed, Unparseable
from aggregator.model import Fetched, ParsedFeed, SourceRef
from aggregator.parse import budget, parse_feed
from aggregator.parse.budget import run_with_budget
from aggregator.parse.feed import INLINE_MAX_BYTES, _parse_then, parse_document
from aggregator.parse.xmlsafe import make_safe

TZ = ZoneInfo("Asia/Shanghai")


def parse(body: bytes | str, **kwargs: object) -> ParsedFeed:
    if isinstance(body, str):
        body = body.encode("utf-8")
    fetched = Fetched("http://example.org/feed.xml", 200, body, {}, datetime.now(UTC), 0.1)
    return parse_feed(fetched, tz=TZ, **kwargs)  # type: ignore[arg-type]


def texts(feed: ParsedFeed) -> list[str]:
    """Every string the parse produced."""
    out = [feed.title or "", feed.link or "", *feed.warnings]
    for item in feed.items:
        out += [
            getattr(item, f) or ""
            for f in ("guid", "link", "title", "content", "summary", "author")
        ]
    return out


def timed(body: bytes | str) -> tuple[ParsedFeed, float]:
    start = time.perf_counter()
    feed = parse(body)
    return feed, time.perf_counter() - start


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'
        for n in range(1, 10)
    )
    + ']>\n<rss version="2.0"><channel><title>&lol9;</title>'
    "<item><title>laugh &lol9;</title><description>&lol9;&lol8;</description></item>"
    "</channel></rss>"
)


def test_billion_laughs_is_inert() -> None:
    feed, seconds = timed(BILLION_LAUGHS)
    assert seconds < 1.0
    assert feed.items[0].title == "laugh"
    assert all("lollol" not in t for t in texts(feed))
    assert any("10 entity declarations" in w for w in feed.warnings)


def quadratic_blowup() -> str:
    """~244 KiB: one 100 KB entity referenced 50,000 times (5 GB if expanded)."""
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY a "'
        + "A" * 100_000
        + '">]>\n<rss version="2.0"><channel><title>q</title><item><title>t</title><description>'
        + "&a;" * 50_000
        + "</description></item></channel></rss>"
    )


def test_quadratic_blowup_is_inert_and_fast() -> None:
    doc = quadratic_blowup()
    assert 240 * 1024 < len(doc) < 250 * 1024
    start = time.perf_counter()
    inline = parse_document(doc.encode(), None, "http://example.org/", None, TZ, None, 1000)
    assert time.perf_counter() - start < 1.0
    feed, seconds = timed(doc)  # in a child: large bodies go to the pool
    assert seconds < 2.0, seconds
    assert feed == inline
    assert [i.title for i in feed.items] == ["t"]
    assert all("A" * 1000 not in t for t in texts(feed))


def test_quadratic_blowup_on_the_lenient_path() -> None:
    # Ill-formed too (unclosed <p>, stray </b>): feedparser's loose parser, which
    # re-expands the entities expat refused, must find none to expand.
    doc = quadratic_blowup().replace("<title>t</title>", "<title>t &amp; <p>x</b></title>")
    feed, seconds = timed(doc)
    assert seconds < 2.0, seconds
    assert all("A" * 1000 not in t for t in texts(feed))


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE rss [<!ENTITY xxe PUBLIC "-//x//y" "file:///etc/passwd">]>',
        '<!DOCTYPE rss SYSTEM "file:///etc/passwd">',
        '<!DOCTYPE rss [<!ENTITY % pe SYSTEM "file:///etc/passwd"> %pe;]>',
        "<!DOCTYPE rss [<!ENTITY % d \"<!ENTITY xxe SYSTEM 'file:///etc/passwd'>\"> %d;]>",
        '<!DOCTYPE rss [<!ENTITY % pe SYSTEM "http://127.0.0.1:9/evil.dtd"> %pe;]>',
    ],
)
def test_external_and_parameter_entities_are_never_read(doctype: str) -> None:
    doc = (
        f'<?xml version="1.0"?>\n{doctype}\n<rss version="2.0"><channel><title>&xxe;</title>'
        "<item><title>x&xxe;</title><link>http://example.org/&xxe;</link>"
        "<description>&xxe;</description><author>&xxe;</author></item></channel></rss>"
    )
    feed, seconds = timed(doc)
    assert seconds < 1.0
    assert feed.items[0].title in ("x", "x&xxe;")
    for text in texts(feed):
        assert "root:" not in text and "/bin/" not in text


def test_doctype_subset_with_tricky_quotes_and_comments() -> None:
    doc = (
        '<?xml version="1.0"?><!DOCTYPE rss [\n <!ENTITY a "x]>y"> <!-- ]> -->\n'
        ' <!ENTITY b \'q">\'> <?pi ]> ?>\n]><rss version="2.0"><channel><title>T&a;&b;</title>'
        "</channel></rss>"
    )
    assert parse(doc).title == "T"


def test_unterminated_doctype_is_unparseable() -> None:
    with pytest.raises(Unparseable):
        parse('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x"><rss><channel/></rss>')


def test_entity_declared_after_the_root_is_not_expanded() -> None:
    doc = (
        '<rss version="2.0"><!DOCTYPE x [<!ENTITY a "EXPANDED">]><channel><title>t&a;</title>'
        "<item><title>i&a;</title></item></channel></rss>"
    )
    feed = parse(doc)
    assert all("EXPANDED" not in t for t in texts(feed))


def test_html_entities_still_decode() -> None:
    doc = (
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">'
        '<rss version="0.91"><channel><title>a&nbsp;b &copy; c&hellip;</title></channel></rss>'
    )
    assert parse(doc).title == "a b © c…"


def test_scrubbed_document_has_no_doctype_and_no_custom_references() -> None:
    safe = make_safe(BILLION_LAUGHS)
    text = safe.data.decode("utf-8")
    assert safe.root == "rss"
    assert "<!DOCTYPE" not in text and "<!ENTITY" not in text and "&lol" not in text
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')


def test_illegal_characters_are_dropped() -> None:
    doc = '<rss version="2.0"><channel><title>a\x00b\x1bc&#0;d&#x1F;e</title></channel></rss>'
    assert parse(doc).title == "abcde"


def test_deep_nesting_does_not_crash() -> None:
    depth = 20_000
    doc = '<rss version="2.0"><channel><title>deep</title><item><title>i</title><description>'
    doc += "<div>" * depth + "x" + "</div>" * depth + "</description></item></channel></rss>"
    feed, seconds = timed(doc)
    assert seconds < 5.0
    assert feed.title == "deep"


def junk_feed(unit: str, size: int) -> str:
    head = '<rss version="2.0"><channel><title>j</title><item><title>i</title>'
    tail = "</item></channel></rss>"
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


@pytest.mark.parametrize(
    "unit",
    ["<a ", "<![CD", "<!--", "&", "<", "]]>", "<div>", "&a;"],
    ids=[
        "open-tags",
        "cdata-starts",
        "comment-starts",
        "ampersands",
        "less-thans",
        "cdata-ends",
        "unclosed-divs",
        "undefined-refs",
    ],
)
def test_pathological_input_is_bounded(unit: str) -> None:
    # Small enough to parse in the calling thread: fast enough there (~0.3 s at
    # worst on an idle machine; the bound leaves room for a loaded CI runner).
    small = junk_feed(unit, INLINE_MAX_BYTES)
    start = time.perf_counter()
    with contextlib.suppress(Unparseable):
        parse(small)
    assert time.perf_counter() - start < 3.0
    # Large: parsed in a child, cut off at its budget.
    start = time.perf_counter()
    with contextlib.suppress(Unparseable):
        parse(junk_feed(unit, 400 * 1024), timeout=1.0)
    assert time.perf_counter() - start < 4.0


# --- the time budget -----------------------------------------------------------


def big_feed(items: int = 300) -> bytes:
    entries = "".join(
        f"<item><title>Item {n}</title><guid>g{n}</guid><pubDate>2022-05-25 16:53:43</pubDate>"
        f"<description>&lt;p&gt;{'x' * 300}&lt;/p&gt;</description></item>"
        for n in range(items)
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>big</title>'
    return f"{head}{entries}</channel></rss>".encode()


def test_large_body_is_parsed_in_a_child_with_the_same_result() -> None:
    body = big_feed()
    assert len(body) > INLINE_MAX_BYTES
    feed = parse(body, max_items=250)
    inline = parse_document(body, None, "http://example.org/feed.xml", None, TZ, None, 250)
    assert feed == inline
    assert len(feed.items) == 250
    assert feed.items[0].published == datetime(2022, 5, 25, 16, 53, 43, tzinfo=TZ)


def test_large_body_over_budget_is_unparseable() -> None:
    body = junk_feed("<a ", 400 * 1024)  # minutes of work for feedparser
    start = time.perf_counter()
    with pytest.raises(Unparseable, match=r"parse exceeded 0\.3s"):
        parse(body, timeout=0.3)
    assert time.perf_counter() - start < 2.0


def test_budget_kills_a_runaway_call() -> None:
    start = time.perf_counter()
    with pytest.raises(Unparseable, match="exceeded 0.5s"):
        run_with_budget(time.sleep, 30, timeout=0.5)
    assert time.perf_counter() - start < 3.0


def test_budget_passes_parse_errors_through() -> None:
    with pytest.raises(EmptyFeed):
        run_with_budget(parse_document, b"   ", None, "", None, TZ, None, 10, timeout=20)


def test_budget_reports_a_dead_child() -> None:
    with pytest.raises(Unparseable, match="exit 3"):
        run_with_budget(os._exit, 3, timeout=20)


def test_budget_caps_memory() -> None:
    with pytest.raises(Unparseable, match="memory limit"):
        run_with_budget(bytearray, 3 * 1024**3, timeout=20)


@contextlib.contextmanager
def fresh_pool() -> Iterator[budget._Pool]:
    """A pool of its own: no child another test has used (and loaded modules into)."""
    pool = budget._Pool()
    try:
        yield pool
    finally:
        pool.close()


def test_a_child_that_grew_is_replaced_and_one_that_did_not_is_kept() -> None:
    with fresh_pool() as pool:
        first = pool.run(os.getpid, (), 20)
        assert pool.run(os.getpid, (), 20) == first  # warm: the same interpreter again
        grow = f"len(b'x' * {budget.RETIRE_RSS + 32 * 1024**2})"  # touches every page
        assert pool.run(eval, (grow,), 20) > budget.RETIRE_RSS
        assert pool.run(os.getpid, (), 20) != first


def test_a_child_parses_and_dedupes_without_the_config_schema(tmp_path: Path) -> None:
    """What a parse child unpickles (the dedupe call, its source) needs no pydantic: each
    child would import it (~0.15 s of CPU) only to rebuild a config object."""
    path = tmp_path / "aggregator.toml"
    path.write_text(
        '[categories.news]\ntitle = "News"\n'
        '[[sources]]\nid = "s"\nurl = "http://example.org/f"\ncategories = ["news"]\n'
    )
    config = load_config(path)
    then = partial(dedupe_feed, SourceRef.of(config.sources[0]))
    args = (big_feed(), None, "http://example.org/f", None, TZ, None, 1000)
    with fresh_pool() as pool:
        deduped = pool.run(_parse_then, (then, *args), 20)
        assert len(deduped.items) == 300
        assert deduped.items[0].key == "src:s:guid:g0"
        assert pool.run(eval, ("'pydantic' in __import__('sys').modules",), 20) is False
