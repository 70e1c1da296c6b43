"""The rules decider: every action, field and scope, as tables; bounded matching."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import pytest

from aggregator.config.schema import RuleConfig
from aggregator.rules import (
    ItemView,
    RuleOutcome,
    apply_rules,
    compile_pattern,
    compile_rules,
    rules_digest,
)


def view(**kw: Any) -> ItemView:
    base: dict[str, Any] = {
        "key": "k1",
        "title": "Hello world",
        "sources": ("em-a",),
        "categories": ("news",),
        "content_html": "<p>Body <b>text</b> &amp; more</p>",
        "author": "Reuters",
        "link": "https://example.org/a/1",
    }
    base.update(kw)
    return ItemView(**base)


def run(rules: list[dict[str, Any]], **kw: Any) -> RuleOutcome:
    return apply_rules(compile_rules([RuleConfig(**r) for r in rules]), view(**kw))


CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], tuple[bool, str, tuple[str, ...]]]] = [
    ("no rules", [], {}, (False, "Hello world", ("news",))),
    (
        "drop on title",
        [{"match": "广告|推广", "action": "drop"}],
        {"title": "【广告】买"},
        (True, "【广告】买", ("news",)),
    ),
    ("drop misses", [{"match": "广告", "action": "drop"}], {}, (False, "Hello world", ("news",))),
    (
        "case-insensitive",
        [{"match": "HELLO", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "(?-i) makes it sensitive",
        [{"match": "(?-i)HELLO", "action": "drop"}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "(?-i:…) scoped",
        [{"match": "(?-i:H)ELLO", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "(?-i:…) scoped misses",
        [{"match": "(?-i:h)ello", "action": "drop"}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "keep matching",
        [{"match": "world", "action": "keep"}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "keep drops the rest",
        [{"match": "mars", "action": "keep"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "keep out of scope",
        [{"match": "mars", "action": "keep", "sources": ["other-*"]}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "file",
        [{"match": "world", "action": "file", "to": ["tech"]}],
        {},
        (False, "Hello world", ("news", "tech")),
    ),
    (
        "unfile",
        [{"match": "world", "action": "unfile", "to": ["news"]}],
        {},
        (False, "Hello world", ()),
    ),
    (
        "retitle",
        [{"match": r"^【广告】", "action": "retitle", "replace": ""}],
        {"title": "【广告】Deal"},
        (False, "Deal", ("news",)),
    ),
    (
        "retitle groups",
        [{"match": r"(\w+) (\w+)", "action": "retitle", "replace": r"\2 \1"}],
        {},
        (False, "world Hello", ("news",)),
    ),
    (
        "retitle never blank",
        [{"match": ".*", "action": "retitle", "replace": ""}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "field text is plain",
        [{"field": "text", "match": "text & more", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "field text no tags",
        [{"field": "text", "match": "<b>", "action": "drop"}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "field content is HTML",
        [{"field": "content", "match": "<b>text", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "field content falls back to summary",
        [{"field": "content", "match": "digest", "action": "drop"}],
        {"content_html": None, "summary_html": "a digest"},
        (True, "Hello world", ("news",)),
    ),
    (
        "field author",
        [{"field": "author", "match": "^reuters$", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "field link",
        [{"field": "link", "match": "/a/", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "field any (link)",
        [{"field": "any", "match": "example\\.org", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "field any reads text, not markup",
        [{"field": "any", "match": "<b>|more$", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "field any is not the markup",
        [{"field": "any", "match": "<b>", "action": "drop"}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "field any misses",
        [{"field": "any", "match": "nowhere", "action": "drop"}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "source glob",
        [{"match": "hello", "action": "drop", "sources": ["em-*"]}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "source glob misses",
        [{"match": "hello", "action": "drop", "sources": ["kj-*"]}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "any source of a merged item",
        [{"match": "hello", "action": "drop", "sources": ["kj-*"]}],
        {"sources": ("em-a", "kj-b")},
        (True, "Hello world", ("news",)),
    ),
    (
        "category scope",
        [{"match": "hello", "action": "drop", "categories": ["news"]}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "category scope misses",
        [{"match": "hello", "action": "drop", "categories": ["tech"]}],
        {},
        (False, "Hello world", ("news",)),
    ),
    (
        "filed by an earlier rule",
        [
            {"match": "world", "action": "file", "to": ["tech"]},
            {"match": "hello", "action": "drop", "categories": ["tech"]},
        ],
        {},
        (True, "Hello world", ("news", "tech")),
    ),
    (
        "retitle seen by a later rule",
        [
            {"match": "world", "action": "retitle", "replace": "mars"},
            {"match": "mars", "action": "file", "to": ["space"]},
        ],
        {},
        (False, "Hello mars", ("news", "space")),
    ),
    (
        "title matched again after retitle",
        [
            {"match": "hello", "action": "drop", "categories": ["x"]},
            {"match": "Hello", "action": "retitle", "replace": "Bye"},
            {"match": "hello", "action": "drop"},
        ],
        {},
        (False, "Bye world", ("news",)),
    ),
    (
        "a retitle keeps what the other fields matched",
        [
            {"match": "Hello", "action": "retitle", "replace": "Bye"},
            {"field": "any", "match": "more", "action": "file", "to": ["tech"]},
        ],
        {},
        (False, "Bye world", ("news", "tech")),
    ),
    (
        "dropped stops",
        [
            {"match": "hello", "action": "drop"},
            {"match": "hello", "action": "file", "to": ["tech"]},
        ],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "unicode \\w (regex engine)",
        [{"match": r"^\w+$", "action": "drop"}],
        {"title": "科技日报"},
        (True, "科技日报", ("news",)),
    ),
    (
        "backreference (regex engine)",
        [{"match": r"(l)\1", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
    (
        "lookahead (regex engine)",
        [{"match": r"hello(?= world)", "action": "drop"}],
        {},
        (True, "Hello world", ("news",)),
    ),
]


@pytest.mark.parametrize(
    ("rules", "kw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_table(
    rules: list[dict[str, Any]], kw: dict[str, Any], expected: tuple[bool, str, tuple[str, ...]]
) -> None:
    out = run(rules, **kw)
    assert (out.dropped, out.title, out.categories) == expected


def test_effects_name_the_rule_and_what_it_did() -> None:
    out = run(
        [
            {"match": "world", "action": "file", "to": ["tech"]},
            {"match": "nothing", "action": "drop"},
            {"match": "world", "action": "retitle", "replace": "mars"},
            {"match": "hello", "action": "keep"},
            {"match": "mars", "action": "keep"},
            {"match": "zzz", "action": "keep"},
        ]
    )
    assert out.effects == ((1, "file"), (3, "retitle"), (4, "keep"), (5, "keep"), (6, "drop"))
    assert out.dropped


def test_file_into_a_category_it_has_is_no_effect() -> None:
    out = run([{"match": "world", "action": "file", "to": ["news"]}])
    assert out.effects == ()


def test_engine_choice() -> None:
    assert compile_pattern("广告|推广").engine == "re2"
    assert compile_pattern(r"(a+)+$").engine == "re2"
    assert compile_pattern(r"\w+\s\d").engine == "re2"  # spelled out as Python reads them
    assert compile_pattern(r"\bword\b").engine == "regex"  # Unicode word boundaries
    assert compile_pattern(r"[\W]").engine == "regex"
    assert compile_pattern(r"a{,3}").engine == "regex"  # RE2 would read it literally
    assert compile_pattern(r"(a)\1").engine == "regex"
    with pytest.raises(re.error):
        compile_pattern("(unclosed")


def test_catastrophic_pattern_on_re2_is_linear() -> None:
    """``(a+)+$`` on "a"*40+"b" would take Python's re days; on RE2 it just answers."""
    out = run([{"match": "(a+)+$", "action": "drop"}], title="a" * 40 + "b")
    assert not out.dropped
    out = run([{"match": "(a+)+$", "action": "drop"}], title="a" * 40)
    assert out.dropped


