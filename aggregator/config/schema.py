"""Every config key, declared once with pydantic: the frozen records a Config is made of."""

from __future__ import annotations

import json
import re
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
    field_validator,
    model_validator,
)

from aggregator.model import Category

DEFAULT_PATHS = (Path("/etc/aggregator/aggregator.toml"), Path("config/aggregator.toml"))

#: source and category ids: they name files and URLs
ID_PATTERN = re.compile(r"[a-z0-9_-]+")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LONGEST = 36500 * 86400  #: a century, in seconds


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` (a bare number is seconds)."""
    if isinstance(value, timedelta):
        return value
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds is not None and seconds < 0:
        raise ValueError("must not be negative")
    if seconds is not None:
        if seconds > _LONGEST:  # timedelta overflows past 999999999 days
            raise ValueError(f"must be at most {_LONGEST // 86400}d")
        return timedelta(seconds=seconds)
    written = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    raise ValueError(
        f'must be a duration like "15m" (a whole number, then s, m, h or d), not {written}'
    )


def format_duration(value: timedelta) -> str:
    """The shortest way ``parse_duration`` reads back: 900 s -> ``"15m"``."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
    #: defer_build: a Config read from the cache (cache.py) is never validated, so its
    #: validators are built at the first validation only (issue 19: start-up)
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


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
    #: feed formats written next to each other from one read (write/snapshot.py)
    formats: tuple[Literal["atom", "rss", "json"], ...] = ("atom", "rss", "json")
    log_format: Literal["text", "json"] = "text"  #: json: one object a line, for log shippers

    @field_validator("formats")
    @classmethod
    def _some_formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('name at least one of "atom", "rss", "json"')
        if len(set(value)) != len(value):
            raise ValueError("a format is named twice")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: name too long
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
    #: a request must arrive whole this soon after its connection (or the last answer)
    request_timeout: Interval = timedelta(seconds=10)

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
    similar: bool | None = None  #: near-duplicates merge here; None: ``[dedupe] similar``


class DedupeSettings(Frozen):
    """``[dedupe]``: merging across sources beyond infoCode (canonical links always)."""

    similar: bool = False  #: also merge near-duplicates (normalized title + similar text)
    window: Duration = timedelta(hours=48)  #: how far apart near-duplicates may be published
    threshold: float = Field(default=0.5, gt=0, le=1)  #: shared text (shingles) to merge
    tracking_params: tuple[str, ...] = ()  #: query parameters dropped besides the built-in ones


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


def _css_pick(value: str) -> str:
    from aggregator.parse.htmlpage import split_pick  # lxml only for configs that use it

    split_pick(value)
    return value


def _css_selector(value: str) -> str:
    from aggregator.extract import compile_selector

    compile_selector(value.strip())
    return value.strip()


#: a CSS selector (checked with cssselect)
CssSelector = Annotated[str, AfterValidator(_css_selector)]
#: ``selector``, ``selector@attribute`` or ``@attribute`` (of the item element itself)
CssPick = Annotated[str, AfterValidator(_css_pick)]


class HtmlMapping(Frozen):
    """``[sources.html]``: CSS selectors into a list page (``type = "html"``)."""

    items: CssSelector  #: each item element of the page
    title: CssPick  #: text of the first match inside the item
    link: CssPick  #: ``a@href``: resolved against the page URL
    published: CssPick | None = None
    summary: CssPick | None = None
    infocode: CssPick | None = None


def _fulltext_rule(value: str) -> str:
    from aggregator.extract import parse_rule

    parse_rule(value)
    return value


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: name too long
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class SourceConfig(Frozen):
    id: SourceId
    url: HttpUrl
    title: str | None = Field(default=None, min_length=1)  #: for people: OPML, the status table
    categories: tuple[CategoryId, ...] = ()
    interval: Interval | None = None
    type: Literal["feed", "json", "html"] = "feed"
    infocode_pattern: str | None = None
    priority: int = 0
    enabled: bool = True
    category_from: Literal["author"] | None = None
    json_: JsonMapping | None = Field(default=None, alias="json")
    html: HtmlMapping | None = None
    #: ``"auto"`` or ``"css:<selector>"``: fetch each item's page for its full text
    fulltext: Annotated[str, AfterValidator(_fulltext_rule)] | None = None
    #: zone of this source's zone-less dates and ambiguous abbreviations (CST, IST...);
    #: None: ``[aggregator] timezone``
    timezone: Annotated[str, AfterValidator(_zone_name)] | None = None
    similar: bool | None = None  #: near-duplicates merge for this source; None: its categories'

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

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
        if self.type != "json" and self.json_ is not None:
            raise ValueError('[sources.json] is only for type = "json"')
        if self.type == "html" and self.html is None:
            raise ValueError('type = "html" needs a [sources.html] table')
        if self.type != "html" and self.html is not None:
            raise ValueError('[sources.html] is only for type = "html"')
        if self.fulltext is not None and self.json_ is not None and self.json_.detail is not None:
            raise ValueError(
                "fulltext and [sources.json.detail] both give the body: keep one of them"
            )
        if not self.categories and self.category_from is None:
            raise ValueError("categories may be empty only when category_from is set")
        return self


class RuleConfig(Frozen):
    """One ``[[rules]]`` table: which items (scope), what to look at, what to do."""

    sources: tuple[str, ...] = ()  #: source id globs (fnmatch); empty: every source
    categories: tuple[CategoryId, ...] = ()  #: only items filed in these; empty: every item
    field: Literal["title", "text", "content", "author", "link", "any"] = "title"
    match: str = Field(min_length=1)  #: Python regex, case-insensitive unless it says otherwise
    action: Literal["drop", "keep", "file", "unfile", "retitle"]
    to: tuple[CategoryId, ...] = ()  #: file/unfile: declared category ids
    replace: str | None = None  #: retitle: the substitution, as re.sub takes it

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        from aggregator.rules import compile_pattern

        try:
            compile_pattern(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _shape(self) -> RuleConfig:
        if self.action in ("file", "unfile") and not self.to:
            raise ValueError(f'action = "{self.action}" needs `to` (category ids)')
        if self.action not in ("file", "unfile") and self.to:
            raise ValueError('`to` is only for action = "file" or "unfile"')
        if self.action == "retitle":
            if self.replace is None:
                raise ValueError('action = "retitle" needs `replace` (use "" to delete the match)')
            if self.field != "title":
                raise ValueError('action = "retitle" rewrites the title: field must be "title"')
            from aggregator.rules import check_replace

            try:
                check_replace(self.match, self.replace)
            except re.error as exc:
                raise ValueError(f"replace: {exc}") from exc
        elif self.replace is not None:
            raise ValueError('`replace` is only for action = "retitle"')
        return self


class PostsSettings(Frozen):
    dir: Path = Path("site")
    site_url: str = ""
    archive_after: Duration | None = None


class Config(Frozen):
    """The whole validated configuration, main file plus includes."""

    #: factories, not instances: an instance made here would build the validators at import
    aggregator: AggregatorSettings = Field(default_factory=AggregatorSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: Limits = Field(default_factory=Limits)
    dedupe: DedupeSettings = Field(default_factory=DedupeSettings)
    categories: dict[CategoryId, CategoryConfig] = {}
    sources: tuple[SourceConfig, ...] = ()
    posts: PostsSettings | None = None
    rules: tuple[RuleConfig, ...] = ()  #: in order: main file, then the includes
    rule_origins: tuple[str, ...] = ()  #: ``file:line`` of each rule, for messages
    path: Path = Path("aggregator.toml")  #: the main file, for messages and reloads

    def interval(self, source: SourceConfig) -> timedelta:
        return source.interval or self.aggregator.default_interval

    def category(self, category_id: str) -> Category | None:
        c = self.categories.get(category_id)
        return Category(category_id, c.title, c.description) if c else None

    def similar(self, source: SourceConfig) -> bool:
        """Whether near-duplicates merge for this source's items: its own ``similar``, else
        any of its categories', else ``[dedupe] similar``."""
        if source.similar is not None:
            return source.similar
        chosen = [self.categories[c].similar for c in source.categories if c in self.categories]
        if any(c is not None for c in chosen):
            return any(bool(c) for c in chosen)
        return self.dedupe.similar

    def source(self, source_id: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.id == source_id), None)
