"""Config -> TOML text, written by a TOML library (tomli-w), never by hand.

Used by ``check-config --print`` (the effective config, defaults filled in)
and by ``import-opml`` (the tables it appends to an included file). Arrays
of tables are always written as ``[[name]]`` blocks, as an admin writes them;
tomli-w would inline the short ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import PurePath
from typing import Any

import tomli_w

from aggregator.config.schema import Config, format_duration


def dumps_toml(doc: Mapping[str, Any]) -> str:
    """``doc`` as TOML; top-level arrays of tables as ``[[name]]`` blocks."""
    plain = {k: v for k, v in doc.items() if not _is_array_of_tables(v)}
    chunks = [tomli_w.dumps(plain)] if plain else []
    for name, tables in doc.items():
        if _is_array_of_tables(tables):
            chunks += [_array_entry(name, table) for table in tables]
    return "\n".join(chunks)


def _array_entry(name: str, table: Mapping[str, Any]) -> str:
    """One ``[[name]]`` block: its keys, then its sub-tables as ``[name.sub]``."""
    nested = {k: v for k, v in table.items() if isinstance(v, Mapping) or _is_array_of_tables(v)}
    keys = {k: v for k, v in table.items() if k not in nested}
    header = tomli_w.dumps({name: 0}).split(" = ")[0]  # the key as TOML quotes it
    text = f"[[{header}]]\n" + tomli_w.dumps(keys)
    if nested:  # after [[name]], [name.sub] belongs to that last element
        text += "\n" + tomli_w.dumps({name: nested})
    return text


def _is_array_of_tables(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def effective_toml(config: Config) -> str:
    """The whole config as it is used: every default filled in, included files merged in."""
    doc = _toml_values(
        config.model_dump(by_alias=True, exclude={"path", "rule_origins"}, exclude_none=True)
    )
    doc["aggregator"].pop("include", None)  # their sources and categories are in here
    for source, raw in zip(config.sources, doc["sources"], strict=True):
        raw["interval"] = format_duration(config.interval(source))
    where = "".join(c for c in str(config.path) if c.isprintable())
    head = f"# effective config of {where}: defaults filled in, included files merged in\n\n"
    return head + dumps_toml(doc)


def _toml_values(value: Any) -> Any:
    """Model values as TOML has them: durations as "15m", paths as strings, no None."""
    if isinstance(value, Mapping):
        return {str(k): _toml_values(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        return [_toml_values(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)