def test_runaway_pattern_is_disabled_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """A backreference keeps a pattern off RE2; over its budget the rule is disabled."""
    rules = compile_rules(
        [
            RuleConfig(match=r"(.*a){12}\1x", action="drop"),
            RuleConfig(match="a", action="file", to=["tech"]),
        ],
        ["/etc/aggregator/rules.toml:7", "/etc/aggregator/rules.toml:11"],
    )
    assert rules.rules[0].matcher.engine == "regex"
    worker: dict[str, RuleOutcome] = {}
    done = threading.Event()

    def evaluate() -> None:
        worker["out"] = apply_rules(rules, view(title="a" * 200))
        done.set()

    with caplog.at_level(logging.ERROR, logger="aggregator.rules"):
        threading.Thread(target=evaluate, daemon=True).start()
        assert done.wait(60), "a runaway pattern stalled the evaluation"
    out = worker["out"]
    assert not out.dropped and out.categories == ("news", "tech")  # later rules still ran
    assert 1 in rules.disabled and "rules.toml:7" in rules.disabled[1]
    assert "rule 1 (/etc/aggregator/rules.toml:7) disabled" in caplog.text
    # disabled for good: the next item does not pay the budget again
    assert apply_rules(rules, view(title="a" * 200)).effects == ((2, "file"),)


