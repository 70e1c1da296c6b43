"""The Jekyll site the original finance-news site built: one post per item, one page per category.

Shapes are the contract's (``fixtures/finews/``), byte for byte: front matter,
the body exactly as the source gave it (CRLF and all), the share link, the
links back; no newline at the end. Files go through ``replace_file``, so a
post is rewritten only when its bytes change.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

from aggregator.model import Category, Entry
from aggregator.parse.bounds import well_formed_http
from aggregator.postbody import markdown_text, post_body
from aggregator.write.atom import in_zone
from aggregator.write.files import replace_file

POSTS = "_posts"  #: where Jekyll looks for posts
ARCHIVE = "old_post"  #: where the original site moved posts past their time
CATEGORY_PAGES = "category"

_POST_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)\.md$")
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_MAX_STEM = 64  #: an infoCode longer than this names its post by a hash (file names stop at 255)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")

# YAML 1.1 (Jekyll's Psych) printable set, negated; what falls outside is escaped.
_YAML_UNPRINTABLE = re.compile(
    "[^\t\n\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_YAML_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\t": "\\t",
    "\n": "\\n",
    "\r": "\\r",
    "\x00": "\\0",
    "\x85": "\\N",
    "\u2028": "\\L",
    "\u2029": "\\P",
}
# Plain scalars that a YAML 1.1 reader would not read back as the same string.
_YAML_SPECIAL = re.compile(
    r"^(?:~|null|true|false|yes|no|on|off|y|n|<<|=|[-+]?\.(?:inf|nan))$|^[-+.]?[0-9]",
    re.IGNORECASE,
)
_YAML_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")


def yaml_quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that reads back as the same string."""

    def escape(m: re.Match[str]) -> str:
        ch = m.group(0)
        if ch in _YAML_ESCAPES:
            return _YAML_ESCAPES[ch]
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:  # a lone surrogate cannot be written in UTF-8
            return ""
        return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}"

    body = re.sub(r'[\\"\t\n\r\x85\u2028\u2029]', escape, text)
    body = _YAML_UNPRINTABLE.sub(escape, body)
    return f'"{body}"'


def yaml_scalar(text: str) -> str:
    """``text`` plain where YAML reads it back unchanged (``科技日报新闻``), else double-quoted."""
    plain = (
        text
        and text == text.strip()
        and text[0] not in _YAML_INDICATORS
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
        and not _YAML_SPECIAL.search(text)
        and not _YAML_UNPRINTABLE.search(text)
        and not any(ch in text for ch in "\t\n\r\x85\u2028\u2029")
    )
    return text if plain else yaml_quote(text)


def _local(moment: datetime, tz: tzinfo | None) -> datetime:
    return in_zone(moment, tz) if tz is not None else moment


def render_post(
    entry: Entry, category: Category, site_url: str, *, tz: tzinfo | None = None
) -> bytes:
    """One post, in the fixture's shape; dated in ``tz`` (default: the offset ``published`` has)."""
    site = site_url.rstrip("/")
    when = _local(entry.published, tz)
    # the store keeps a raw body only where it is safe as it is (store/bodies.py)
    sanitized = entry.content_html if entry.content_html is not None else entry.summary_html
    body = post_body(entry.content_raw, sanitized)
    parts = [
        "---\n",
        "layout: post\n",
        f"title: {yaml_quote(entry.title)}\n",
        f"date: {when:%Y-%m-%d %H:%M:%S %z}\n",
        f"categories: {yaml_scalar(category.id)}\n",
        f"tags: {yaml_scalar(category.title)}\n",
        "---\n",
        body,
    ]
    if entry.link and well_formed_http(entry.link):
        parts.append(f"\n\n<{entry.link}>")
    parts.append(
        f"\n\n[返回{markdown_text(category.title)}]({site}/{CATEGORY_PAGES}/{category.id}.html)"
        f"｜[返回首页]({site}/)"
    )
    # "replace": a lone surrogate (undecodable input kept by surrogateescape) cannot be UTF-8.
    return "".join(parts).encode("utf-8", "replace")


def render_category_page(category: Category) -> bytes:
    """``category/<id>.html``: front matter only, title as ``str.title()`` writes the id."""
    return (
        "---\n"
        "layout: category\n"
        f"title: {yaml_scalar(category.id.title())}\n"
        f"category: {yaml_scalar(category.id)}\n"
        "---"
    ).encode()


def _post_stem(key: str, infocode: str | None) -> str:
    if infocode and len(infocode) <= _MAX_STEM and _SAFE_STEM.match(infocode):
        return infocode
    slug = _NOT_SLUG.sub("-", key.lower()).strip("-")[:50].rstrip("-")
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


def post_filename(entry: Entry, tz: tzinfo | None) -> str:
    """``<YYYY-MM-DD>-<infoCode>.md``, or a safe slug of the key with a hash of it."""
    return f"{_local(entry.published, tz):%Y-%m-%d}-{_post_stem(entry.key, entry.infocode)}.md"


