"""Sources in and out as OPML: ``aggregator import-opml`` and ``aggregator export-opml``.

    OPML bytes ──read_opml──▶ OpmlFeed… ──plan_import (pure)──▶ ImportPlan
    ImportPlan ──render_toml──▶ text appended to an included file ──load_config──▶ kept or reverted
    Config ──render_sources_opml──▶ OPML 2.0, one folder per category

A feed outline is one with ``xmlUrl`` (OPML 1.0 and 2.0, any nesting); its
category is ``--category``, else its folder's (the ``category`` attribute
this exporter writes, else the folder title as a slug), else ``imported``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree
from pydantic import ValidationError

from aggregator.config import Config, SourceConfig, load_config
from aggregator.config.dump import dumps_toml
from aggregator.errors import ConfigError, ConfigProblem
from aggregator.sanitize import strip_illegal_xml
from aggregator.slug import slug
from aggregator.write import replace_file

FALLBACK_CATEGORY = ("imported", "Imported")
_ID = re.compile(r"^[a-z0-9_-]+$")


class OpmlError(ValueError):
    """The file is not OPML we can read."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed outline as the file has it."""

    url: str
    title: str | None  #: ``title``, else ``text``
    folder: str | None  #: title of the enclosing outline, if any
    folder_category: str | None  #: that outline's ``category`` attribute (ours: ``/<id>``)


@dataclass(frozen=True, slots=True)
class NewSource:
    id: str
    url: str
    categories: tuple[str, ...]
    title: str | None


@dataclass(frozen=True, slots=True)
class ImportPlan:
    sources: tuple[NewSource, ...] = ()
    categories: tuple[tuple[str, str], ...] = ()  #: (id, title) to declare
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)  #: (url, reason)


def _id_of(title: str) -> str:
    """A source or category id from a title (科技日报 -> kejiribao), at most 60 characters."""
    return slug(title, 60)


