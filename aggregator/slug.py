"""Ids from names: 科技日报 -> kejiribao, Café Crème -> cafe-creme.

One rule for publisher categories (dedupe) and for the source and category
ids ``import-opml`` makes: Chinese as pinyin syllables, accents dropped,
every other run of characters outside [a-z0-9] one dash. A publisher
already stored keeps its id whatever this gives (it is found by title).
"""

from __future__ import annotations

import re
import unicodedata

_NOT_ID = re.compile(r"[^a-z0-9]+")
_DASHES = re.compile(r"-{2,}")


def slug(name: str, limit: int) -> str:
    """The id for ``name``, at most ``limit`` characters; "" when nothing of it is usable."""
    if name.isascii():
        pieces = [name]
    else:
        from pypinyin import lazy_pinyin  # a second to import: only for names that need it

        pieces = lazy_pinyin(name)
    parts = [_NOT_ID.sub("-", _without_accents(piece).lower()) for piece in pieces]
    return _DASHES.sub("-", "".join(parts)).strip("-")[:limit].strip("-")


def _without_accents(text: str) -> str:
    """é -> e: combining marks dropped after canonical decomposition (no other folding)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
