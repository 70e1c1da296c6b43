"""``[[rules]]``: drop, keep, file, unfile and retitle merged items (deciding only, no I/O).

    RuleConfig… ──compile_rules──▶ RuleSet ──apply_rules(view)──▶ RuleOutcome

Rules run in config order on the merged view of an item (its versions are
stored as the sources gave them), so a rule change is re-applied to stored
items without a refetch. Matching is bounded (patterns.py), so one pattern
cannot stall the daemon (Miniflux #968); a rule over its time budget is
disabled, with an error naming it, for the life of the RuleSet.

Evaluating 100 rules one by one costs 100 steps per item; instead every RE2
pattern of a field sits in one RE2 set, asked once per field, and only the
rules that matched (and the keep rules, which act on a miss) are walked; an
item none of them matches is not walked at all. A ``text`` pattern that cannot
tell a text from it with its whitespace collapsed (most: no space, no anchor)
reads the body's text as its tags leave it (``BARE``): collapsing is over half
of that text's cost, and is done only for the other patterns.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aggregator.rules.patterns import (
    CASE_SENSITIVE_PREFIX,
    MATCH_BUDGET_SECONDS,
    Matcher,
    RuleBudgetExceeded,
    check_replace,
    compile_pattern,
    re2_options,
)

if TYPE_CHECKING:
    from aggregator.config.schema import Config, RuleConfig

__all__ = [
    "CASE_SENSITIVE_PREFIX",
    "NO_RULES",
    "ItemView",
    "Matcher",
    "Rule",
    "RuleOutcome",
    "RuleSet",
    "apply_rules",
    "check_replace",
    "compile_pattern",
    "compile_rules",
    "config_rules",
    "rule_json",
    "rules_digest",
    "rules_from_json",
]

log = logging.getLogger("aggregator.rules")

Field = Literal["title", "text", "content", "author", "link", "any"]
Action = Literal["drop", "keep", "file", "unfile", "retitle"]
#: what a rule did to one item (a keep rule "keeps" what matches and "drops" the rest)
Effect = Literal["drop", "keep", "file", "unfile", "retitle"]

FIELDS: tuple[str, ...] = ("title", "text", "content", "author", "link")
#: the body's text before its whitespace is collapsed: what an RE2 set of ``text`` patterns
#: that cannot tell the difference reads (``space_blind``), for half the cost
BARE = "bare"
#: what ``field = "any"`` looks at: what a reader reads; not the markup (``content``), whose
#: tags and attributes would match words no reader sees
ANY: tuple[str, ...] = ("title", "text", "author", "link")


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled ``[[rules]]`` table."""

    number: int  #: 1-based, in config order (``rules test --rule N``)
    origin: str  #: ``file:line`` of its table, for messages
    field: Field
    action: Action
    matcher: Matcher
    sources: tuple[str, ...] = ()  #: source id globs; empty: every source
    categories: frozenset[str] = frozenset()  #: only items filed in one of these; empty: all
    to: tuple[str, ...] = ()
    replace: str = ""
    said: str = ""  #: what its table says, as JSON (``rule_json``): kept with the items

    @property
    def name(self) -> str:
        return f"rule {self.number} ({self.origin})"


