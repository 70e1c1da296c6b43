"""The two lists of feeds: ``index.opml`` for feed readers, ``index.html`` for people.

Both are pure renderers of category rows; neither reads the clock, so the
same rows give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from lxml import etree

from aggregator.config import AggregatorSettings
from aggregator.model import CategoryInfo
from aggregator.sanitize import strip_illegal_xml
from aggregator.write.atom import ALL_FEED, in_zone
from aggregator.write.page import FEED_TYPES


def render_opml(categories: Sequence[CategoryInfo], settings: AggregatorSettings) -> bytes:
    """OPML 2.0 subscription list: ``all`` first, then one outline per category feed, in the
    first configured format (Atom by default)."""
    main = settings.formats[0]
    opml = etree.Element("opml", version="2.0")
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = strip_illegal_xml(settings.title)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(opml, "body")
    rows: list[tuple[str, str, str | None]] = [(ALL_FEED, settings.title, None)]
    rows += [(c.id, c.title, c.description) for c in categories]
    for stem, title, description in rows:
        outline = etree.SubElement(body, "outline")
        # OPML 2.0 subscription lists say type="rss" whatever the feed format is.
        outline.set("type", "rss")
        outline.set("text", strip_illegal_xml(title))
        outline.set("title", strip_illegal_xml(title))
        outline.set("xmlUrl", strip_illegal_xml(f"{settings.base_url}{stem}.{main}"))
        outline.set("htmlUrl", strip_illegal_xml(settings.base_url))
        if description:
            outline.set("description", strip_illegal_xml(description))
    return etree.tostring(opml, encoding="UTF-8", xml_declaration=True, pretty_print=True)


_STYLE = """\
body{font:16px/1.5 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
td.n{text-align:right}.d{color:#666;font-size:.9em}a{color:#0645ad}
@media (prefers-color-scheme:dark){body{background:#111;color:#ddd}a{color:#8ab4f8}
th,td{border-color:#333}.d{color:#999}}"""


def _e(text: str | None) -> str:
    return escape(strip_illegal_xml(text or ""), quote=True)


def render_index(categories: Sequence[CategoryInfo], settings: AggregatorSettings) -> bytes:
    """A self-contained HTML page (no external assets) listing every feed, with autodiscovery.

    Links are relative: the page is served from base_url itself.
    """
    tz = settings.tz
    title = _e(settings.title)
    formats = settings.formats
    main = formats[0]  # autodiscovery names one format a feed: the first configured
    kind = FEED_TYPES[main]
    head_links = [f'<link rel="alternate" type="{kind}" title="{title}" href="{ALL_FEED}.{main}">']
    rows = []
    for c in categories:
        href = _e(f"{c.id}.{main}")
        head_links.append(
            f'<link rel="alternate" type="{kind}" title="{_e(c.title)}" href="{href}">'
        )
        feeds = " · ".join(
            f'<a href="{_e(f"{c.id}.{f}")}">{_e(f"{c.id}.{f}")}</a>' for f in formats
        )
        description = f'<div class="d">{_e(c.description)}</div>' if c.description else ""
        if c.updated is not None:
            moment = in_zone(c.updated, tz)
            when = f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M}</time>'
        else:
            when = "—"
        rows.append(
            f'<tr><td><a href="{_e(f"{c.id}.html")}">{_e(c.title)}</a>{description}</td>'
            f'<td class="n">{int(c.entry_count)}</td><td>{when}</td>'
            f"<td>{feeds}</td></tr>"
        )
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(settings.language)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        *head_links,
        f'<link rel="outline" type="text/x-opml" title="{title}" href="index.opml">',
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
        f'<p>All entries: <a href="{ALL_FEED}.html">the page</a> · '
        + " · ".join(f'<a href="{ALL_FEED}.{f}">{ALL_FEED}.{f}</a>' for f in formats)
        + ' · Subscription list: <a href="index.opml">index.opml</a></p>',
        '<p>For admins: <a href="status.html">status of every source</a> · '
        + " · ".join(f'<a href="health.{f}">health.{f}</a>' for f in formats)
        + "</p>",
        "<table>",
        "<thead><tr><th>Category</th><th>Entries</th><th>Last update</th><th>Feed</th></tr>"
        "</thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")
