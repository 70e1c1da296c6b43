"""WebSub publisher side: tell the hub which feeds changed (W3C WebSub §7, "publish").

The hub then fetches the feed and pushes it to subscribers. A hub that is down
costs a warning, never a poll: feeds are already written when it is pinged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import requests

from aggregator import USER_AGENT

log = logging.getLogger("aggregator.websub")

PING_TIMEOUT = 10.0


def ping_hub(hub: str, feed_urls: Sequence[str]) -> bool:
    """POST ``hub.mode=publish`` with every changed feed URL; False (logged) on failure."""
    if not feed_urls:
        return True
    data = [("hub.mode", "publish"), *(("hub.url", url) for url in feed_urls)]
    try:
        answer = requests.post(
            hub, data=data, timeout=PING_TIMEOUT, headers={"User-Agent": USER_AGENT}
        )
    except requests.RequestException as exc:
        log.warning("websub hub %s not reached: %s", hub, exc)
        return False
    if answer.status_code >= 300:
        log.warning("websub hub %s answered HTTP %d", hub, answer.status_code)
        return False
    return True
