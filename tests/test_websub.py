"""WebSub: feeds carry rel="hub", and the hub is pinged with exactly the feeds that changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl

from tests.loopback import LoopbackServer, Request, Response

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title><link>http://127.0.0.1/</link><description>d</description>
<item><title>%s</title><link>http://127.0.0.1/a</link><guid>a</guid>
<pubDate>Wed, 25 May 2022 16:53:43 +0800</pubDate></item></channel></rss>"""


FORMATS = ("atom", "rss", "json")  # the default [aggregator] formats


def poll(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hub_pinged_with_changed_feeds_only(tmp_path: Path, loopback: LoopbackServer) -> None:
    pings: list[list[tuple[str, str]]] = []

    def hub(request: Request) -> Response:
        pings.append(parse_qsl(request.body.decode()))
        return Response(204, b"")

    loopback.add("/hub", hub)
    loopback.add("/feed.xml", RSS % b"first", headers={"Content-Type": "application/rss+xml"})
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f'[aggregator]\ndatabase = "sqlite:///db/a.db"\nbase_url = "http://127.0.0.1:8080/"\n'
        f'websub_hub = "{loopback.url}/hub"\n[categories.news]\ntitle = "News"\n'
        f'[[sources]]\nid = "s"\nurl = "{loopback.url}/feed.xml"\ncategories = ["news"]\n',
        encoding="utf-8",
    )
    assert poll(config).returncode == 0
    assert len(pings) == 1
    assert ("hub.mode", "publish") in pings[0]
    urls = {v for k, v in pings[0] if k == "hub.url"}
    # Every feed that carries rel="hub" is a topic: each format of the changed category,
    # of all, and of the health feed (the source's first condition is a change).
    feeds = [f"{stem}.{fmt}" for stem in ("news", "all", "health") for fmt in FORMATS]
    assert urls == {f"http://127.0.0.1:8080/{name}" for name in feeds}
    for name in feeds:
        feed = (tmp_path / "public" / name).read_text(encoding="utf-8")
        if name.endswith(".json"):
            assert json.loads(feed)["hubs"] == [{"type": "WebSub", "url": f"{loopback.url}/hub"}]
        else:
            assert (
                f'href="{loopback.url}/hub" rel="hub"' in feed
                or f'rel="hub" href="{loopback.url}/hub"' in feed
            ), name

    assert poll(config).returncode == 0  # nothing changed: no ping
    assert len(pings) == 1

    loopback.add("/hub", b"down", status=500)
    loopback.add("/feed.xml", RSS % b"second", headers={"Content-Type": "application/rss+xml"})
    down = poll(config)
    assert down.returncode == 0, down.stderr  # a hub that is down never fails a poll
    assert "websub hub" in down.stderr
