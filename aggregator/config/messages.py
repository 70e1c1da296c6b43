"""Config problems in TOML terms: what an admin wrote, not what pydantic expected.

Every message a config problem carries is worded here, so the wording is
one table: pydantic's error types become "must be a string", "must be a
whole number"…; unknown keys get "did you mean `database`?" from the keys
the table they sit in declares; the tables an admin is likely to misname
(``[source]``, ``[sources]``, ``[category.x]``) are explained.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

#: what a list holds, by its key: "must be a list of category ids"
_LIST_OF = {
    "categories": "category ids",
    "include": "file names or globs",
    "formats": "format names",
    "sources": "source id globs",
    "to": "category ids",
}

#: patterns of the schema, said in words
_PATTERNS = {
    "^[a-z0-9_-]+$": "may hold only lowercase letters, digits, - and _",
}

_TYPES = {
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "path_type": "must be a string (a path)",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "missing": "is required",
    "url_type": "must be a string (a URL)",
    "timedelta_type": 'must be a duration like "15m"',
}


def key_path(prefix: str, loc: Sequence[int | str]) -> str:
    """``sources[2]`` + ``("categories", 0)`` -> ``sources[2].categories[0]``."""
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part != "__root__":
            key = f"{key}.{part}" if key else str(part)
    return key


def error_message(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """One pydantic error of ``model`` in the words of a TOML file."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    loc = error["loc"]
    last = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        return unknown_key(str(loc[-1]), keys_of(model, loc[:-1]))
    if kind in ("tuple_type", "list_type"):
        what = _LIST_OF.get(last)
        return f"must be a list of {what}" if what else "must be a list"
    if kind == "literal_error":
        return "must be " + str(ctx.get("expected", "")).replace("'", '"')
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERNS.get(pattern, f"must match {pattern}")
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else error["msg"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": "at least", "greater_than": "more than"}
        bound |= {"less_than_equal": "at most", "less_than": "less than"}
        limit = next(ctx[k] for k in ("ge", "gt", "le", "lt") if k in ctx)
        return f"must be {bound[kind]} {limit}"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _TYPES.get(kind, str(error["msg"]))


def unknown_key(key: str, known: Iterable[str]) -> str:
    """``unknown key; did you mean `database`?`` when one is near, else the keys there are."""
    known = sorted(known)
    near = did_you_mean(key, known)
    if near:
        return f"unknown key; did you mean `{near}`?"
    return f"unknown key; known here: {', '.join(known)}" if known else "unknown key"


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` that ``word`` is most likely a typo of, if any is close."""
    import difflib  # here: only a config with a mistake needs it

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def misplaced_table(key: str, value: Any, known: Iterable[str], *, main: bool) -> str:
    """A top-level name that is not one of the file's tables (or not of its shape), explained."""
    written = f"[[{key}]]" if isinstance(value, list) else f"[{key}]"
    if key == "source" or key == "sources" and isinstance(value, dict):
        what = "is not a section" if key == "source" else "is a single table here"
        return f"`{written}` {what}; sources are an array of tables: write `[[sources]]`"
    if key in ("sources", "rules"):
        return f"must be an array of tables: write `[[{key}]]` for each one"
    if key == "category" or key == "categories" and isinstance(value, list):
        first = next(iter(value), None) if isinstance(value, dict) else None
        if first is not None:
            written = f"[{key}.{first}]"
        return (
            f"`{written}` is not a section; each category is a table: "
            f"write `[categories.{first or '<id>'}]`"
        )
    if key == "categories":
        return "must be tables, one per category: write `[categories.<id>]`"
    if not main and key in ("aggregator", "server", "limits", "posts"):
        return (
            f"[{key}] belongs in the main config file; "
            "an included file holds only [[sources]], [[rules]] and [categories.*]"
        )
    return unknown_key(key, known)


def keys_of(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys the table at ``loc`` inside ``model`` declares (by their TOML names)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = next(
            (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
        )
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through ``X | None``, ``Annotated`` and containers."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
