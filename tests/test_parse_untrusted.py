"""Untrusted text never freezes the process (issue 13).

Each hostile input below took seconds to minutes before (a backtracking
regex, ``html.parser``'s rescans) while it held the GIL. The tests assert the
answer, not a time: without the fix they run into the pytest timeout. The
figures are measured by ``bench/hostile_json.py``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import JsonMapping
from aggregator.errors import Unparseable
from aggregator.model import Fetched, ParsedFeed
from aggregator.parse import parse_detail, parse_json_api, parse_json_api_then
from aggregator.parse.budget import INLINE_MAX_BYTES
from aggregator.parse.dates import parse_date
from aggregator.parse.infocode import find_infocode
from aggregator.parse.jsondoc import load_json, unwrap_jsonp
from aggregator.parse.text import plain_text
from aggregator.sanitize import text_of
from tests.loopback import LoopbackServer

TZ = ZoneInfo("Asia/Shanghai")
SPACES = 100_000
#: cb( + spaces and no ')': the JSONP regex tried every split (4,000 spaces: 58 s)
FREEZE = b"cb(" + b" " * SPACES + b"x"


@pytest.mark.parametrize(
    "text",
    [
        "cb(" + " " * SPACES + "x",
        "cb(" + " " * SPACES + "x;",
        "/**/ typeof cb === 'function' && cb(" + " " * SPACES + "x",
        "/*" + " " * SPACES + "x",
        "var x =" + " " * SPACES + "x;",
        "a" + "(" * SPACES,
        "typeof " + "a" * SPACES,
    ],
)
def test_unwrap_jsonp_never_backtracks(text: str) -> None:
    inner = unwrap_jsonp(text)
    assert inner.strip() in ("x", text, "x;", "(" * (SPACES - 1))


def test_the_jsonp_freeze_is_broken_json() -> None:
    with pytest.raises(Unparseable, match="broken JSON"):
        load_json(FREEZE)
    with pytest.raises(Unparseable, match="broken JSON"):
        parse_detail(FREEZE, {}, "text")


def _mapping() -> JsonMapping:
    return JsonMapping(items="list", title="title", link="url", infocode="code")


def _fetched(body: bytes) -> Fetched:
    return Fetched(
        url="http://127.0.0.1/list",
        status=200,
        body=body,
        headers={"content-type": "application/json"},
        fetched_at=datetime(2022, 5, 25, tzinfo=UTC),
        elapsed=0.0,
    )


def _pid_and_count(feed: ParsedFeed) -> tuple[int, int]:
    return os.getpid(), len(feed.items)


def test_a_large_json_list_is_parsed_in_the_budgeted_child() -> None:
    items = [
        {"code": f"NW2022052523916{i:05d}", "title": f"t{i}", "url": f"http://e.org/{i}"}
        for i in range(300)
    ]
    body = json.dumps({"list": items}).encode()
    assert len(body) > INLINE_MAX_BYTES
    pid, count = parse_json_api_then(_fetched(body), _mapping(), _pid_and_count, tz=TZ)
    assert pid != os.getpid() and count == 300
    small = json.dumps({"list": items[:3]}).encode()
    assert parse_json_api_then(_fetched(small), _mapping(), _pid_and_count, tz=TZ)[0] == (
        os.getpid()
    )
    # the same records either way
    parsed = parse_json_api(_fetched(body), _mapping(), tz=TZ)
    assert [i.infocode for i in parsed.items[:3]] == [
        i.infocode for i in parse_json_api(_fetched(small), _mapping(), tz=TZ).items
    ]


def test_a_large_html_page_is_read_in_the_budgeted_child() -> None:
    from aggregator.config import HtmlMapping
    from aggregator.parse.htmlpage import parse_html_page, parse_html_page_then

    rows = "".join(f'<li><a href="/n/{i}.html">标题 {i}</a></li>' for i in range(600))
    body = f'<meta charset="utf-8"><ul class="list">{rows}</ul>'.encode()
    assert len(body) > INLINE_MAX_BYTES
    mapping = HtmlMapping(items="ul.list li", title="a", link="a@href")
    page = replace(_fetched(body), headers={"content-type": "text/html; charset=utf-8"})
    pid, count = parse_html_page_then(page, mapping, _pid_and_count, tz=TZ)
    assert pid != os.getpid() and count == 600
    assert parse_html_page(page, mapping, tz=TZ).items[599].title == "标题 599"


def test_a_large_jsonp_freeze_fails_in_the_child() -> None:
    with pytest.raises(Unparseable, match="broken JSON"):
        parse_json_api(_fetched(FREEZE), _mapping(), tz=TZ)


def test_a_large_detail_body_is_read_in_the_child_and_kept_exactly() -> None:
    text = "<p>" + "正文 " * 10_000 + "</p>"
    body = ("cb(" + json.dumps({"text": text}) + ");").encode()
    assert len(body) > INLINE_MAX_BYTES
    assert parse_detail(body, {}, "text") == text


@pytest.mark.parametrize(
    "markup",
    [
        "<a " * 20_000,  # html.parser: 10 s for 8,000
        "<a b=c " * 10_000,
        "<a x" * 20_000,
        "</a " * 20_000,
    ],
)
def test_html_titles_are_read_in_linear_time(markup: str) -> None:
    assert text_of(markup).strip() == ""
    assert plain_text(markup + "<b>end</b>", is_html=True) in (None, "end")


def test_html_to_text_keeps_what_it_read_before() -> None:
    assert text_of("a <b>x</b> &amp; y") == "a x & y"
    assert " ".join(text_of("<p>a</p><p>b</p>").split()) == "a b"
    assert text_of("<script>x</script>t<style>s</style>") == "t"
    assert text_of("<!-- c -->tail") == "tail"
    assert text_of("1 < 2 and 3 > 2") == "1 < 2 and 3 > 2"
    assert text_of("x<br>y") == "x y"


def test_dates_of_nested_parentheses_are_no_dates() -> None:
    assert parse_date("(" * 200_000, TZ) is None
    assert parse_date("Wed, 25 May 2022 16:53:43 +0800 " + "(" * 200_000, TZ) is None
    assert parse_date("Wed, 25 May 2022 16:53:43 +0800 (CST)", TZ) == datetime(
        2022, 5, 25, 8, 53, 43, tzinfo=UTC
    )


def test_an_admin_pattern_that_backtracks_gives_up_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``((a|aa)+)b`` on 40 a's takes Python's ``re`` minutes; a link cannot hold us."""
    hostile = "http://e.org/" + "a" * 40
    with caplog.at_level(logging.WARNING, logger="aggregator.parse"):
        assert find_infocode(hostile, "a" * 60, r"((a|aa)+)b") is None
    assert "gave up" in caplog.text and "((a|aa)+)b" in caplog.text
    # a sane pattern still finds its code
    link = "http://e.org/a?infoCode=NW202205252391675717"
    assert find_infocode(link, None, r"infoCode=([A-Z]{2}\d+)") == "NW202205252391675717"


