"""Config files -> one frozen, validated ``Config``.

Loading reads the main file and every ``include``; each problem is reported
with its file, line where known, and key path (``check-config`` prints them
all). A ``Config`` is passed in to whoever needs it, never read from a global.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aggregator.config.keylines import KeyLines
from aggregator.config.schema import (
    DEFAULT_PATHS,
    AggregatorSettings,
    CategoryConfig,
    Config,
    Limits,
    PostsSettings,
    RuleConfig,
    ServerSettings,
    SourceConfig,
)
from aggregator.errors import ConfigError, ConfigProblem

_MAIN_TABLES = {"aggregator", "server", "limits", "categories", "sources", "posts", "rules"}
_INCLUDE_TABLES = {"categories", "sources", "rules"}


def resolve_config_path(arg: str | os.PathLike[str] | None) -> Path:
    """``-c PATH``, else ``$AGGREGATOR_CONFIG``, else the first default that exists."""
    if arg:
        return Path(arg)
    env = os.environ.get("AGGREGATOR_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_PATHS[-1]


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and freeze the main file and every include; raise ConfigError."""
    main = Path(path).absolute()
    problems: list[ConfigProblem] = []
    doc = _read_toml(main, problems)
    if doc is None:
        raise ConfigError(problems)
    lines = KeyLines(main)
    for key in sorted(set(doc) - _MAIN_TABLES):
        problems.append(ConfigProblem(str(main), lines.find(key), key, "unknown key"))

    sections: dict[str, Any] = {}
    for name, model in (
        ("aggregator", AggregatorSettings),
        ("server", ServerSettings),
        ("limits", Limits),
        ("posts", PostsSettings),
    ):
        if name in doc:
            sections[name] = _validate(model, doc[name], main, name, lines, problems)
    settings = sections.get("aggregator") or AggregatorSettings()

    categories: dict[str, CategoryConfig] = {}
    sources: list[tuple[SourceConfig, Path, str]] = []
    _collect(doc, main, lines, categories, sources, problems)
    rules: list[tuple[RuleConfig, Path, str]] = []
    _collect_rules(doc, main, lines, rules, problems)

    for pattern in _include_patterns(doc):
        matches = sorted(glob.glob(str(main.parent / pattern)))
        if not matches and not glob.has_magic(pattern):
            problems.append(
                ConfigProblem(
                    str(main),
                    lines.find("aggregator.include"),
                    "aggregator.include",
                    f"included file not found: {pattern}",
                )
            )
        for name in matches:
            inc = Path(name).absolute()
            if inc == main:
                continue
            inc_doc = _read_toml(inc, problems)
            if inc_doc is None:
                continue
            inc_lines = KeyLines(inc)
            for key in sorted(set(inc_doc) - _INCLUDE_TABLES):
                problems.append(
                    ConfigProblem(
                        str(inc),
                        inc_lines.find(key),
                        key,
                        "an included file may hold only [[sources]], [[rules]] and [categories.*]",
                    )
                )
            _collect(inc_doc, inc, inc_lines, categories, sources, problems)
            _collect_rules(inc_doc, inc, inc_lines, rules, problems)

    _cross_check(categories, sources, problems)
    _check_rule_categories(categories, rules, problems)
    if problems:
        raise ConfigError(problems)

    base = main.parent
    settings = settings.model_copy(
        update={
            "database": _absolute_sqlite(settings.database, base),
            "output_dir": base / settings.output_dir,
        }
    )
    posts = sections.get("posts")
    if isinstance(posts, PostsSettings):
        posts = posts.model_copy(update={"dir": base / posts.dir})
    return Config(
        aggregator=settings,
        server=sections.get("server") or ServerSettings(),
        limits=sections.get("limits") or Limits(),
        categories=categories,
        sources=tuple(s for s, _, _ in sources),
        posts=posts,
        rules=tuple(r for r, _, _ in rules),
        rule_origins=tuple(f"{p}:{KeyLines(p).find(k) or '?'}" for _, p, k in rules),
        path=main,
    )


def _include_patterns(doc: dict[str, Any]) -> list[str]:
    """Includes are followed even when [aggregator] has other problems, to report them all."""
    raw = doc.get("aggregator", {})
    include = raw.get("include", []) if isinstance(raw, dict) else []
    return [p for p in include if isinstance(p, str)] if isinstance(include, list) else []


def _read_toml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    try:
        text = path.read_bytes().decode("utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        problems.append(ConfigProblem(str(path), None, "", "file not found"))
    except UnicodeDecodeError as exc:
        problems.append(ConfigProblem(str(path), None, "", f"not UTF-8: {exc}"))
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


def _collect(
    doc: dict[str, Any],
    path: Path,
    lines: KeyLines,
    categories: dict[str, CategoryConfig],
    sources: list[tuple[SourceConfig, Path, str]],
    problems: list[ConfigProblem],
) -> None:
    raw_categories = doc.get("categories", {})
    if not isinstance(raw_categories, dict):
        problems.append(
            ConfigProblem(
                str(path),
                lines.find("categories"),
                "categories",
                "must be a table of [categories.<id>]",
            )
        )
        raw_categories = {}
    for cid, body in raw_categories.items():
        key = f"categories.{cid}"
        if not re.fullmatch(r"[a-z0-9_-]+", cid):
            problems.append(
                ConfigProblem(str(path), lines.find(key), key, "category id must match [a-z0-9_-]+")
            )
            continue
        cat = _validate(CategoryConfig, body, path, key, lines, problems)
        if isinstance(cat, CategoryConfig):
            if cid in categories and categories[cid] != cat:
                problems.append(
                    ConfigProblem(
                        str(path),
                        lines.find(key),
                        key,
                        "category declared twice with different values",
                    )
                )
            categories[cid] = cat
    raw_sources = doc.get("sources", [])
    if not isinstance(raw_sources, list):
        problems.append(
            ConfigProblem(
                str(path),
                lines.find("sources"),
                "sources",
                "must be an array of [[sources]] tables",
            )
        )
        return
    for index, body in enumerate(raw_sources):
        key = f"sources[{index}]"
        source = _validate(SourceConfig, body, path, key, lines, problems)
        if isinstance(source, SourceConfig):
            sources.append((source, path, key))


def _collect_rules(
    doc: dict[str, Any],
    path: Path,
    lines: KeyLines,
    rules: list[tuple[RuleConfig, Path, str]],
    problems: list[ConfigProblem],
) -> None:
    raw = doc.get("rules", [])
    if not isinstance(raw, list):
        problems.append(
            ConfigProblem(
                str(path), lines.find("rules"), "rules", "must be an array of [[rules]] tables"
            )
        )
        return
    for index, body in enumerate(raw):
        key = f"rules[{index}]"
        rule = _validate(RuleConfig, body, path, key, lines, problems)
        if isinstance(rule, RuleConfig):
            rules.append((rule, path, key))


def _check_rule_categories(
    categories: dict[str, CategoryConfig],
    rules: list[tuple[RuleConfig, Path, str]],
    problems: list[ConfigProblem],
) -> None:
    """A rule's ``categories`` and ``to`` name declared categories only."""
    for rule, path, key in rules:
        for name, ids in (("categories", rule.categories), ("to", rule.to)):
            for cid in ids:
                if cid not in categories:
                    problems.append(
                        ConfigProblem(
                            str(path),
                            KeyLines(path).find(f"{key}.{name}"),
                            f"{key}.{name}",
                            f"category {cid!r} is not declared (add a [categories.{cid}] table)",
                        )
                    )


def _cross_check(
    categories: dict[str, CategoryConfig],
    sources: list[tuple[SourceConfig, Path, str]],
    problems: list[ConfigProblem],
) -> None:
    seen: dict[str, tuple[Path, str]] = {}
    line_maps: dict[Path, KeyLines] = {}
    for source, path, key in sources:
        lines = line_maps.get(path) or line_maps.setdefault(path, KeyLines(path))
        if source.id in seen:
            first_path, first_key = seen[source.id]
            problems.append(
                ConfigProblem(
                    str(path),
                    lines.find(f"{key}.id"),
                    f"{key}.id",
                    f"duplicate source id {source.id!r} (first in {first_path} at {first_key})",
                )
            )
        else:
            seen[source.id] = (path, key)
        for cid in source.categories:
            if cid not in categories:
                problems.append(
                    ConfigProblem(
                        str(path),
                        lines.find(f"{key}.categories"),
                        f"{key}.categories",
                        f"category {cid!r} is not declared (add a [categories.{cid}] table)",
                    )
                )


def _validate(
    model: type[BaseModel],
    data: Any,
    path: Path,
    prefix: str,
    lines: KeyLines,
    problems: list[ConfigProblem],
) -> BaseModel | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
            key = f"{prefix}.{loc}" if loc else prefix
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(ConfigProblem(str(path), lines.find(key), key, msg))
        return None


def _absolute_sqlite(url: str, base: Path) -> str:
    """A relative ``sqlite:///x.db`` is relative to the config file's folder."""
    prefix = next((p for p in ("sqlite:///", "sqlite+pysqlite:///") if url.startswith(p)), None)
    if prefix is None:
        return url
    rest = url[len(prefix) :]
    if not rest or rest.startswith("/") or rest.startswith(":memory:"):
        return url
    return prefix + str(base / rest)


def check_paths(paths: Sequence[str | os.PathLike[str]]) -> list[ConfigProblem]:
    """Validate config files; returns every problem (empty when all are valid)."""
    problems: list[ConfigProblem] = []
    for p in paths:
        try:
            load_config(p)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems
