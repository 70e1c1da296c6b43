"""index.html as real headless Chromium renders it, served by the real server over loopback.

``--dump-dom`` gives the DOM after parsing and layout, so the checks are on
what a person's browser would show, not on our HTML text; ``--screenshot``
proves the page paints. Skipped only where Chromium is missing and CI is not set.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from urllib.parse import urljoin

import lxml.html
import pytest

from aggregator.serve import ServerHandle
from tests.test_serve import CATEGORIES, Site, fetch

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium)",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        timeout=120,
        check=True,
    )


def test_rendered_index_lists_every_category_feed(
    tmp_path: Path, site: Site, served: ServerHandle
) -> None:
    page_url = served.url
    dom = chromium(tmp_path, "--dump-dom", page_url).stdout.decode("utf-8")
    doc = lxml.html.document_fromstring(dom)

    assert doc.findtext(".//title") == "测试聚合"
    discovery = {
        link.get("href"): link.get("title")
        for link in doc.iterfind(".//head/link")
        if link.get("rel") == "alternate" and link.get("type") == "application/atom+xml"
    }
    assert discovery["all.atom"] == "测试聚合"

    rows = {}
    for tr in doc.iterfind(".//tbody/tr"):
        cells = tr.findall("td")
        page = cells[0].find("a")  # the category's title links its page
        assert page.get("href").endswith(".html")
        title = (page.text or "").strip()
        rows[title] = (cells[1].text_content().strip(), cells[3].find("a").get("href"))
    assert len(rows) == len(CATEGORIES)
    for category, row in zip(CATEGORIES, site.rows, strict=True):
        count, href = rows[category.title]
        assert count == str(row.entry_count)
        assert href == f"{category.id}.atom"
        assert discovery[href] == category.title
        # the link the browser shows leads to the feed
        feed = fetch(served, "/" + urljoin(page_url, href).removeprefix(page_url))
        assert feed.status == 200
        assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    # the markup in a title was escaped by the writer, not interpreted by the browser
    assert "World <&> News" in rows
    assert doc.find(".//a[@href='index.opml']") is not None


def _png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values its pixels hold (8-bit RGB(A) PNG)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_index_paints(tmp_path: Path, served: ServerHandle) -> None:
    shot = tmp_path / "index.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,800", served.url)
    width, height, colours = _png_size_and_colours(shot.read_bytes())
    assert (width, height) == (1200, 800)
    assert colours > 16  # text and links were drawn, not a blank or error page
