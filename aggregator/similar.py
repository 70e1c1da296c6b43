"""Near-duplicates: normalized titles and text similarity (pure).

Two versions from different sources are one story when their normalized
titles are equal, they were published within ``[dedupe] window`` of each
other, and the shorter text's character shingles are at least ``[dedupe] threshold``
found in the other's (containment: a syndication copy often carries only the
start of the story). A matching title alone never merges: weekly
digests, "每日快讯" and "Morning Briefing" share a title and nothing else.
The store finds the candidates by an index on the normalized title; only
those few are compared here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

#: a prefix in brackets: 【独家】, [视频], (Update)
_PREFIX = re.compile(r"^\s*(?:[【\[［(（〔][^】\]］)）〕]{1,12}[】\]］)）〕]\s*)+")
#: a site suffix after a separator: " - Reuters", "｜新浪财经", " | BBC News", "_网易新闻"
_SUFFIX = re.compile(r"\s*(?:\s[-–—|]\s|[｜|_—–])\s*[^-–—|｜_]{1,24}$")
_NOT_LETTERS = re.compile(r"[\W_]+")  #: anything but letters and digits (one pass, in C)
SHINGLE = 3  #: characters per shingle: CJK words are one or two characters long
TEXT_MAX = 4000  #: characters of text compared: enough to tell stories apart, bounded cost
TEXT_MIN = 20  #: shorter texts say too little to call two stories one
TITLE_MIN = 4  #: a shorter normalized title ("Update") never matches


@dataclass(frozen=True, slots=True)
class SimilarRule:
    """``[dedupe]`` as the store's matcher reads it, for a source with ``similar`` on."""

    window: timedelta = timedelta(hours=48)
    threshold: float = 0.5


def normalized_title(title: str | None) -> str | None:
    """NFKC, case-folded, bracketed prefix and site suffix gone, only letters and digits.

    None where too little is left to identify a story.
    """
    if not title:
        return None
    text = unicodedata.normalize("NFKC", title[:500]).casefold().strip()
    text = _PREFIX.sub("", text)
    stripped = _SUFFIX.sub("", text)
    core = _letters(stripped)
    if len(core) < TITLE_MIN * 2 and stripped != text:  # keep a title that is mostly its suffix
        core = _letters(text)
    return core if len(core) >= TITLE_MIN else None


def _letters(text: str) -> str:
    return _NOT_LETTERS.sub("", text)


def shingles(text: str | None) -> frozenset[str]:
    """The character 3-grams of a text's letters and digits (case-folded, NFKC)."""
    if not text:
        return frozenset()
    core = _letters(unicodedata.normalize("NFKC", text[: TEXT_MAX * 2]).casefold())[:TEXT_MAX]
    if len(core) < TEXT_MIN:
        return frozenset()
    return frozenset(core[i : i + SHINGLE] for i in range(len(core) - SHINGLE + 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """How much of the smaller shingle set the other holds; 0 where either is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))