def post_category(entry: Entry, categories: Mapping[str, Category]) -> Category | None:
    """Where the post is filed: its publisher's category where it has one, else its first."""
    cat_id = entry.post_category or (entry.categories[0] if entry.categories else None)
    if cat_id is None:
        return None
    return categories.get(cat_id) or Category(cat_id, cat_id)


@dataclass(frozen=True, slots=True)
class PostsResult:
    """What one ``write_posts`` did."""

    written: int = 0  #: posts created or rewritten (in _posts or old_post)
    unchanged: int = 0  #: posts already holding these bytes
    archived: int = 0  #: posts moved from _posts to old_post
    removed: int = 0  #: stale copies of a post under another date, or of a merged item, deleted
    skipped: int = 0  #: entries with no category to file them under
    pages_written: int = 0  #: category pages created or rewritten
    failed: tuple[tuple[str, str], ...] = ()  #: (file or entry key, why) not written


def _post_date(name: str) -> date | None:
    m = _POST_NAME.match(name)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def archive_cutoff(now: datetime, tz: tzinfo, archive_after: timedelta) -> date:
    """The first day kept in ``_posts``: a day that began ``archive_after`` ago is out."""
    return (now.astimezone(tz) - archive_after).date() + timedelta(days=1)


def _archive(posts: Path, archive: Path, cutoff: date) -> int:
    """Move posts dated before ``cutoff`` out of ``_posts``, as the original site did."""
    moved = 0
    if not posts.is_dir():
        return 0
    for path in sorted(posts.iterdir()):
        day = _post_date(path.name)
        if day is None or day >= cutoff or not path.is_file():
            continue
        archive.mkdir(parents=True, exist_ok=True)
        os.replace(path, archive / path.name)
        moved += 1
    return moved


def _by_stem(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            m = _POST_NAME.match(path.name)
            if m:
                found.setdefault(m.group(4), []).append(path)
    return found


def write_posts(
    posts_dir: Path,
    entries: Iterable[Entry],
    categories: Mapping[str, Category],
    site_url: str,
    tz: tzinfo,
    archive_after: timedelta | None,
    now: datetime,
    *,
    gone: Iterable[tuple[str, str | None]] = (),
) -> PostsResult:
    """Write ``_posts/<file>`` per entry and ``category/<id>.html`` per category, on change only.

    With ``archive_after``, a post whose day began ``archive_after`` ago or more
    lives in ``old_post/``: moved there from ``_posts``, and never written back.
    With "3d" that keeps today and the two days before, as the original did.
    ``gone``: (key, infoCode) of items whose posts are deleted: merged into another
    (store/rejoin.py; the story's post is the one it was merged into), or dropped by
    the rules (a dropped item is written nowhere).
    """
    posts_dir = Path(posts_dir)
    posts, archive = posts_dir / POSTS, posts_dir / ARCHIVE
    cutoff = archive_cutoff(now, tz, archive_after) if archive_after is not None else None
    archived = _archive(posts, archive, cutoff) if cutoff is not None else 0
    # Stale copies are looked for in old_post only while archiving is on; else it is left alone.
    searched = (POSTS, ARCHIVE) if cutoff is not None else (POSTS,)
    existing = {where: _by_stem(posts_dir / where) for where in searched}

    written = unchanged = removed = skipped = 0
    failed: list[tuple[str, str]] = []
    for key, infocode in gone:
        for where in searched:
            for stale in existing[where].pop(_post_stem(key, infocode), []):
                stale.unlink(missing_ok=True)
                removed += 1
    for entry in entries:
        category = post_category(entry, categories)
        if category is None:
            skipped += 1
            continue
        try:
            name = post_filename(entry, tz)
            data = render_post(entry, category, site_url, tz=tz)
        except Exception as exc:  # noqa: BLE001 - this post only; the others are written
            failed.append((f"{POSTS}/ ({entry.key})", f"{type(exc).__name__}: {exc}"))
            continue
        day = _local(entry.published, tz).date()
        folder = ARCHIVE if cutoff is not None and day < cutoff else POSTS
        target = posts_dir / folder / name
        # The date in the name moved (an earlier source turned up): drop the old copy.
        stem = _POST_NAME.match(name)
        for where in searched:
            for stale in existing[where].get(stem.group(4) if stem else "", []):
                if stale != target and stale.exists():
                    stale.unlink()
                    removed += 1
        try:
            fresh = replace_file(target, data)
        except OSError as exc:  # e.g. a name too long for the file system
            failed.append((f"{folder}/{name}", f"{type(exc).__name__}: {exc}"))
            continue
        written += fresh
        unchanged += not fresh

    pages_written = 0
    for category in categories.values():
        page = posts_dir / CATEGORY_PAGES / f"{category.id}.html"
        pages_written += replace_file(page, render_category_page(category))
    return PostsResult(
        written=written,
        unchanged=unchanged,
        archived=archived,
        removed=removed,
        skipped=skipped,
        pages_written=pages_written,
        failed=tuple(failed),
    )
