"""A JSON API body -> a JSON value, and dotted paths into it.

List APIs answer JSON, JSONP (``cb({...})``) or a script assignment
(``var x = {...};``) depending on their query string; all three read the
same. Paths are dotted keys with list indices as numbers or brackets:
``data.list``, ``data.list.0.title``, ``result[0].items``; ``""`` is the root.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aggregator.errors import EmptyFeed, NotAFeed, Unparseable
from aggregator.parse.encoding import decode_body

_CALLBACK = re.compile(
    r"(?:/\*.*?\*/\s*)?(?:typeof\s+[\w$.]+\s*===?\s*['\"]function['\"]\s*&&\s*)?"
    r"[\w$.]+\s*\(\s*(?P<body>.*?)\s*\)\s*;?",
    re.DOTALL,
)
_ASSIGNMENT = re.compile(r"(?:(?:var|let|const)\s+)?[\w$.]+\s*=\s*(?P<body>.*?)\s*;?", re.DOTALL)
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
    """The JSON inside ``callback(...)`` or ``var x = ...;``; other text as it is."""
    text = text.strip()
    if not text or text[0] in '{["-0123456789' or text in ("true", "false", "null"):
        return text
    for wrapper in (_CALLBACK, _ASSIGNMENT):
        m = wrapper.fullmatch(text)
        if m:
            return m.group("body")
    return text


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
