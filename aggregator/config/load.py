"""Config files -> one frozen, validated ``Config``.

Loading reads the main file and every ``include``; each problem is reported
with its file, line where known, and key path (``check-config`` prints them
all, in one run). A ``Config`` is passed in to whoever needs it, never read
from a global.

    main file ──read──▶ its tables, its includes ──read──▶ their tables
        ──validate──▶ settings, categories, sources, rules (each on its own)
        ──cross-check──▶ ids unique, categories declared (over the raw data too)
        ──assemble──▶ Config with paths made absolute
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aggregator.config.keylines import KeyLines
from aggregator.config.messages import did_you_mean, error_message, key_path, misplaced_table
from aggregator.config.schema import (
    DEFAULT_PATHS,
    ID_PATTERN,
    AggregatorSettings,
    CategoryConfig,
    Config,
    DedupeSettings,
    Limits,
    PostsSettings,
    RuleConfig,
    ServerSettings,
    SourceConfig,
)
from aggregator.errors import ConfigError, ConfigProblem
from aggregator.model import RESERVED_CATEGORY_IDS

#: the single tables of the main file, by name
_SECTIONS: dict[str, type[BaseModel]] = {
    "aggregator": AggregatorSettings,
    "server": ServerSettings,
    "limits": Limits,
    "dedupe": DedupeSettings,
    "posts": PostsSettings,
}
_INCLUDE_TABLES = {"categories", "sources", "rules"}
_MAIN_TABLES = set(_SECTIONS) | _INCLUDE_TABLES


@dataclass(frozen=True, slots=True)
class _File:
    """One config file as read: its tables and where its keys stand."""

    path: Path
    doc: dict[str, Any]
    lines: KeyLines
    main: bool

    def problem(self, key: str, message: str) -> ConfigProblem:
        return ConfigProblem(str(self.path), self.lines.find(key) if key else None, key, message)


@dataclass(frozen=True, slots=True)
class _SourceEntry:
    """One ``[[sources]]`` table: its raw data, and the record when it validated."""

    file: _File
    key: str  #: ``sources[2]``
    raw: Any
    source: SourceConfig | None


def resolve_config_path(arg: str | os.PathLike[str] | None) -> Path:
    """``-c PATH``, else ``$AGGREGATOR_CONFIG``, else the first default that exists.

    Raises ConfigError naming every place looked in when none has a file.
    """
    if arg:
        return _existing(Path(arg), "given with -c")
    env = os.environ.get("AGGREGATOR_CONFIG")
    if env:
        return _existing(Path(env), "from $AGGREGATOR_CONFIG")
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    defaults = ", ".join(f"{p.absolute()} (no such file)" for p in DEFAULT_PATHS)
    raise ConfigError(
        [
            ConfigProblem(
                "",
                None,
                "",
                "no config file found; tried: -c (not given), $AGGREGATOR_CONFIG (not set), "
                + defaults,
            )
        ]
    )


def _existing(path: Path, origin: str) -> Path:
    if path.exists():
        return path
    raise ConfigError([ConfigProblem(str(path), None, "", f"config file not found ({origin})")])


def load_config(
    path: str | os.PathLike[str], *, read: list[tuple[Path, bytes]] | None = None
) -> Config:
    """Read, validate and freeze the main file and every include; raise ConfigError.

    ``read``: each file's path and bytes are appended as read (the cache's key, cache.py).
    """
    main = Path(path).absolute()
    problems: list[ConfigProblem] = []
    files = _read_files(main, problems, [] if read is None else read)
    if not files:
        raise ConfigError(problems)
    sections = _sections(files[0], problems)
    categories = _categories(files, problems)
    entries = _sources(files, problems)
    rules = _rules(files, problems)
    _cross_check(categories, entries, problems)
    _check_rule_categories(categories, rules, problems)
    config = (
        None if problems else _assemble(files[0], sections, categories, entries, rules, problems)
    )
    if config is None:
        raise ConfigError(_in_file_order(problems, files))
    return config


def _read_files(
    main: Path, problems: list[ConfigProblem], read: list[tuple[Path, bytes]]
) -> list[_File]:
    """The main file, then each included file once (by its resolved path); [] if main fails."""
    doc = _read_toml(main, problems, read)
    if doc is None:
        return []
    files = [_File(main, doc, KeyLines(main), main=True)]
    paths, unmatched = config_files(main, include_patterns(doc))
    for pattern in unmatched:  # followed even when [aggregator] has other problems
        problems.append(
            files[0].problem("aggregator.include", f"included file not found: {pattern}")
        )
    for path in paths[1:]:
        inc_doc = _read_toml(path, problems, read)
        if inc_doc is not None:
            files.append(_File(path, inc_doc, KeyLines(path), main=False))
    for file in files:
        _check_tables(file, problems)
    return files


def include_patterns(doc: dict[str, Any]) -> list[str]:
    """The ``[aggregator] include`` strings of a main file's tables, whatever else is wrong."""
    raw = doc.get("aggregator", {})
    include = raw.get("include", []) if isinstance(raw, dict) else []
    return [p for p in include if isinstance(p, str)] if isinstance(include, list) else []


def config_files(main: Path, patterns: list[str] | tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """The main file, then each file the patterns name once (by resolved path, relative to
    the main file's folder); and the patterns without wildcards that name no file."""
    paths = [main]
    seen = {main.resolve()}
    unmatched = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(main.parent / pattern)))
        if not matches and not glob.has_magic(pattern):
            unmatched.append(pattern)
        for match in matches:
            path = Path(match).absolute()
            if path.resolve() not in seen:
                seen.add(path.resolve())
                paths.append(path)
    return paths, unmatched


def _read_toml(
    path: Path, problems: list[ConfigProblem], read: list[tuple[Path, bytes]]
) -> dict[str, Any] | None:
    import tomllib  # here: a run whose Config comes from the cache (cache.py) parses no TOML

    try:
        data = path.read_bytes()
        read.append((path, data))
        return tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        problems.append(ConfigProblem(str(path), None, "", "file not found"))
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        at = exc.object[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte 0x{bad}); save the file as UTF-8"
        problems.append(ConfigProblem(str(path), at, "", message))
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        problems.append(
            ConfigProblem(
                str(path), int(line.group(1)) if line else None, "", f"TOML syntax: {exc}"
            )
        )
    except OSError as exc:
        problems.append(ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror}"))
    return None


def _check_tables(file: _File, problems: list[ConfigProblem]) -> None:
    """Every top-level name is one of the file's tables, of the right shape."""
    known = _MAIN_TABLES if file.main else _INCLUDE_TABLES
    for key, value in file.doc.items():
        if key in ("sources", "rules") and isinstance(value, list):
            continue
        if key == "categories" and isinstance(value, dict):
            continue
        if key in known - _INCLUDE_TABLES:
            continue
        problems.append(file.problem(key, misplaced_table(key, value, known, main=file.main)))


def _sections(main: _File, problems: list[ConfigProblem]) -> dict[str, Any]:
    """[aggregator], [server], [limits], [posts]: each validated on its own."""
    sections = {}
    for name, model in _SECTIONS.items():
        if name in main.doc:
            section = _validate(model, main.doc[name], main, name, problems)
            if section is not None:
                sections[name] = section
    return sections


def _categories(
    files: list[_File], problems: list[ConfigProblem]
) -> dict[str, CategoryConfig | None]:
    """Every [categories.<id>] of every file; ``None`` where the id is declared but invalid."""
    categories: dict[str, CategoryConfig | None] = {}
    for file in files:
        raw = file.doc.get("categories")
        for cid, body in raw.items() if isinstance(raw, dict) else ():
            key = f"categories.{cid}"
            wrong = category_id_problem(cid)
            if wrong:
                problems.append(file.problem(key, wrong))
                continue
            category = _validate(CategoryConfig, body, file, key, problems)
            before = categories.get(cid)
            if before is not None and category is not None and before != category:
                problems.append(file.problem(key, "category declared twice with different values"))
            if before is None:
                categories[cid] = category
    return categories


def category_id_problem(cid: str) -> str | None:
    """What is wrong with a category id, in words; None when it is fine."""
    if len(cid) > 100:
        return f"category id is {len(cid)} characters long; at most 100"
    if not ID_PATTERN.fullmatch(cid):
        return "category id may hold only lowercase letters, digits, - and _"
    if cid in RESERVED_CATEGORY_IDS:
        return f"category id is reserved ({', '.join(sorted(RESERVED_CATEGORY_IDS))})"
    return None


def _sources(files: list[_File], problems: list[ConfigProblem]) -> list[_SourceEntry]:
    """Every [[sources]] of every file, validated one by one (the raw data kept)."""
    entries = []
    for file in files:
        raw = file.doc.get("sources")
        for index, body in enumerate(raw if isinstance(raw, list) else ()):
            key = f"sources[{index}]"
            source = _validate(SourceConfig, body, file, key, problems)
            entries.append(_SourceEntry(file, key, body, source))
    return entries


def _rules(
    files: list[_File], problems: list[ConfigProblem]
) -> list[tuple[RuleConfig, _File, str]]:
    """Every [[rules]] of every file, in order: main file, then the includes."""
    rules = []
    for file in files:
        raw = file.doc.get("rules")
        for index, body in enumerate(raw if isinstance(raw, list) else ()):
            key = f"rules[{index}]"
            rule = _validate(RuleConfig, body, file, key, problems)
            if rule is not None:
                rules.append((rule, file, key))
    return rules


