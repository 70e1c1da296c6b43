"""The fast evaluation (RE2 sets, the body's text uncollapsed where a pattern cannot tell)
gives what the plain one gives: each rule alone, in order, on the collapsed text, over the
real fixture feeds' items."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import SourceConfig
from aggregator.config.schema import RuleConfig
from aggregator.dedupe import dedupe_feed
from aggregator.errors import ParseError
from aggregator.model import Fetched
from aggregator.parse import parse_feed
from aggregator.rules import (
    BARE,
    ItemView,
    RuleOutcome,
    RuleSet,
    _Fields,
    apply_rules,
    compile_rules,
)
from aggregator.rules.patterns import WHITESPACE, space_blind
from aggregator.sanitize import spaced_text_of_clean, text_of_clean

FIXTURES = Path(
    os.environ.get(
        "AGGREGATOR_FEED_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds",
    )
)
ANY = ("title", "text", "author", "link")


@cache
def fixture_views() -> tuple[ItemView, ...]:
    """Every fixture feed's items as the rules see them at ingest (sanitized bodies)."""
    views: list[ItemView] = []
    for n, path in enumerate(sorted(FIXTURES.glob("*.xml")) + sorted(FIXTURES.glob("*.atom"))):
        fetched = Fetched(
            "http://example.org/feed.xml", 200, path.read_bytes(), {}, datetime.now(UTC), 0.1
        )
        try:
            feed = parse_feed(fetched, tz=ZoneInfo("Asia/Shanghai"))
        except ParseError:
            continue
        source = SourceConfig(
            id=f"{path.name.split('__')[0]}-{n}",
            url=f"http://example.org/{n}.xml",
            categories=("news", "tech") if n % 2 else ("news",),
        )
        for item in dedupe_feed(source, feed).items:
            views.append(
                ItemView(
                    key=item.key,
                    title=item.title,
                    # some carried by another source too (a merged item)
                    sources=(source.id, views[-7].sources[0])
                    if len(views) % 5 == 4 and len(views) > 7
                    else (source.id,),
                    categories=item.categories,
                    content_html=item.content_html,
                    summary_html=item.summary_html,
                    author=item.author,
                    link=item.link,
                )
            )
    return tuple(views)


def plain(rules: RuleSet, view: ItemView) -> RuleOutcome:
    """Each rule alone, in order, on the collapsed text: what the rules mean."""
    body = view.content_html or view.summary_html
    values = {
        "title": view.title,
        "text": text_of_clean(body),
        "content": body or "",
        "author": view.author or "",
        "link": view.link or "",
    }
    categories = set(view.categories)
    effects: list[tuple[int, Any]] = []
    for rule in rules.rules:
        if rule.sources and not any(fnmatchcase(s, g) for s in view.sources for g in rule.sources):
            continue
        if rule.categories and not rule.categories & categories:
            continue
        names = ANY if rule.field == "any" else (rule.field,)
        matched = any(rule.matcher.search(values[n]) for n in names)
        if rule.action == "keep" or (matched and rule.action == "drop"):
            effects.append((rule.number, "keep" if matched and rule.action == "keep" else "drop"))
            if effects[-1][1] == "drop":
                return RuleOutcome(True, values["title"], tuple(sorted(categories)), tuple(effects))
        elif matched and rule.action == "file" and not categories.issuperset(rule.to):
            categories.update(rule.to)
            effects.append((rule.number, "file"))
        elif matched and rule.action == "unfile" and categories.intersection(rule.to):
            categories.difference_update(rule.to)
            effects.append((rule.number, "unfile"))
        elif matched and rule.action == "retitle":
            title = rule.matcher.sub(rule.replace, values["title"]).strip()
            if title and title != values["title"]:
                values["title"] = title
                effects.append((rule.number, "retitle"))
    return RuleOutcome(False, values["title"], tuple(sorted(categories)), tuple(effects))


