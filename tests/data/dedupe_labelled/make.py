"""Build the labelled dedupe set (items.json) from the real feeds in ../shared/fixtures/feeds.

    python tests/data/dedupe_labelled/make.py

Every real item with a web link, a title and at least 40 characters of text is
one story, carried by its own source ("orig"). Then, from other sources:

    link      the same story re-served with its link varied: tracking parameters
              (utm_*, spm, fbclid...), http <-> https, an m. / www. host, a fragment,
              a trailing slash; title and text as the original
    retitled  a syndication copy on another site: another link, the title with a
              site suffix (" - Portal", "｜新浪财经") or a bracketed prefix ("【转载】"),
              the text cut to its first 70 % with a footer added
    generic   distinct stories under one generic title ("每日快讯", "Morning
              Briefing", "Update"), each with its own text and link, two sources;
              fixture items whose texts near-copy another's (a download site's
              same blurb for two listings) are not distinct stories: only the
              first of them is used here

Label: ``story`` (equal for versions of one story). Deterministic: the same
fixtures give the same file.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import feedparser

HERE = Path(__file__).resolve().parent
FEEDS = HERE.parents[3] / "shared" / "fixtures" / "feeds"
GENERIC = ("每日快讯", "Morning Briefing", "Update", "Weekly Digest")
SUFFIXES = (" - Portal", "｜新浪财经", " | World News", "_网易新闻")
PREFIXES = ("【转载】", "[Repost] ", "")
TRACKING = (
    "utm_source=rss&utm_medium=feed&utm_campaign=x",
    "spm=a2c4g.11186623.0.0",
    "fbclid=IwAR0abc",
    "gclid=Cj0KCQ&mc_cid=1&mc_eid=2",
)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def stories() -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    seen: set[str] = set()
    for path in sorted(FEEDS.glob("*.xml")) + sorted(FEEDS.glob("*.atom")):
        if path.name.startswith(("bad__", "dup__")):
            continue
        parsed = feedparser.parse(path.read_bytes())
        for entry in parsed.entries:
            link = entry.get("link") or ""
            title = " ".join((entry.get("title") or "").split())
            body = entry.get("content", [{}])[0].get("value") or entry.get("summary") or ""
            text = text_of(body)
            if not link.startswith(("http://", "https://")) or len(title) < 6 or len(text) < 40:
                continue
            if link in seen or title in seen:
                continue
            seen.update((link, title))
            stamp = entry.get("published_parsed") or entry.get("updated_parsed")
            when = datetime(*stamp[:6], tzinfo=UTC) if stamp else datetime(2024, 5, 1, tzinfo=UTC)
            found.append(
                {"title": title, "link": link, "text": text[:3000], "published": when.isoformat()}
            )
    return found


def link_variant(link: str, n: int) -> str:
    parts = urlsplit(link)
    host = parts.hostname or ""
    bare = host[4:] if host.startswith("www.") else host
    scheme = "https" if parts.scheme == "http" else "http"
    query = parts.query
    match n % 5:
        case 0:
            query = (query + "&" if query else "") + TRACKING[n % len(TRACKING)]
        case 1:
            return urlunsplit((scheme, parts.netloc, parts.path, query, ""))
        case 2:
            return urlunsplit((parts.scheme, "m." + bare, parts.path, query, ""))
        case 3:
            return urlunsplit((scheme, "www." + bare, parts.path, query, "comments"))
        case _:
            path = parts.path if parts.path.endswith("/") else parts.path + "/"
            query = (query + "&" if query else "") + "utm_medium=social"
            return urlunsplit((parts.scheme, parts.netloc, path, query, "top"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def distinct(pool: list[dict[str, str]]) -> list[dict[str, str]]:
    """``pool`` without the items whose text near-copies one kept before it."""
    from aggregator.similar import shingles, similarity

    kept: list[tuple[dict[str, str], frozenset[str]]] = []
    for one in pool:
        mine = shingles(one["text"])
        if all(similarity(mine, theirs) < 0.3 for _, theirs in kept):
            kept.append((one, mine))
    return [one for one, _ in kept]


def main() -> None:
    rng = random.Random(15)
    items: list[dict[str, str]] = []
    base = stories()
    for i, s in enumerate(base):
        story = f"s{i}"
        items.append({**s, "source": "orig", "story": story, "kind": "orig"})
        items.append(
            {
                **s,
                "source": "mirror",
                "story": story,
                "kind": "link",
                "link": link_variant(s["link"], i),
            }
        )
        cut = s["text"][: max(40, int(len(s["text"]) * 0.7))]
        items.append(
            {
                **s,
                "source": "portal",
                "story": story,
                "kind": "retitled",
                "title": PREFIXES[i % len(PREFIXES)] + s["title"] + SUFFIXES[i % len(SUFFIXES)],
                "link": f"https://portal.example.net/a/{1000 + i}.html",
                "text": cut + " (来源: portal)",
            }
        )
    # distinct stories under one generic title, from two sources on the same day
    shuffled = base[:]
    rng.shuffle(shuffled)
    shuffled = distinct(shuffled)
    for j in range(0, len(shuffled) - 1, 2):
        title = GENERIC[(j // 2) % len(GENERIC)]
        for k, source in ((j, "digest-a"), (j + 1, "digest-b")):
            s = shuffled[k]
            items.append(
                {
                    "source": source,
                    "story": f"g{k}",
                    "kind": "generic",
                    "title": title,
                    "link": f"https://{source}.example.org/d/{k}",
                    "text": s["text"],
                    "published": shuffled[j]["published"],
                }
            )
    out = HERE / "items.json"
    out.write_text(json.dumps(items, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(base)} stories, {len(items)} items -> {out}")


if __name__ == "__main__":
    main()
