"""A JSON API body -> a JSON value, and dotted paths into it.

List APIs answer JSON, JSONP (``cb({...})``) or a script assignment
(``var x = {...};``) depending on their query string; all three read the
same. The wrapper is taken apart by position, never by a backtracking
regex: a lazy ``(.*?)`` between ``cb(`` and ``)`` tried every split of a
body that opens and never closes (4,000 spaces after ``cb(`` held the GIL
for 58 s, issue 13). Paths are dotted keys with list indices as numbers or brackets:
``data.list``, ``data.list.0.title``, ``result[0].items``; ``""`` is the root.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aggregator.errors import EmptyFeed, NotAFeed, Unparseable
from aggregator.parse.encoding import decode_body

# anchored, possessive: each matches once at the start of the text or not at all
_TYPEOF_GUARD = re.compile(r"typeof\s++[\w$.]++\s*+===?\s*+['\"]function['\"]\s*+&&\s*+")
_DECLARATION = re.compile(r"(?:var|let|const)\s++")
_NAME = re.compile(r"[\w$.]++\s*+")
_PATH_PART = re.compile(r"[^.\[\]]+")


class _Missing:
    """Nothing at a path (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def load_json(body: bytes, headers: Mapping[str, str] | None = None) -> Any:
    """Parse a JSON/JSONP body; ``EmptyFeed``, ``NotAFeed`` (an HTML page) or ``Unparseable``."""
    content_type = None
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            content_type = value
    text = decode_body(body, content_type).text.strip(" \t\r\n\x00\ufeff")
    if not text:
        raise EmptyFeed("the body is empty")
    if text.startswith("<"):
        raise NotAFeed("an HTML or XML page, not JSON")
    try:
        return json.loads(unwrap_jsonp(text))
    except (ValueError, RecursionError) as exc:
        raise Unparseable(f"broken JSON: {exc}") from exc


def unwrap_jsonp(text: str) -> str:
    """The JSON inside ``callback(...)`` or ``var x = ...;``; other text as it is.

    Linear in the text: the wrapper is read from the start (comment, a
    ``typeof cb === "function" &&`` guard, the name) and the closing ``)`` or
    ``;`` from the end.
    """
    text = text.strip()
    if not text or text[0] in '{["-0123456789' or text in ("true", "false", "null"):
        return text
    pos = 0
    if text.startswith("/*"):
        end = text.find("*/", 2)
        if end < 0:
            return text
        pos = _skip_space(text, end + 2)
    declared = _DECLARATION.match(text, pos)
    if declared:
        pos = declared.end()
    elif guard := _TYPEOF_GUARD.match(text, pos):
        pos = guard.end()
    name = _NAME.match(text, pos)
    if name is None or name.end() >= len(text):
        return text
    opener = text[name.end()]
    tail = text.removesuffix(";").rstrip()
    if opener == "(" and not declared and tail.endswith(")"):
        return tail[name.end() + 1 : -1].strip()
    if opener == "=":
        return tail[name.end() + 1 :].strip()
    return text


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def get_path(doc: Any, path: str) -> Any:
    """The value at a dotted path, or ``MISSING``."""
    current = doc
    for part in _PATH_PART.findall(path):
        part = part.strip()
        if isinstance(current, dict):
            current = current.get(part, MISSING)
        elif isinstance(current, list) and _is_index(part):
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else MISSING
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


def describe(doc: Any) -> str:
    """A short picture of a JSON value for error messages: its type and top keys."""
    if isinstance(doc, dict):
        keys = ", ".join(list(map(str, doc))[:8])
        return f"an object with keys: {keys}" if keys else "an empty object"
    if isinstance(doc, list):
        return f"an array of {len(doc)}"
    return "null" if doc is None else f"a {type(doc).__name__}"


def _is_index(part: str) -> bool:
    return part.lstrip("-").isdigit()