def read_opml(data: bytes) -> list[OpmlFeed]:
    """Every outline with an ``xmlUrl``, in document order."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from exc
    if root.tag != "opml" or root.find("body") is None:
        raise OpmlError("not OPML: no <opml><body>")
    feeds = []
    for outline in root.find("body").iter("outline"):
        url = _attr(outline, "xmlUrl")
        if not url:
            continue
        parent = outline.getparent()
        folder = folder_category = None
        if parent is not None and parent.tag == "outline":
            folder = _attr(parent, "title") or _attr(parent, "text")
            folder_category = _attr(parent, "category")
        feeds.append(
            OpmlFeed(
                url.strip(),
                _attr(outline, "title") or _attr(outline, "text"),
                folder,
                folder_category,
            )
        )
    return feeds


def _attr(element: etree._Element, name: str) -> str | None:
    """An attribute by name, in any letter case (OPML 1.0 files write ``xmlurl`` too)."""
    for key, value in element.attrib.items():
        if str(key).lower() == name.lower():
            value = str(value).strip()
            return value or None
    return None


def plan_import(feeds: Sequence[OpmlFeed], config: Config, category: str | None) -> ImportPlan:
    """Which sources to add, under which ids and categories; what to skip and why."""
    taken = {s.id for s in config.sources}
    known_urls = {s.url: s.id for s in config.sources}
    declared = {cid: c.title for cid, c in config.categories.items()}
    new_categories: dict[str, str] = {}
    planned: dict[str, NewSource] = {}  # by URL
    skipped: list[tuple[str, str]] = []
    for feed in feeds:
        if feed.url in known_urls:
            skipped.append((feed.url, f"already configured as {known_urls[feed.url]}"))
            continue
        cid, title = _category_of(feed, category)
        if cid not in declared and cid not in new_categories:
            new_categories[cid] = title
        if feed.url in planned:  # the same feed in two folders: one source, both categories
            before = planned[feed.url]
            if cid not in before.categories:
                planned[feed.url] = NewSource(
                    before.id, before.url, (*before.categories, cid), before.title
                )
            continue
        sid = _unique(_id_of(feed.title or "") or _host_slug(feed.url), taken)
        try:
            SourceConfig.model_validate(
                {"id": sid, "url": feed.url, "categories": [cid], "title": feed.title}
            )
        except ValidationError as exc:
            reasons = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            skipped.append((feed.url, "; ".join(reasons)))
            continue
        taken.add(sid)
        planned[feed.url] = NewSource(sid, feed.url, (cid,), feed.title)
    used = {c for s in planned.values() for c in s.categories}
    return ImportPlan(
        sources=tuple(planned.values()),
        categories=tuple((c, t) for c, t in new_categories.items() if c in used),
        skipped=tuple(skipped),
    )


def _category_of(feed: OpmlFeed, given: str | None) -> tuple[str, str]:
    if given:
        return given, given
    if feed.folder_category:
        first = feed.folder_category.split(",")[0].strip().strip("/")
        if _ID.match(first):
            return first, feed.folder or first
    if feed.folder:
        slug = _id_of(feed.folder)
        if slug:
            return slug, feed.folder
    return FALLBACK_CATEGORY


def _unique(base: str, taken: set[str]) -> str:
    base = base or "source"
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}-{n}"
        n += 1
    return candidate


def _host_slug(url: str) -> str:
    parts = urlsplit(url)
    return _id_of(f"{parts.hostname or ''} {parts.path}")


def render_toml(plan: ImportPlan, origin: str) -> str:
    """The tables to append to an included file: categories first, then sources.

    Written by the TOML library: a title with quotes, backslashes, newlines or
    control characters (U+007F) is escaped as TOML wants it, so the file loads.
    """
    origin = "".join(c if c.isprintable() else " " for c in origin)
    chunks = [f"# imported from {' '.join(origin.split())} by aggregator import-opml\n"]
    if plan.categories:
        chunks.append(dumps_toml({"categories": {c: {"title": t} for c, t in plan.categories}}))
    sources = [
        {"id": s.id, "url": s.url}
        | ({"title": s.title} if s.title else {})
        | {"categories": list(s.categories)}
        for s in plan.sources
    ]
    if sources:
        chunks.append(dumps_toml({"sources": sources}))
    return "\n".join(chunks)


def import_into(config_path: Path, output: Path, plan: ImportPlan, origin: str) -> Config:
    """Append ``plan`` to ``output`` atomically, then validate the whole config.

    On any problem (including ``output`` not being one of the included files)
    the file is put back as it was and ConfigError raised.
    """
    main = config_path.absolute()
    output = output.absolute()
    if output == main:
        raise ConfigError(
            [
                ConfigProblem(
                    str(output), None, "", "write imports to an included file, not the main one"
                )
            ]
        )
    before = output.read_bytes() if output.exists() else None
    text = (before or b"").decode("utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    replace_file(output, (text + ("\n" if text else "") + render_toml(plan, origin)).encode())
    try:
        config = load_config(main)
        missing = {s.id for s in plan.sources} - {s.id for s in config.sources}
        if missing:
            raise ConfigError(
                [
                    ConfigProblem(
                        str(main),
                        None,
                        "aggregator.include",
                        f"{output} is not one of the included files; add it to include",
                    )
                ]
            )
    except BaseException:
        if before is None:
            output.unlink(missing_ok=True)
        else:
            replace_file(output, before)
        raise
    return config


def render_sources_opml(config: Config) -> bytes:
    """Every source as OPML 2.0: a folder per category (``category="/<id>"``), feeds inside.

    JSON API sources are ``type="link"`` outlines: readers cannot subscribe to them.
    """
    opml = etree.Element("opml", version="2.0")
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = _x(f"{config.aggregator.title} sources")
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(opml, "body")
    for cid, category in config.categories.items():
        members = [s for s in config.sources if cid in s.categories]
        if not members:
            continue
        folder = etree.SubElement(
            body, "outline", text=_x(category.title), title=_x(category.title), category=f"/{cid}"
        )
        _outlines(folder, members)
    _outlines(body, [s for s in config.sources if not s.categories])
    return etree.tostring(opml, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _outlines(parent: etree._Element, sources: Iterable[SourceConfig]) -> None:
    for s in sources:
        name = _x(s.title or s.id)
        if s.type == "json":
            etree.SubElement(
                parent, "outline", type="link", text=f"{name} (JSON API)", url=_x(s.url)
            )
        else:
            etree.SubElement(parent, "outline", type="rss", text=name, title=name, xmlUrl=_x(s.url))


def _x(text: str) -> str:
    return strip_illegal_xml(text)