@dataclass(frozen=True, slots=True)
class ItemView:
    """The merged item as rules see it (before any rule)."""

    key: str
    title: str
    sources: tuple[str, ...]  #: every source carrying it
    categories: tuple[str, ...]  #: the union of its sources' categories
    content_html: str | None = None
    summary_html: str | None = None
    author: str | None = None
    link: str | None = None
    #: the body's plain text (``body_text``), where the reader has it already; None: from
    #: the body, when a rule reads it
    text: str | None = None
    #: the same plain text as UTF-8, where the reader has it so (a store reads it as bytes:
    #: RE2 reads UTF-8, so it is neither decoded nor encoded again); ``text`` may then be None
    text_utf8: bytes | None = None


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What the rules made of one item."""

    dropped: bool
    title: str
    categories: tuple[str, ...]  #: sorted; what a dropped item would have had is irrelevant
    effects: tuple[tuple[int, Effect], ...] = ()  #: (rule number, what it did), in order


class RuleSet:
    """Compiled rules plus the ones disabled for running over budget (shared by threads)."""

    def __init__(self, rules: Sequence[Rule], digest: str) -> None:
        self.rules = tuple(rules)
        self.digest = digest  #: hash of what the rules say: stored, to see when they change
        self._disabled: dict[int, str] = {}
        self._guard = threading.Lock()
        self._scope_cache: dict[tuple[str, ...], _Scope] = {}
        #: the numbers of the rules scoped by sources that take in a source (per source id)
        self._scoped_by: dict[str, frozenset[int]] = {}
        #: one scope per set of rules in it (most sources share one: the unscoped rules)
        self._scopes: dict[frozenset[int], _Scope] = {}
        #: each source-scoped rule's globs as one compiled matcher
        self._globs = tuple(
            (r.number, re.compile("|".join(map(fnmatch.translate, r.sources))).match)
            for r in self.rules
            if r.sources
        )
        self._unscoped = frozenset(r.number for r in self.rules if not r.sources)
        #: one RE2 set per field and case of that field's RE2 rules (and the ``any`` ones)
        self._sets: tuple[_Set, ...] = self._compile_sets() if self.rules else ()
        #: the fields some rule reads (``any`` spelled out): what a reader of the store fetches
        self.fields: frozenset[str] = frozenset(
            n for r in self.rules for n in (ANY if r.field == "any" else (r.field,))
        )

    def _compile_sets(self) -> tuple[_Set, ...]:
        import re2

        sets = []
        for name in (*FIELDS, BARE):
            for sensitive in (False, True):
                group = [
                    r
                    for r in self.rules
                    if r.matcher.engine == "re2"
                    and _reads(r, name)
                    and r.matcher.case_sensitive == sensitive
                ]
                if group:
                    s = re2.Set.SearchSet(re2_options(sensitive, set_of=len(group)))
                    for r in group:
                        s.Add(r.matcher.re2_pattern)
                    s.Compile()
                    numbers = tuple(r.number for r in group)
                    # the set's own wrapper only encodes: called per item and field, skip it
                    sets.append(_Set(s._set.Match, numbers, name))
        return tuple(sets)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def disabled(self) -> dict[int, str]:
        """Rule number -> why it was disabled."""
        with self._guard:
            return dict(self._disabled)

    def _disable(self, rule: Rule, key: str) -> None:
        with self._guard:
            if rule.number in self._disabled:
                return
            why = (
                f"{rule.name} disabled: matching {rule.matcher.pattern!r} took over "
                f"{MATCH_BUDGET_SECONDS:g}s on item {key}"
            )
            self._disabled[rule.number] = why
        log.error("%s", why)

    def scope(self, sources: tuple[str, ...]) -> _Scope:
        """What applies to items carried by ``sources`` (cached per set of sources; an item
        carried by several sources is a new set, so it is made from each source's rules)."""
        found = self._scope_cache.get(sources)
        if found is None:
            numbers = self._unscoped.union(*map(self._source_rules, sources))
            found = self._scopes.get(numbers)
            if found is None:
                found = self._scopes[numbers] = _Scope.of(self, numbers)
            if len(self._scope_cache) < 10000:
                self._scope_cache[sources] = found
        return found

    def _source_rules(self, source: str) -> frozenset[int]:
        """The numbers of the source-scoped rules whose globs take in ``source``."""
        found = self._scoped_by.get(source)
        if found is None:
            found = frozenset(n for n, match in self._globs if match(source))
            if len(self._scoped_by) < 100000:
                self._scoped_by[source] = found
        return found


def _reads(rule: Rule, name: str) -> bool:
    """The RE2 set of field ``name`` (or ``BARE``) holds the rule's pattern."""
    names = ANY if rule.field == "any" else (rule.field,)
    if name == BARE:
        return "text" in names and rule.matcher.space_blind
    if name == "text":
        return "text" in names and not rule.matcher.space_blind
    return name in names


@dataclass(frozen=True, slots=True)
class _Set:
    """One RE2 set: its match function (bytes -> indexes of the patterns that match), the
    rule number of each pattern, and the field it reads."""

    match: Any
    numbers: tuple[int, ...]
    field: str


@dataclass(frozen=True, slots=True)
class _Scope:
    """The rules whose ``sources`` globs take in a given set of sources (``RuleSet.scope``)."""

    rules: dict[int, Rule]  #: number -> rule, in order
    numbers: frozenset[int]  #: the same numbers, as a set
    walked: frozenset[int]  #: walked on every item: keep rules and non-RE2 ones
    title_sets: tuple[_Set, ...]  #: the RE2 sets to ask (those with a rule in scope) on titles
    other_sets: tuple[_Set, ...]  #: and on the other fields (a retitle asks only the first)

    @classmethod
    def of(cls, ruleset: RuleSet, numbers: frozenset[int]) -> _Scope:
        rules = {r.number: r for r in ruleset.rules if r.number in numbers}
        walked = frozenset(
            n for n, r in rules.items() if r.action == "keep" or r.matcher.engine != "re2"
        )
        sets = [s for s in ruleset._sets if any(n in rules for n in s.numbers)]
        return cls(
            rules,
            frozenset(rules),
            walked,
            tuple(s for s in sets if s.field == "title"),
            tuple(s for s in sets if s.field != "title"),
        )


def rules_digest(configs: Sequence[RuleConfig]) -> str:
    """A hash of what the rules say, in order (not where they are written)."""
    doc = [c.model_dump(mode="json") for c in configs]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def rule_json(config: RuleConfig) -> str:
    """What one rule says, as the store keeps it (``rules_from_json`` reads it back)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


def rules_from_json(said: Sequence[str]) -> RuleSet:
    """The rules the store kept (``rule_json``), compiled again; raises ValueError where
    one no longer validates."""
    from aggregator.config.schema import RuleConfig

    return compile_rules([RuleConfig(**json.loads(one)) for one in said])


def compile_rules(configs: Sequence[RuleConfig], origins: Sequence[str] = ()) -> RuleSet:
    """The configured rules, compiled (the config validated every pattern already)."""
    rules = []
    for number, c in enumerate(configs, start=1):
        origin = origins[number - 1] if number <= len(origins) else "config"
        rules.append(
            Rule(
                number=number,
                origin=origin,
                field=c.field,
                action=c.action,
                matcher=compile_pattern(c.match),
                sources=tuple(c.sources),
                categories=frozenset(c.categories),
                to=tuple(c.to),
                replace=c.replace or "",
                said=rule_json(c),
            )
        )
    return RuleSet(rules, rules_digest(configs))


NO_RULES = RuleSet((), rules_digest(()))


def config_rules(config: Config) -> RuleSet:
    """The config's rules, compiled; no rules compile nothing (and import no engine)."""
    return compile_rules(config.rules, config.rule_origins) if config.rules else NO_RULES


class _Fields:
    """An item's field values, each worked out on first use, and their UTF-8 (for RE2)."""

    __slots__ = ("view", "title", "_text", "_bare", "_data")

    def __init__(self, view: ItemView) -> None:
        self.view = view
        self.title = view.title
        self._text = view.text
        self._bare: str | None = None
        self._data: dict[str, bytes] = {}
        if view.text_utf8 is not None:  # the collapsed text: what BARE reads where it is at hand
            self._data["text"] = self._data[BARE] = view.text_utf8

    def value(self, name: str) -> str:
        v = self.view
        if name == "title":
            return self.title
        if name == "text":
            if self._text is None and v.text_utf8 is not None:
                self._text = v.text_utf8.decode()
            if self._text is None:
                self._text = " ".join(self.value(BARE).split())  # body_text, from the bare one
            return self._text
        if name == BARE:  # the collapsed text where it is at hand: the same matches
            if self._text is not None or v.text_utf8 is not None:
                return self.value("text")
            if self._bare is None:
                self._bare = bare_text(v.content_html or v.summary_html)
            return self._bare
        if name == "content":
            return v.content_html or v.summary_html or ""
        if name == "author":
            return v.author or ""
        return v.link or ""

    def data(self, name: str) -> bytes:
        """``value(name)`` as UTF-8, once per value (a title changed by a retitle anew)."""
        found = self._data.get(name)
        if found is None or name == "title":
            found = self._data[name] = self.value(name).encode()
        return found


def body_text(body_html: str | None) -> str:
    """What ``field = "text"`` reads of a stored (clean) body."""
    from aggregator.sanitize import text_of_clean

    return text_of_clean(body_html)


def bare_text(body_html: str | None) -> str:
    """``body_text`` before its whitespace is collapsed (``BARE``)."""
    from aggregator.sanitize import spaced_text_of_clean

    return spaced_text_of_clean(body_html)


def _asked(sets: tuple[_Set, ...], fields: _Fields, in_scope: frozenset[int]) -> set[int]:
    """The numbers of the in-scope rules whose RE2 pattern matches its field."""
    hit: set[int] = set()
    for s in sets:
        found = s.match(fields.data(s.field))
        if found:
            numbers = s.numbers
            hit.update([numbers[i] for i in found])
    hit &= in_scope
    return hit


def apply_rules(rules: RuleSet, view: ItemView) -> RuleOutcome:
    """Every rule in order on one item; a dropped item stops there.

    The RE2 sets say which rules match; only those (and the keep rules, which act
    on a miss, and the non-RE2 ones) are walked, in order. An item no rule in its
    scope matches comes out as it went in, without a walk.
    """
    if not rules.rules:
        return RuleOutcome(False, view.title, tuple(sorted(set(view.categories))))
    scope = rules.scope(view.sources)
    fields = _Fields(view)
    other = _asked(scope.other_sets, fields, scope.numbers)
    hit = _asked(scope.title_sets, fields, scope.numbers) | other
    if not hit and not scope.walked:
        return RuleOutcome(False, view.title, tuple(sorted(set(view.categories))))
    return _walk(rules, scope, fields, hit, other)


def _walk(
    rules: RuleSet, scope: _Scope, fields: _Fields, hit: set[int], other: set[int]
) -> RuleOutcome:
    """The rules ``hit`` names and the walked ones, in order (``other``: the hits on
    fields other than the title, which a retitle leaves as they are)."""
    view = fields.view
    categories = set(view.categories)
    disabled = rules._disabled
    effects: list[tuple[int, Effect]] = []
    walk = sorted(hit | scope.walked)
    i = 0
    while i < len(walk):
        number = walk[i]
        i += 1
        rule = scope.rules[number]
        if number in disabled or (rule.categories and not (rule.categories & categories)):
            continue
        if rule.matcher.engine == "re2":
            matched = number in hit
        else:
            try:
                names = ANY if rule.field == "any" else (rule.field,)
                matched = any(rule.matcher.search(fields.value(n)) for n in names)
            except RuleBudgetExceeded:
                rules._disable(rule, view.key)
                continue
        action = rule.action
        if action == "keep":
            if matched:
                effects.append((number, "keep"))
                continue
            effects.append((number, "drop"))
            return RuleOutcome(True, fields.title, tuple(sorted(categories)), tuple(effects))
        if not matched:
            continue
        if action == "drop":
            effects.append((number, "drop"))
            return RuleOutcome(True, fields.title, tuple(sorted(categories)), tuple(effects))
        if action == "file":
            if not categories.issuperset(rule.to):
                categories.update(rule.to)
                effects.append((number, "file"))
        elif action == "unfile":
            if categories.intersection(rule.to):
                categories.difference_update(rule.to)
                effects.append((number, "unfile"))
        else:  # retitle
            try:
                title = rule.matcher.sub(rule.replace, fields.title).strip()
            except RuleBudgetExceeded:
                rules._disable(rule, view.key)
                continue
            if title and title != fields.title:  # a title is never blank
                fields.title = title
                effects.append((number, "retitle"))
                # the later rules see the new title: ask the title's sets again
                hit = _asked(scope.title_sets, fields, scope.numbers) | other
                walk = walk[:i] + sorted(n for n in hit | scope.walked if n > number)
    return RuleOutcome(False, fields.title, tuple(sorted(categories)), tuple(effects))
