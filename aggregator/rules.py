"""``[[rules]]``: drop, keep, file, unfile and retitle merged items (deciding only, no I/O).

    RuleConfig… ──compile_rules──▶ RuleSet ──apply_rules(view)──▶ RuleOutcome

Rules run in config order on the merged view of an item (its versions are
stored as the sources gave them), so a rule change is re-applied to stored
items without a refetch. Matching is bounded, so one pattern cannot stall
the daemon (Miniflux #968): a pattern RE2 reads the way Python does runs on
RE2 (linear time); any other (backreferences, lookaround, Unicode ``\\w``…)
runs on the ``regex`` module with a time budget per match, which it checks
inside its matcher (Python's ``re`` cannot be interrupted: it holds the GIL
and checks no clock). A rule over its budget is disabled, with an error
naming it, for the life of the RuleSet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aggregator.config.schema import Config, RuleConfig

log = logging.getLogger("aggregator.rules")

Field = Literal["title", "text", "content", "author", "link", "any"]
Action = Literal["drop", "keep", "file", "unfile", "retitle"]
#: what a rule did to one item (a keep rule "keeps" what matches and "drops" the rest)
Effect = Literal["drop", "keep", "file", "unfile", "retitle"]

FIELDS: tuple[str, ...] = ("title", "text", "content", "author", "link")
#: wall time one match of a non-RE2 pattern may take on one item
MATCH_BUDGET_SECONDS = 0.1
#: a leading ``(?-i)`` makes the whole pattern case-sensitive (Python's re has no such
#: global flag; ``(?-i:…)`` scopes it to a part)
CASE_SENSITIVE_PREFIX = "(?-i)"


@cache
def _re2_options(case_sensitive: bool) -> Any:
    """RE2's options; the engines are imported only where there are rules (a poll of a
    config without rules loads neither)."""
    import re2

    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    return options


class RuleBudgetExceeded(Exception):
    """A non-RE2 pattern ran past its budget on one item."""


def _escapes(pattern: str) -> set[str]:
    """The characters after each backslash (``\\\\`` counts as one escape)."""
    found, i = set(), 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            found.add(pattern[i + 1])
            i += 2
        else:
            i += 1
    return found


#: escapes RE2 reads as ASCII where Python reads Unicode (``\w`` is a letter of 汉字 to Python)
_UNICODE_CLASSES = set("wWdDsSbB")


def _re2_reads_it_alike(pattern: str) -> bool:
    """RE2 accepts patterns Python reads otherwise: ``\\w`` and friends, ``{,n}``, ``[[:x:]]``."""
    return not (_escapes(pattern) & _UNICODE_CLASSES or "{," in pattern or "[:" in pattern)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One compiled pattern on one engine."""

    pattern: str
    case_sensitive: bool
    engine: Literal["re2", "regex"]
    compiled: Any  #: re2._Regexp or regex.Pattern

    def search(self, text: str) -> bool:
        if self.engine == "re2":
            return self.compiled.search(text) is not None
        try:
            return self.compiled.search(text, timeout=MATCH_BUDGET_SECONDS) is not None
        except TimeoutError as exc:
            raise RuleBudgetExceeded from exc

    def sub(self, replace: str, text: str) -> str:
        if self.engine == "re2":
            return str(self.compiled.sub(replace, text))
        try:
            return str(self.compiled.sub(replace, text, timeout=MATCH_BUDGET_SECONDS))
        except TimeoutError as exc:
            raise RuleBudgetExceeded from exc


def compile_pattern(pattern: str) -> Matcher:
    """Python syntax, case-insensitive unless the pattern says otherwise; raises re.error."""
    case_sensitive = pattern.startswith(CASE_SENSITIVE_PREFIX)
    body = pattern[len(CASE_SENSITIVE_PREFIX) :] if case_sensitive else pattern
    flags = 0 if case_sensitive else re.IGNORECASE
    re.compile(body, flags)  # the syntax admins are promised: Python's, with its messages
    import re2
    import regex

    if _re2_reads_it_alike(body):
        try:
            return Matcher(
                pattern, case_sensitive, "re2", re2.compile(body, _re2_options(case_sensitive))
            )
        except re2.error:
            pass  # backreference, lookaround…: the budgeted engine below
    try:
        compiled = regex.compile(body, regex.V0 | (0 if case_sensitive else regex.IGNORECASE))
    except regex.error as exc:
        raise re.error(f"not supported: {exc}") from exc
    return Matcher(pattern, case_sensitive, "regex", compiled)


def check_replace(pattern: str, replace: str) -> None:
    """Raises re.error when ``replace`` names a group the pattern lacks (``\\2``, ``\\g<x>``)."""
    compiled = re.compile(pattern.removeprefix(CASE_SENSITIVE_PREFIX), re.IGNORECASE)
    try:
        compiled.sub(replace, "")  # parses the template before looking for matches
    except IndexError as exc:
        raise re.error(str(exc)) from exc


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
        self._scope_cache: dict[tuple[str, ...], tuple[bool, ...]] = {}
        #: per field, one RE2 set of that field's RE2 rules (and the ``any`` ones)
        self._sets: dict[str, tuple[Any, tuple[int, ...]]] = {}
        if self.rules:
            self._compile_sets()

    def _compile_sets(self) -> None:
        import re2

        for name in FIELDS:
            members = [
                r for r in self.rules if r.matcher.engine == "re2" and r.field in (name, "any")
            ]
            if not members:
                continue
            # one set per case option; RE2 sets take one Options each
            for sensitive in (False, True):
                group = [r for r in members if r.matcher.case_sensitive == sensitive]
                if not group:
                    continue
                s = re2.Set.SearchSet(_re2_options(sensitive))
                for r in group:
                    s.Add(r.matcher.pattern.removeprefix(CASE_SENSITIVE_PREFIX))
                s.Compile()
                key = f"{name}:{int(sensitive)}"
                self._sets[key] = (s, tuple(r.number for r in group))

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

    def in_sources(self, sources: tuple[str, ...]) -> tuple[bool, ...]:
        """Per rule: does any of these sources fall under its globs (cached per source set)."""
        found = self._scope_cache.get(sources)
        if found is None:
            found = tuple(
                not r.sources or any(fnmatchcase(s, g) for s in sources for g in r.sources)
                for r in self.rules
            )
            if len(self._scope_cache) < 10000:
                self._scope_cache[sources] = found
        return found


def rules_digest(configs: Sequence[RuleConfig]) -> str:
    """A hash of what the rules say, in order (not where they are written)."""
    doc = [c.model_dump(mode="json") for c in configs]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


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
            )
        )
    return RuleSet(rules, rules_digest(configs))


NO_RULES = RuleSet((), rules_digest(()))


def config_rules(config: Config) -> RuleSet:
    """The config's rules, compiled; no rules compile nothing (and import no engine)."""
    return compile_rules(config.rules, config.rule_origins) if config.rules else NO_RULES


@dataclass(slots=True)
class _Fields:
    """An item's field values, each worked out on first use."""

    view: ItemView
    title: str
    text_of: Callable[[str | None], str]
    _text: str | None = None
    _hits: dict[str, frozenset[int]] = field(default_factory=dict)

    def value(self, name: str) -> str:
        v = self.view
        if name == "title":
            return self.title
        if name == "text":
            if self._text is None:
                self._text = self.text_of(v.content_html or v.summary_html)
            return self._text
        if name == "content":
            return v.content_html or v.summary_html or ""
        if name == "author":
            return v.author or ""
        return v.link or ""


def _text_of(html: str | None) -> str:
    from aggregator.sanitize import text_of  # nh3 only once a rule reads a body

    return text_of(html)


def apply_rules(rules: RuleSet, view: ItemView) -> RuleOutcome:
    """Every rule in order on one item; a dropped item stops there."""
    if not rules.rules:
        return RuleOutcome(False, view.title, tuple(sorted(set(view.categories))))
    categories = set(view.categories)
    fields = _Fields(view, view.title, _text_of)
    in_sources = rules.in_sources(view.sources)
    disabled = rules._disabled
    effects: list[tuple[int, Effect]] = []
    for rule in rules.rules:
        if not in_sources[rule.number - 1] or rule.number in disabled:
            continue
        if rule.categories and not (rule.categories & categories):
            continue
        try:
            hit = _matches(rules, rule, fields)
        except RuleBudgetExceeded:
            rules._disable(rule, view.key)
            continue
        action = rule.action
        if action == "keep":
            if hit:
                effects.append((rule.number, "keep"))
                continue
            effects.append((rule.number, "drop"))
            return RuleOutcome(True, fields.title, tuple(sorted(categories)), tuple(effects))
        if not hit:
            continue
        if action == "drop":
            effects.append((rule.number, "drop"))
            return RuleOutcome(True, fields.title, tuple(sorted(categories)), tuple(effects))
        if action == "file":
            if not categories.issuperset(rule.to):
                categories.update(rule.to)
                effects.append((rule.number, "file"))
        elif action == "unfile":
            if categories & set(rule.to):
                categories.difference_update(rule.to)
                effects.append((rule.number, "unfile"))
        else:  # retitle
            try:
                title = rule.matcher.sub(rule.replace, fields.title).strip()
            except RuleBudgetExceeded:
                rules._disable(rule, view.key)
                continue
            if title and title != fields.title:  # a title is never blank
                fields.title = title
                fields._hits.pop("title:0", None)
                fields._hits.pop("title:1", None)
                effects.append((rule.number, "retitle"))
    return RuleOutcome(False, fields.title, tuple(sorted(categories)), tuple(effects))


def _matches(rules: RuleSet, rule: Rule, fields: _Fields) -> bool:
    names = FIELDS if rule.field == "any" else (rule.field,)
    if rule.matcher.engine == "regex":
        return any(rule.matcher.search(fields.value(n)) for n in names)
    sensitive = int(rule.matcher.case_sensitive)
    for name in names:
        key = f"{name}:{sensitive}"
        hits = fields._hits.get(key)
        if hits is None:
            s, numbers = rules._sets[key]
            found = s.Match(fields.value(name)) or ()
            hits = fields._hits[key] = frozenset(numbers[i] for i in found)
        if rule.number in hits:
            return True
    return False