def test_digest_follows_what_rules_say() -> None:
    a = [RuleConfig(match="x", action="drop")]
    b = [RuleConfig(match="x", action="drop"), RuleConfig(match="y", action="drop")]
    assert rules_digest(a) == rules_digest([RuleConfig(match="x", action="drop")])
    assert rules_digest(a) != rules_digest(b)
    assert rules_digest(b) != rules_digest(list(reversed(b)))  # order matters


def test_many_rules_agree_with_one_by_one() -> None:
    """The RE2 set prefilter gives what each rule alone gives."""
    words = ["alpha", "beta", "gamma", "delta", "科技", "广告"]
    configs = [RuleConfig(match=w, action="file", to=[f"c{i}"]) for i, w in enumerate(words)]
    titles = ["alpha and 科技", "nothing", "GAMMA delta 广告", "beta"]
    together = compile_rules(configs)
    for title in titles:
        combined = apply_rules(together, view(title=title)).categories
        alone = {"news"}
        for c in configs:
            alone.update(apply_rules(compile_rules([c]), view(title=title)).categories)
        assert combined == tuple(sorted(alone)), title


SAMPLES = [
    "科技日报 2024",
    "a\u3000b",  # ideographic space
    "x\xa0y",
    "line\x1cbreak",
    "١٢٣ arabic digits",
    "under_score-dash",
    "ÉCOLE école",
    "tab\there\vvt",
    "[]^-]",
]
PATTERNS = [
    r"\w+",
    r"\W+",
    r"\d+",
    r"\D+",
    r"\s",
    r"\S+",
    r"[\w-]+",
    r"[^\d\s]+",
    r"[]^]+",
    r"[^]]+",
    r"\\w",
    r"école",
    r"(?-i)école",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_re2_reads_patterns_as_python_does(pattern: str) -> None:
    matcher = compile_pattern(pattern)
    assert matcher.engine == "re2"
    body = pattern.removeprefix("(?-i)")
    python = re.compile(body, 0 if pattern.startswith("(?-i)") else re.IGNORECASE)
    for text in SAMPLES:
        expected = [m.group(0) for m in python.finditer(text)]
        got = [m.group(0) for m in matcher.compiled.finditer(text)]
        assert got == expected, (pattern, text)
