"""``aggregator rules test``: what each rule would do to the stored items; changes nothing.

The rules run on every stored item exactly as a re-application would (all of
them, in order: a rule sees what the earlier ones did), on a store opened
read-only (nothing created, migrated or written).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from aggregator.config import Config
from aggregator.rules import Effect, Rule, RuleSet, apply_rules, config_rules
from aggregator.store import Store
from aggregator.store.rulings import Stored, differs

#: examples shown per rule
EXAMPLES = 3
EFFECTS: tuple[Effect, ...] = ("drop", "keep", "file", "unfile", "retitle")


@dataclass(frozen=True, slots=True)
class Example:
    title: str  #: as the item is titled before the rules
    new_title: str  #: after them
    source: str
    category: str
    effect: Effect


@dataclass
class RuleReport:
    """What one rule did across the stored items."""

    rule: Rule
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[Example] = field(default_factory=list)


@dataclass
class Report:
    rules: list[RuleReport]
    evaluated: int = 0
    dropped: int = 0  #: items the rules drop
    differ: int = 0  #: items the rules would make something else of than what is stored
    disabled: dict[int, str] = field(default_factory=dict)


def evaluate(rules: RuleSet, stored: Iterable[Stored]) -> Report:
    """Run ``rules`` over ``stored`` items and tally per rule."""
    reports = {r.number: RuleReport(r) for r in rules.rules}
    report = Report(list(reports.values()))
    seen: dict[int, int] = defaultdict(int)
    for item in stored:
        report.evaluated += 1
        outcome = apply_rules(rules, item.view)
        report.dropped += outcome.dropped
        report.differ += differs(item, outcome)
        for number, effect in outcome.effects:
            one = reports[number]
            one.counts[effect] += 1
            if seen[number] < EXAMPLES:
                seen[number] += 1
                one.examples.append(
                    Example(
                        title=item.view.title,
                        new_title=outcome.title,
                        source=",".join(item.view.sources),
                        category=",".join(item.view.categories) or "-",
                        effect=effect,
                    )
                )
    report.disabled = rules.disabled
    return report


def _describe(rule: Rule) -> str:
    what = f"{rule.action} {rule.field} ~ {rule.matcher.pattern}"
    if rule.to:
        what += f" -> {','.join(rule.to)}"
    if rule.action == "retitle":
        what += f" => {rule.replace!r}"
    return what


def _scope(rule: Rule) -> str:
    parts = []
    if rule.sources:
        parts.append("sources " + ",".join(rule.sources))
    if rule.categories:
        parts.append("categories " + ",".join(sorted(rule.categories)))
    return "; ".join(parts) or "all items"


def print_rules_report(
    config: Config,
    *,
    rule: int | None = None,
    source: str | None = None,
    console: Console | None = None,
) -> Report:
    """Evaluate and print; ``rule``: show only that one (1-based), ``source``: its items only."""
    rules = config_rules(config)
    store = Store.open_readonly(config.aggregator.database)
    try:
        report = evaluate(rules, store.stored_items(fields=rules.fields, source_id=source))
    finally:
        store.close()
    out = console or Console(width=200 if not _tty() else None)
    shown = [r for r in report.rules if rule is None or r.rule.number == rule]
    table = Table(title=f"rules ({config.path})", expand=False)
    for name in ("#", "where", "rule", "scope", *EFFECTS):
        table.add_column(name, overflow="fold", justify="right" if name in EFFECTS else "left")
    for one in shown:
        number = one.rule.number
        table.add_row(
            str(number),
            one.rule.origin,
            _describe(one.rule),
            _scope(one.rule),
            *(str(one.counts[e]) for e in EFFECTS),
            style="red" if number in report.disabled else None,
        )
    out.print(table)
    for one in shown:
        if not one.examples:
            continue
        examples = Table(title=f"rule {one.rule.number}: examples", expand=False)
        for name in ("title", "source", "category", "does"):
            examples.add_column(name, overflow="fold")
        for ex in one.examples:
            does = f"retitle: {ex.new_title}" if ex.effect == "retitle" else ex.effect
            examples.add_row(ex.title, ex.source, ex.category, does)
        out.print(examples)
    for number, why in sorted(report.disabled.items()):
        if rule is None or number == rule:
            out.print(f"[red]{why}[/red]")
    scope = f" of source {source}" if source else ""
    out.print(
        f"{report.evaluated} stored items{scope} evaluated: {report.dropped} dropped by the rules, "
        f"{report.differ} would change from what is stored (nothing was changed)"
    )
    return report


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()
