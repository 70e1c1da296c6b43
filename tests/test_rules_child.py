"""Rules evaluated in a child process (rules/child.py) give what the parent's evaluation
gives, over the real fixture feeds' items; a child that fails leaves the parent to
evaluate; a rule the child disables over its budget is disabled in the parent."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from aggregator.config.schema import RuleConfig
from aggregator.rules import ItemView, apply_rules, body_text, compile_rules
from aggregator.rules.child import Evaluator
from tests.test_rules_paths import fixture_views, varied_rules


def with_texts(views: tuple[ItemView, ...]) -> list[ItemView]:
    """The views with their body's text, as a reader of the store gives it."""
    return [
        dataclasses.replace(v, text=body_text(v.content_html or v.summary_html))
        if v.content_html or v.summary_html
        else v
        for v in views
    ]


def decided(outcomes: list) -> list[tuple[bool, str, tuple[str, ...]]]:  # type: ignore[type-arg]
    return [(o.dropped, o.title, o.categories) for o in outcomes]


def test_a_child_evaluates_as_the_parent_does() -> None:
    """Batches sent with their texts in the views and as UTF-8 beside them, two in
    flight, come back in order as apply_rules makes them here."""
    views = with_texts(fixture_views())
    half = len(views) // 2
    # the second half without bodies: their text is only what is sent as UTF-8
    first = views[:half]
    second = [dataclasses.replace(v, content_html=None, summary_html=None) for v in views[half:]]
    rules = compile_rules([RuleConfig(**t) for t in varied_rules(fixture_views())])
    here = decided([apply_rules(rules, v) for v in first + second])
    assert len(set(here)) > 3  # the mix drops, files and retitles some
    as_utf8 = [dataclasses.replace(v, text=None) for v in second]
    texts = [None if v.text is None else v.text.encode() for v in second]
    with Evaluator(rules, child=True) as evaluator:
        assert evaluator.in_child
        evaluator.send(first)
        evaluator.send(as_utf8, texts)
        got = decided(evaluator.receive()) + decided(evaluator.receive())
    assert got == here


def test_a_failed_child_leaves_the_parent_to_evaluate(caplog: pytest.LogCaptureFixture) -> None:
    views = with_texts(fixture_views())
    rules = compile_rules([RuleConfig(**t) for t in varied_rules(fixture_views())])
    here = decided([apply_rules(rules, v) for v in views])
    texts = [None if v.text is None else v.text.encode() for v in views]
    bare = [dataclasses.replace(v, text=None) for v in views]
    with (
        caplog.at_level(logging.WARNING, logger="aggregator.rules"),
        Evaluator(rules, child=True) as evaluator,
    ):
        assert evaluator._proc is not None
        evaluator._proc.kill()
        evaluator._proc.wait()
        evaluator.send(bare, texts)  # into a dead child's pipe
        evaluator.send(bare, texts)
        assert decided(evaluator.receive()) == here
        assert not evaluator.in_child
        assert decided(evaluator.receive()) == here
    assert "their child process failed (BrokenPipeError" in caplog.text
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="aggregator.rules"),
        Evaluator(rules, child=True) as evaluator,
    ):
        evaluator.send(bare, texts)  # taken by the pipe: the child is still starting
        assert evaluator._proc is not None
        evaluator._proc.kill()
        assert decided(evaluator.receive()) == here  # its answer never comes
        assert not evaluator.in_child
    assert "their child process failed (EOFError" in caplog.text


def test_a_rule_the_child_disables_is_disabled_here(caplog: pytest.LogCaptureFixture) -> None:
    """A backreference keeps a pattern off RE2; over its budget in the child, the rule is
    disabled and named in this process, on the item it ran over on."""
    rules = compile_rules(
        [
            RuleConfig(match=r"(.*a){12}\1x", action="drop"),
            RuleConfig(match="a", action="file", to=["tech"]),
        ],
        ["/etc/aggregator/rules.toml:7", "/etc/aggregator/rules.toml:11"],
    )
    assert rules.rules[0].matcher.engine == "regex"
    views = [ItemView(key=f"k{n}", title="a" * 200, sources=("s",), categories=()) for n in (1, 2)]
    with (
        caplog.at_level(logging.ERROR, logger="aggregator.rules"),
        Evaluator(rules, child=True) as evaluator,
    ):
        assert evaluator.in_child
        evaluator.send(views)
        outcomes = evaluator.receive()
    assert decided(outcomes) == [(False, "a" * 200, ("tech",))] * 2  # later rules still ran
    assert 1 in rules.disabled and "on item k1" in rules.disabled[1]
    assert "rule 1 (/etc/aggregator/rules.toml:7) disabled" in caplog.text


def test_no_child_without_rules_or_when_not_asked() -> None:
    rules = compile_rules([RuleConfig(match="x", action="drop")])
    view = ItemView(key="k", title="x", sources=("s",), categories=())
    for evaluator in (Evaluator(rules, child=False), Evaluator(compile_rules([]), child=True)):
        with evaluator:
            assert not evaluator.in_child
            evaluator.send([view])
            assert [o.dropped for o in evaluator.receive()] == [bool(evaluator.rules.rules)]