def varied_rules(views: tuple[ItemView, ...]) -> list[dict[str, Any]]:
    """Rules of every field, action and kind of pattern, with words taken from the items so
    that they match some: a pair of words that a line break or block tag parts in the body
    (the uncollapsed text would miss it), the first and last words (anchors)."""
    texts = [(v, spaced_text_of_clean(v.content_html or v.summary_html)) for v in views]
    parted = next(
        m
        for _, bare in texts
        if (m := re.search(r"([a-z]{3,})((?:[^\S ]|\s\s)\s*)([a-z]{3,})", bare))
    )
    first = next(m.group(0) for _, bare in texts if (m := re.match(r"\s+\w{2,}", bare)))
    last = next(m.group(0) for _, bare in texts if (m := re.search(r"\w{2,}\s+$", bare)))
    cjk = next(m.group(0) for _, bare in texts if (m := re.search(r"[\u4e00-\u9fff]{2}", bare)))
    w1, w2 = re.escape(parted.group(1)), re.escape(parted.group(3))
    return [
        {
            "field": "title",
            "match": r"^\[[^\]]*\]\s*|^【[^】]*】",
            "action": "retitle",
            "replace": "",
        },
        {"field": "text", "match": f"{w1} {w2}", "action": "file", "to": ["a"]},
        {"field": "text", "match": rf"{w1}\s+{w2}", "action": "file", "to": ["b"]},
        {"field": "text", "match": f"^{re.escape(first.strip())}", "action": "file", "to": ["c"]},
        {"field": "text", "match": f"{re.escape(last.strip())}$", "action": "file", "to": ["d"]},
        {"field": "text", "match": f"{cjk}|the|der", "action": "file", "to": ["e"]},
        {"field": "text", "match": "(?-i)The|[0-9]{4}", "action": "file", "to": ["f"]},
        {"field": "text", "match": r"&|<|\xa0|nbsp", "action": "file", "to": ["g"]},
        {"field": "text", "match": r"(\w)\1{2}", "action": "file", "to": ["h"]},  # regex engine
        {"field": "any", "match": "blog|新闻|news", "action": "file", "to": ["i"]},
        {"field": "content", "match": "<img|<a ", "action": "file", "to": ["j"]},
        {"field": "author", "match": r"\w+@\w+", "action": "unfile", "to": ["news"]},
        {"field": "text", "match": "a.c|e[^a-z]s", "action": "unfile", "to": ["a"]},
        {"field": "link", "match": r"\.cn/|blogspot", "action": "file", "to": ["k"]},
        {"match": "^re:|^fw:", "action": "retitle", "replace": ""},
        {"field": "text", "match": "zzz-nothing|qqq", "action": "drop"},
        {"field": "text", "match": "windows|linux|中国", "action": "drop", "sources": ["enc-*"]},
        {"field": "any", "match": "the|的", "action": "keep", "sources": ["cjk-*", "real-*"]},
        {"match": "a", "action": "drop", "categories": ["tech"], "sources": ["zh-*"]},
        {"field": "text", "match": "2013|2022", "action": "drop"},
    ]


def test_fast_evaluation_agrees_with_the_plain_one() -> None:
    views = fixture_views()
    assert len(views) > 300
    tables = varied_rules(views)
    rules = compile_rules([RuleConfig(**t) for t in tables])
    acted: dict[int, int] = {}
    dropped = 0
    for view in views:
        expected = plain(rules, view)
        assert apply_rules(rules, view) == expected, view.key
        dropped += expected.dropped
        for number, _ in expected.effects:
            acted[number] = acted.get(number, 0) + 1
    # not vacuous: drops and keeps happened, and every rule of the mix acted on some item,
    # the ones a collapsed text tells apart (a pair a line parts, the anchors) included
    assert 0 < dropped < len(views)
    assert set(acted) >= {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 14, 17, 18}, acted
    # the fast path's shortcut is taken by some text patterns and not by others
    text_rules = [r for r in rules.rules if r.field in ("text", "any")]
    assert {r.matcher.space_blind for r in text_rules if r.matcher.engine == "re2"} == {
        True,
        False,
    }


def test_text_given_by_the_reader_gives_the_same() -> None:
    """A reader that has the collapsed text (``ItemView.text``) gets the same outcomes."""
    from dataclasses import replace

    views = fixture_views()
    rules = compile_rules([RuleConfig(**t) for t in varied_rules(views)])
    for view in views:
        with_text = replace(view, text=text_of_clean(view.content_html or view.summary_html))
        assert apply_rules(rules, with_text) == apply_rules(rules, view), view.key


def test_text_given_as_utf8_gives_the_same() -> None:
    """A reader that has the collapsed text as UTF-8 (``ItemView.text_utf8``, as a store
    reads it) gets the same outcomes as one given it as a string, and the rules read those
    bytes (a view without a body matches on them)."""
    from dataclasses import replace

    views = fixture_views()
    rules = compile_rules([RuleConfig(**t) for t in varied_rules(views)])
    for view in views:
        text = text_of_clean(view.content_html or view.summary_html)
        as_str = apply_rules(rules, replace(view, text=text))
        assert apply_rules(rules, replace(view, text_utf8=text.encode())) == as_str, view.key
    bodiless = ItemView("k", "t", ("s",), ("news",), text_utf8="a 中文 chip".encode())
    reading = compile_rules(
        [
            RuleConfig(field="text", match="中文 chip", action="file", to=["a"]),  # collapsed
            RuleConfig(field="text", match="中文", action="file", to=["b"]),  # bare (blind)
            RuleConfig(field="text", match=r"中文(?=\s+chip)", action="file", to=["c"]),  # regex
        ]
    )
    assert apply_rules(reading, bodiless).categories == ("a", "b", "c", "news")
    # and RE2 is handed those very bytes, not the text decoded and encoded again
    assert _Fields(bodiless).data(BARE) is _Fields(bodiless).data("text") is bodiless.text_utf8


@pytest.mark.parametrize(
    ("pattern", "blind"),
    [
        ("赌博|casino", True),
        (r"never-seen-token", True),
        (r"\w+\d{2,}[a-z0-9_]", True),
        (r"(?:ab|cd)+?x*", True),
        ("a b", False),
        (r"a\sb", False),
        (r"a\Sb", False),
        ("a.b", False),
        ("^ab", False),
        ("ab$", False),
        (r"\bab", False),
        (r"[^a]", False),
        (r"a[\u3000]", False),
        (r"a[\x00-\x7f]", False),
        (r"\W", False),
        ("(?x) a b ", True),  # verbose: the spaces are not part of it
    ],
)
def test_space_blind(pattern: str, blind: bool) -> None:
    assert space_blind(pattern) is blind


def test_whitespace_is_what_split_takes() -> None:
    assert {c for c in range(0x110000) if chr(c).isspace()} == WHITESPACE