# --------------------------------------------------------- the whole program, from outside


def _config(folder: Path, base: str, interval: str = "1s") -> Path:
    path = folder / "aggregator.toml"
    path.write_text(
        f"""[aggregator]
database = "sqlite:///aggregator.db"
output_dir = "public"

[server]
listen = "127.0.0.1:0"

[categories.news]
title = "News"

[[sources]]
id = "freeze"
url = "{base}/freeze.js"
categories = ["news"]
interval = "{interval}"
type = "json"
[sources.json]
items = "list"
title = "title"
link = "url"

[[sources]]
id = "good"
url = "{base}/good.json"
categories = ["news"]
interval = "1h"
type = "json"
[sources.json]
items = "list"
title = "title"
link = "url"
""",
        encoding="utf-8",
    )
    return path


GOOD = json.dumps({"list": [{"title": "fine", "url": "http://e.org/fine"}]}).encode()


def test_poll_of_the_jsonp_freeze_fails_that_source_only(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    loopback.add("/freeze.js", FREEZE)
    loopback.add("/good.json", GOOD)
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(_config(tmp_path, loopback.url))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert re.search(r"^freeze failed unparseable: broken JSON", done.stdout, re.M), done.stdout
    assert re.search(r"^good ok new=1", done.stdout, re.M), done.stdout
    assert b"fine" in (tmp_path / "public" / "all.atom").read_bytes()


def test_healthz_answers_while_the_daemon_polls_the_freeze(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    loopback.add("/freeze.js", FREEZE)
    loopback.add("/good.json", GOOD)
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "-c", str(_config(tmp_path, loopback.url))],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        listen = None
        for _ in range(600):
            found = re.search(r"serving \S+ on (http://127\.0\.0\.1:\d+/)", log.read_text())
            if found:
                listen = found.group(1)
                break
            time.sleep(0.05)
        assert listen, log.read_text()
        answers = []
        for _ in range(40):  # ~4 s of probes while the freeze is polled every second
            with urllib.request.urlopen(listen + "healthz", timeout=10) as answer:
                answers.append(answer.status)
            time.sleep(0.1)
        polls = re.findall(r"poll source=freeze status=failed", log.read_text())
        assert answers == [200] * 40
        assert len(polls) >= 2, log.read_text()
    finally:
        daemon.terminate()
        daemon.wait(30)
