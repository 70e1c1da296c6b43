"""A Snapshot -> a readable HTML page of the feed (``<category>.html``): Planet's river of news.

For people without a feed reader: the newest entries, each with its title
linked to the article, publisher, sources, date in the configured zone and
the sanitized body (else the summary). Autodiscovery links name every feed
format written. No script at all, and a Content-Security-Policy that would
stop any that slipped into a body (its only style is this page's own, by
hash); light and dark follow the reader's system; a viewport for phones.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape

from aggregator.config import AggregatorSettings
from aggregator.sanitize import strip_illegal_xml
from aggregator.write.atom import in_zone
from aggregator.write.snapshot import Snapshot

#: content type of each feed format, for autodiscovery links and the HTTP server
FEED_TYPES = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
FORMAT_NAMES = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}

STYLE = """\
:root{color-scheme:light dark}
body{font:17px/1.6 system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;
color:#1d1d1f;background:#fff;overflow-wrap:anywhere}
a{color:#0645ad}header{border-bottom:1px solid #ddd;margin-bottom:1rem}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem;margin:0 0 .2rem}
nav,.meta,.d{color:#666;font-size:.9rem}article{border-bottom:1px solid #eee;padding:1rem 0}
.body img,.body video{max-width:100%;height:auto}.body pre{overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #ddd;vertical-align:top}td.n{text-align:right}
.ok{color:#1a7f37}.failing,.disabled{color:#c62828}.silent{color:#9a6700}
svg{display:block;max-width:100%}svg rect{fill:#0645ad}
@media (prefers-color-scheme:dark){body{color:#ddd;background:#121212}a{color:#8ab4f8}
header,article,th,td{border-color:#333}nav,.meta,.d{color:#aaa}svg rect{fill:#8ab4f8}
.ok{color:#57c26b}.failing,.disabled{color:#ff7b72}.silent{color:#e3b341}}"""


def csp(style: str = STYLE) -> str:
    """Nothing runs, nothing is framed or posted; images from anywhere; only our style."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        "default-src 'none'; img-src http: https: data:; media-src http: https:; "
        f"style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def e(text: str | None) -> str:
    """Text or an attribute value, escaped, XML-illegal characters dropped."""
    return escape(strip_illegal_xml(text or ""), quote=True)


def web_link(url: str | None) -> str | None:
    """Only an http(s) URL becomes a link (never ``javascript:`` or ``data:``)."""
    url = strip_illegal_xml(url or "").strip()
    return url if url.lower().startswith(("http://", "https://")) else None


def head(title: str, settings: AggregatorSettings, links: Sequence[str]) -> list[str]:
    """The page's opening, through ``<body>``."""
    return [
        "<!DOCTYPE html>",
        f'<html lang="{e(settings.language)}">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp()}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{title}</title>",
        *links,
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
    ]


def render_page(snapshot: Snapshot, settings: AggregatorSettings, formats: Sequence[str]) -> bytes:
    """The page of one feed; links are relative (it is served beside the feeds)."""
    tz = settings.tz
    feed = snapshot.feed
    title = e(feed.title) or e(feed.name)
    links = [
        f'<link rel="alternate" type="{FEED_TYPES[f]}" title="{title} ({FORMAT_NAMES[f]})"'
        f' href="{e(feed.name)}.{f}">'
        for f in formats
    ]
    feeds = " · ".join(f'<a href="{e(feed.name)}.{f}">{FORMAT_NAMES[f]}</a>' for f in formats)
    lines = head(title, settings, links)
    lines += [
        "<header>",
        f"<h1>{title}</h1>",
        f'<p class="d">{e(feed.subtitle)}</p>' if feed.subtitle else "",
        f'<nav><a href="./">{e(settings.title)}</a> · {feeds}</nav>',
        "</header>",
        "<main>",
    ]
    for entry, entry_id in zip(snapshot.entries, snapshot.ids, strict=True):
        link = web_link(entry.link)
        heading = e(entry.title) or e(entry_id)
        if link:
            heading = f'<a href="{e(link)}" rel="noopener noreferrer">{heading}</a>'
        moment = in_zone(entry.published, tz)
        meta = []
        if entry.author and entry.author.strip():
            meta.append(f'<span class="publisher">{e(entry.author.strip())}</span>')
        if entry.sources:
            meta.append(f'<span class="source">via {e(", ".join(entry.sources))}</span>')
        meta.append(
            f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M}'
            f" {moment.isoformat()[19:]}</time>"
        )
        body = strip_illegal_xml(entry.content_html or entry.summary_html or "")
        lines += [
            f'<article id="{e(entry_id)}">',
            f"<h2>{heading}</h2>",
            f'<p class="meta">{" · ".join(meta)}</p>',
            f'<div class="body">{body}</div>' if body else "",
            "</article>",
        ]
    if not snapshot.entries:
        lines.append("<p>No entries yet.</p>")
    lines += ["</main>", "</body>", "</html>", ""]
    return "\n".join(line for line in lines if line).encode("utf-8")
