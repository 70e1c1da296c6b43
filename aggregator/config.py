"""Config files -> one frozen, validated ``Config``.

Every key is declared once, here, with pydantic. Loading reads the main file
and every ``include``; each problem is reported with its file, line where
known, and key path (``check-config`` prints them all). A ``Config`` is passed
in to whoever needs it, never read from a global.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aggregator.errors import ConfigError, ConfigProblem
from aggregator.model import Category

DEFAULT_PATHS = (Path("/etc/aggregator/aggregator.toml"), Path("config/aggregator.toml"))

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` (a bare number is seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f'not a duration: {value!r} (use "90s", "15m", "2h" or "1d")')


def _at_least_one_second(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Interval = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_at_least_one_second)
]
SourceId = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=100)]
CategoryId = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=100)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"only http and https URLs are allowed, not {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(Frozen):
    """Hard limits on what one source may cost (defaults in the README)."""

    connect_timeout: Duration = timedelta(seconds=10)
    read_timeout: Duration = timedelta(seconds=30)
    fetch_deadline: Duration = timedelta(seconds=60)  #: total wall time of one fetch
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  #: after decompression
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_items_per_fetch: int = Field(default=1000, ge=1)
    max_details_per_poll: int = Field(default=50, ge=0)
    parse_timeout: Duration = timedelta(seconds=20)
    per_host_concurrency: int = Field(default=2, ge=1)
    workers: int = Field(default=8, ge=1, le=256)
    max_interval: Duration = timedelta(hours=24)  #: cap on TTL/Cache-Control/Retry-After floors
    max_backoff: Duration = timedelta(hours=6)  #: cap on failure backoff
    jitter: float = Field(default=0.1, ge=0, le=0.5)  #: +- fraction of the interval
    redirect_confirmations: int = Field(default=3, ge=1)  #: polls before a 301 moves the URL
    #: how long a claimed source stays this instance's; renewed while its poll runs, so a
    #: crashed instance's sources return to the others within one lease
    lease: Duration = timedelta(minutes=2)

    @field_validator("lease")
    @classmethod
    def _lease_floor(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=5):  # renewed every third of it by a 1 s timer
            raise ValueError("must be at least 5s")
        return value


class AggregatorSettings(Frozen):
    database: str = "sqlite:///var/aggregator.db"
    output_dir: Path = Path("public")
    base_url: HttpUrl = "http://127.0.0.1:8080/"
    timezone: str = "Asia/Shanghai"
    entries_per_feed: int = Field(default=50, ge=1, le=10000)
    default_interval: Interval = timedelta(minutes=15)
    include: tuple[str, ...] = ()
    retention: Duration | None = None
    title: str = "aggregator"  #: the site title on index.html and all.atom
    language: str = Field(default="zh-CN", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    websub_hub: HttpUrl | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("base_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ServerSettings(Frozen):
    listen: str = "127.0.0.1:8080"
    cache_max_age: Duration = timedelta(minutes=5)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f'expected "host:port", got {value!r}')
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class CategoryConfig(Frozen):
    title: str = Field(min_length=1)
    description: str | None = None


class DetailMapping(Frozen):
    url: str  #: template, e.g. ``https://…/GetNewsText.do?id={infocode}``
    content: str  #: dotted path of the HTML body in the detail response


class JsonMapping(Frozen):
    items: str  #: dotted path of the item array
    infocode: str | None = None
    title: str | None = None
    published: str | None = None
    link: str | None = None
    content: str | None = None
    summary: str | None = None
    author: str | None = None
    guid: str | None = None
    detail: DetailMapping | None = None


class SourceConfig(Frozen):
    id: SourceId
    url: HttpUrl
    categories: tuple[CategoryId, ...] = ()
    interval: Interval | None = None
    type: Literal["feed", "json"] = "feed"
    infocode_pattern: str | None = None
    priority: int = 0
    enabled: bool = True
    category_from: Literal["author"] | None = None
    json_: JsonMapping | None = Field(default=None, alias="json")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("infocode_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
            if pattern.groups < 1:
                raise ValueError("needs a capturing group (group 1 is the infoCode)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> SourceConfig:
        if self.type == "json" and self.json_ is None:
            raise ValueError('type = "json" needs a [sources.json] table')
        if self.type == "feed" and self.json_ is not None:
            raise ValueError('[sources.json] is only for type = "json"')
        if not self.categories and self.category_from is None:
            raise ValueError("categories may be empty only when category_from is set")
        return self


class PostsSettings(Frozen):
    dir: Path = Path("site")
    site_url: str = ""
    archive_after: Duration | None = None


class Config(Frozen):
    """The whole validated configuration, main file plus includes."""

    aggregator: AggregatorSettings = AggregatorSettings()
    server: ServerSettings = ServerSettings()
    limits: Limits = Limits()
    categories: dict[CategoryId, CategoryConfig] = {}
    sources: tuple[SourceConfig, ...] = ()
    posts: PostsSettings | None = None
    path: Path = Path("aggregator.toml")  #: the main file, for messages and reloads

    def interval(self, source: SourceConfig) -> timedelta:
        return source.interval or self.aggregator.default_interval

    def category(self, category_id: str) -> Category | None:
        c = self.categories.get(category_id)
        return Category(category_id, c.title, c.description) if c else None

    def source(self, source_id: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.id == source_id), None)


# ---------------------------------------------------------------- loading

_MAIN_TABLES = {"aggregator", "server", "limits", "categories", "sources", "posts"}
_INCLUDE_TABLES = {"categories", "sources"}


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
    lines = _KeyLines(main)
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
            inc_lines = _KeyLines(inc)
            for key in sorted(set(inc_doc) - _INCLUDE_TABLES):
                problems.append(
                    ConfigProblem(
                        str(inc),
                        inc_lines.find(key),
                        key,
                        "an included file may hold only [[sources]] and [categories.*]",
                    )
                )
            _collect(inc_doc, inc, inc_lines, categories, sources, problems)

    _cross_check(categories, sources, problems)
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
    lines: _KeyLines,
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


def _cross_check(
    categories: dict[str, CategoryConfig],
    sources: list[tuple[SourceConfig, Path, str]],
    problems: list[ConfigProblem],
) -> None:
    seen: dict[str, tuple[Path, str]] = {}
    line_maps: dict[Path, _KeyLines] = {}
    for source, path, key in sources:
        lines = line_maps.get(path) or line_maps.setdefault(path, _KeyLines(path))
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
    lines: _KeyLines,
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


class _KeyLines:
    """Maps dotted key paths (``sources[1].json.items``) to their line in a TOML file.

    tomllib keeps no positions, so this walks the text once: table headers set
    the prefix, ``key =`` lines record prefix + key. Good enough for messages.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, path: Path) -> None:
        self.lines: dict[str, int] = {}
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        counters: dict[str, int] = {}
        prefix = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).replace('"', "").replace("'", "")
                if header.group(1) == "[[":
                    counters[name] = counters.get(name, -1) + 1
                    prefix = f"{name}[{counters[name]}]"
                else:
                    head, _, tail = name.partition(".")
                    prefix = (
                        f"{head}[{counters[head]}].{tail}" if head in counters and tail else name
                    )
                self.lines.setdefault(prefix, number)
                continue
            key = self._KEY.match(line)
            if key:
                name = key.group(1).replace('"', "").replace("'", "")
                self.lines.setdefault(f"{prefix}.{name}" if prefix else name, number)

    def find(self, key: str) -> int | None:
        """The line of ``key``, else of its nearest enclosing key or table."""
        key = key.replace(".json_.", ".json.").replace(".json_", ".json")
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else ""
        return None


def check_paths(paths: Sequence[str | os.PathLike[str]]) -> list[ConfigProblem]:
    """Validate config files; returns every problem (empty when all are valid)."""
    problems: list[ConfigProblem] = []
    for p in paths:
        try:
            load_config(p)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems
