"""After an edit of the rules: the items the changed rules could act on (deciding only).

    old RuleSet, new RuleSet ──edit()──▶ Edit | None ──Edit.may_change(view)──▶ bool

Rules run in order, and what they make of an item depends only on the item and
on the rules before them. Say the edit left the first rules (P) and the last
ones (S) as they were and changed those between (W before, W' after). Under
both, an item comes out of P the same; if no rule of W or W' acts on it, it
comes out of W and of W' as it went in, and S then does the same to it: its
stored outcome stands, and it need not be evaluated again. Dropped within P,
it never reaches W or W': the same again.

A rule does nothing to an item none of whose sources its globs take in, and
nothing where its pattern misses (drop, file, unfile, retitle) or matches
(keep). Every field a rule reads is the item's own, unchanged by rules, but
the title: a rule of W or W' reads the stored title unless a retitle rule of P
could have changed it, so an item such a retitle matches is evaluated in full.
Category scopes are not looked at (they only make a rule do less). The check
asks one RE2 set per field for all of those rules at once.

The usual edit changes patterns only: W and W' then pair up rule by rule,
each pair alike but for its pattern, and a pair acts alike wherever its two
patterns agree (both drop, both keep…), so only an item they disagree on is
evaluated (a retitle pair: any item either matches, the titles may differ).

Only where every rule, old and new, runs on RE2: a budgeted pattern can be
disabled on one item and not on another, so its outcomes are not a function of
the item alone. And only where the edit left some rule as it was (else every
item is evaluated anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as replaced

from aggregator.rules import ItemView, Rule, RuleSet, _asked, _Fields


@dataclass(frozen=True, slots=True)
class Edit:
    """The rules an edit changed, and the retitles before them, as one set to check."""

    check: RuleSet  #: the rules checked on each item, numbered anew
    retitles: frozenset[int]  #: numbers in ``check`` of the retitle rules before the change
    keeps: frozenset[int]  #: numbers in ``check`` of the changed keep rules
    #: source globs one of which every changed rule is scoped by (only the items of
    #: matching sources need a look); None: some changed rule takes in every source
    sources: tuple[str, ...] | None
    changed: int  #: how many rules the edit changed (old and new counted apart)
    #: (old, new) numbers in ``check`` of rules alike but for their pattern; empty: the
    #: changed rules do not pair up, each is checked on its own
    pairs: tuple[tuple[int, int], ...] = ()

    @property
    def retitled(self) -> frozenset[int]:
        """Numbers in ``check`` of the changed retitle rules."""
        return frozenset(r.number for r in self.check.rules if r.action == "retitle") - (
            self.retitles
        )

    @property
    def fields(self) -> frozenset[str]:
        """What the check reads of each item."""
        return self.check.fields

    def may_change(self, view: ItemView) -> bool:
        """Some changed rule could act on this item (its stored outcome may not stand)."""
        scope = self.check.scope(view.sources)
        if not scope.numbers:
            return False
        fields = _Fields(view)
        hit = _asked(scope.title_sets, fields, scope.numbers)
        hit |= _asked(scope.other_sets, fields, scope.numbers)
        if hit & self.retitles:
            return True
        if self.pairs:
            return any(
                (o in hit or n in hit) if n in self.retitled else (o in hit) != (n in hit)
                for o, n in self.pairs
            )
        for number in scope.numbers - self.retitles:
            if (number in self.keeps) != (number in hit):  # keep acts on a miss
                return True
        return False


def edit(old: RuleSet, new: RuleSet) -> Edit | None:
    """What changed from ``old`` to ``new``; None: evaluate every item."""
    if any(r.matcher.engine != "re2" or not r.said for r in (*old.rules, *new.rules)):
        return None
    was, now = [r.said for r in old.rules], [r.said for r in new.rules]
    shorter = min(len(was), len(now))
    p = 0
    while p < shorter and was[p] == now[p]:
        p += 1
    s = 0
    while s < shorter - p and was[-1 - s] == now[-1 - s]:
        s += 1
    if p + s == 0:
        return None
    gone, came = old.rules[p : len(was) - s], new.rules[p : len(now) - s]
    changed = [*gone, *came]
    reads_title = any(r.field in ("title", "any") for r in changed)
    before = [r for r in new.rules[:p] if r.action == "retitle"] if reads_title else []
    check: list[Rule] = [
        replaced(r, number=number) for number, r in enumerate([*before, *changed], start=1)
    ]
    globs = None
    if all(r.sources for r in changed):
        globs = tuple(sorted({g for r in changed for g in r.sources}))
    pairs: tuple[tuple[int, int], ...] = ()
    if len(gone) == len(came) and all(map(_alike, gone, came)):
        first = len(before) + 1
        pairs = tuple((first + i, first + len(gone) + i) for i in range(len(gone)))
    return Edit(
        check=RuleSet(check, digest=""),
        retitles=frozenset(range(1, len(before) + 1)),
        keeps=frozenset(r.number for r in check[len(before) :] if r.action == "keep"),
        sources=globs,
        changed=len(changed),
        pairs=pairs,
    )


def _alike(a: Rule, b: Rule) -> bool:
    """The two rules are the same but for their pattern."""
    return (a.field, a.action, a.sources, a.categories, a.to, a.replace) == (
        b.field,
        b.action,
        b.sources,
        b.categories,
        b.to,
        b.replace,
    )