def _check_rule_categories(
    categories: dict[str, CategoryConfig | None],
    rules: list[tuple[RuleConfig, _File, str]],
    problems: list[ConfigProblem],
) -> None:
    """A rule's ``categories`` and ``to`` name declared categories only."""
    for rule, file, key in rules:
        for name, ids in (("categories", rule.categories), ("to", rule.to)):
            for cid in ids:
                if cid not in categories:
                    problems.append(file.problem(f"{key}.{name}", _undeclared(cid, categories)))


def _cross_check(
    categories: dict[str, CategoryConfig | None],
    entries: list[_SourceEntry],
    problems: list[ConfigProblem],
) -> None:
    """Ids unique and categories declared, over every source, valid or not."""
    seen: dict[str, _SourceEntry] = {}
    for entry in entries:
        raw = entry.raw if isinstance(entry.raw, dict) else {}
        sid = raw.get("id")
        if isinstance(sid, str) and sid in seen:
            first = seen[sid]
            problems.append(
                entry.file.problem(
                    f"{entry.key}.id",
                    f"duplicate source id {sid!r} (first in {first.file.path} at {first.key})",
                )
            )
        elif isinstance(sid, str):
            seen[sid] = entry
        cids = raw.get("categories")
        for cid in cids if isinstance(cids, list) else ():
            if not isinstance(cid, str) or cid in categories:
                continue
            if cid in RESERVED_CATEGORY_IDS:
                reserved = ", ".join(sorted(RESERVED_CATEGORY_IDS))
                message = f"category {cid!r} is reserved for the outputs ({reserved})"
            elif category_id_problem(cid):
                continue  # a malformed id: the schema has said so
            else:
                message = _undeclared(cid, categories)
            problems.append(entry.file.problem(f"{entry.key}.categories", message))


def _undeclared(cid: str, categories: dict[str, Any]) -> str:
    near = did_you_mean(cid, categories)
    if near:
        return (
            f"category {cid!r} is not declared; did you mean `{near}`? "
            f"(else add a [categories.{cid}] table)"
        )
    return f"category {cid!r} is not declared (add a [categories.{cid}] table)"


def _validate(
    model: type[BaseModel],
    data: Any,
    file: _File,
    prefix: str,
    problems: list[ConfigProblem],
) -> Any:
    """``model`` from ``data``, or None with each of its problems in TOML words."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(file.problem(key_path(prefix, err["loc"]), error_message(err, model)))
        return None


def _assemble(
    main: _File,
    sections: dict[str, Any],
    categories: dict[str, CategoryConfig | None],
    entries: list[_SourceEntry],
    rules: list[tuple[RuleConfig, _File, str]],
    problems: list[ConfigProblem],
) -> Config | None:
    """The frozen Config, paths made relative to the main file's folder."""
    base = main.path.parent
    settings = sections.get("aggregator") or AggregatorSettings()
    settings = settings.model_copy(
        update={
            "database": _absolute_sqlite(settings.database, base),
            "output_dir": base / settings.output_dir,
        }
    )
    posts = sections.get("posts")
    if isinstance(posts, PostsSettings):
        posts = posts.model_copy(update={"dir": base / posts.dir})
    try:
        return Config(
            aggregator=settings,
            server=sections.get("server") or ServerSettings(),
            limits=sections.get("limits") or Limits(),
            dedupe=sections.get("dedupe") or DedupeSettings(),
            categories={cid: c for cid, c in categories.items() if c is not None},
            sources=tuple(e.source for e in entries if e.source is not None),
            posts=posts,
            rules=tuple(rule for rule, _, _ in rules),
            rule_origins=tuple(f"{f.path}:{f.lines.find(k) or '?'}" for _, f, k in rules),
            path=main.path,
        )
    except ValidationError as exc:  # a check above let something through: still no traceback
        for err in exc.errors():
            problems.append(main.problem(key_path("", err["loc"]), error_message(err, Config)))
        return None


def _in_file_order(problems: list[ConfigProblem], files: list[_File]) -> list[ConfigProblem]:
    """Main file first, then each include; by line inside a file."""
    rank = {str(f.path): i for i, f in enumerate(files)}
    return sorted(problems, key=lambda p: (rank.get(p.file, len(rank)), p.line or 0))


def _absolute_sqlite(url: str, base: Path) -> str:
    """A relative ``sqlite:///x.db`` is relative to the config file's folder."""
    prefix = next((p for p in ("sqlite:///", "sqlite+pysqlite:///") if url.startswith(p)), None)
    if prefix is None:
        return url
    rest = url[len(prefix) :]
    if not rest or rest.startswith("/") or rest.startswith(":memory:"):
        return url
    return prefix + str(base / rest)
