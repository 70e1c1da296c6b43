"""A rule's pattern on a bounded engine: RE2 where it reads the pattern as Python does.

Rules are written in Python's syntax (validated with ``re``, for its
messages). RE2 runs in linear time, so most patterns go there; Python's
Unicode classes are spelled out for it (``\\w`` is a letter of 汉字 to Python,
not to RE2). What RE2 cannot run (backreferences, lookaround, Unicode ``\\b``,
``\\W`` inside a class) runs on the ``regex`` module with a time budget per
match: it checks the clock inside its matcher, where Python's ``re`` holds
the GIL and checks nothing, so no thread or signal could stop it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

#: wall time one match of a non-RE2 pattern may take on one item
MATCH_BUDGET_SECONDS = 0.1
#: a leading ``(?-i)`` makes the whole pattern case-sensitive (Python's re has no such
#: global flag; ``(?-i:…)`` scopes it to a part)
CASE_SENSITIVE_PREFIX = "(?-i)"

#: Python's ``str.isspace()`` set, which its ``\s`` matches; RE2's ``\s`` is ``[\t\n\f\r ]``
_SPACE = r"\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}"
_WORD = r"\p{L}\p{N}_"
#: escape -> (outside a class, inside one); None: RE2 cannot say it
_UNICODE: dict[str, tuple[str | None, str | None]] = {
    "w": (f"[{_WORD}]", _WORD),
    "W": (f"[^{_WORD}]", None),
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "s": (f"[{_SPACE}]", _SPACE),
    "S": (f"[^{_SPACE}]", None),
    "b": (None, None),
    "B": (None, None),
}


#: what Python's ``str.split()`` (collapsing a body's text) and ``\\s`` take for whitespace
WHITESPACE = frozenset(
    (*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B))
    + (0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
)


class RuleBudgetExceeded(Exception):
    """A non-RE2 pattern ran past its budget on one item."""


def for_re2(pattern: str) -> str | None:
    """``pattern`` as RE2 reads it the way Python does; None where it cannot be said.

    Also None for what RE2 reads otherwise without an error: ``{,n}`` (a literal to
    RE2) and ``[[:alpha:]]`` (a POSIX class to RE2, a set of characters to Python).
    """
    if "{," in pattern or "[:" in pattern:
        return None
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            e = pattern[i + 1]
            if e in _UNICODE:
                spelled = _UNICODE[e][1 if in_class else 0]
                if spelled is None:
                    return None
                out.append(spelled)
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if not in_class and c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < len(pattern) and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < len(pattern) and pattern[i] == "]":  # a ] first in a class is literal
                out.append(r"\]")
                i += 1
            continue
        if in_class and c == "]":
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


#: RE2's memory for one set of patterns, per pattern (at least its default, 8 MiB, and at
#: most 64 MiB): a set of many case-folded patterns whose DFA outgrows its memory keeps
#: throwing its states away and runs several times slower (88 title patterns: 10 us a
#: title with the default, 1.5 us with 32 MiB, of which it used 20)
SET_MEMORY_PER_PATTERN = 384 << 10


@cache
def re2_options(case_sensitive: bool, set_of: int = 0) -> Any:
    """RE2's options (``set_of``: for a set of that many patterns); the engines are imported
    only where there are rules (a poll of a config without rules loads neither)."""
    import re2

    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    if set_of:
        options.max_mem = min(64 << 20, max(8 << 20, set_of * SET_MEMORY_PER_PATTERN))
    return options


@dataclass(frozen=True, slots=True)
class Matcher:
    """One compiled pattern on one engine."""

    pattern: str  #: as written
    case_sensitive: bool
    engine: Literal["re2", "regex"]
    compiled: Any  #: re2._Regexp or regex.Pattern
    re2_pattern: str | None = None  #: what RE2 was given (for its sets of many patterns)
    #: it matches a text as it matches that text with its whitespace collapsed (``space_blind``)
    space_blind: bool = False

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
    re.compile(body, 0 if case_sensitive else re.IGNORECASE)  # Python's syntax and messages
    import re2
    import regex

    spelled = for_re2(body)
    if spelled is not None:
        try:
            compiled = re2.compile(spelled, re2_options(case_sensitive))
            blind = space_blind(body)
            return Matcher(pattern, case_sensitive, "re2", compiled, spelled, blind)
        except re2.error:
            pass  # backreference, lookaround…: the budgeted engine below
    try:
        compiled = regex.compile(body, regex.V0 | (0 if case_sensitive else regex.IGNORECASE))
    except regex.error as exc:
        raise re.error(f"not supported: {exc}") from exc
    return Matcher(pattern, case_sensitive, "regex", compiled)


def space_blind(pattern: str) -> bool:
    """Whether ``pattern`` matches a text just where it matches the text with every run of
    whitespace made one space and the ends stripped: nothing in it can take a whitespace
    character, and it has no anchor (``^``, ``$``, ``\\b``…). Its matches then lie within the
    runs of non-space, which collapsing leaves as they were; so it is asked on the body's
    text as it comes from its tags, without the collapse (half of that text's cost)."""
    import re._parser as sre_parse  # Python's own reading of the pattern

    try:
        return _blind(sre_parse.parse(pattern, re.IGNORECASE))
    except (re.error, RecursionError):
        return False


def _blind(items: Any) -> bool:
    from re import _parser as c  # its names for the parts of a pattern

    for op, av in items:
        if op is c.LITERAL:
            if av in WHITESPACE:
                return False
        elif op is c.IN:
            for kind, value in av:
                if kind is c.LITERAL:
                    if value in WHITESPACE:
                        return False
                elif kind is c.RANGE:
                    if any(value[0] <= w <= value[1] for w in WHITESPACE):
                        return False
                elif kind is not c.CATEGORY or value not in (c.CATEGORY_DIGIT, c.CATEGORY_WORD):
                    return False  # a negated class, \\s, \\S, \\W, \\D…
        elif op is c.BRANCH:
            if not all(_blind(branch) for branch in av[1]):
                return False
        elif op is c.SUBPATTERN:
            if not _blind(av[3]):
                return False
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if not _blind(av[2]):
                return False
        elif op is c.ATOMIC_GROUP:
            if not _blind(av):
                return False
        else:  # ., [^x], anchors, backreferences, lookaround
            return False
    return True


def check_replace(pattern: str, replace: str) -> None:
    """Raises re.error when ``replace`` names a group the pattern lacks (``\\2``, ``\\g<x>``)."""
    compiled = re.compile(pattern.removeprefix(CASE_SENSITIVE_PREFIX), re.IGNORECASE)
    try:
        compiled.sub(replace, "")  # parses the template before looking for matches
    except IndexError as exc:
        raise re.error(str(exc)) from exc
