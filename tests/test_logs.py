"""Log lines for journald (JOURNAL_STREAM) and for a terminal, through ``aggregator poll``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loopback import LoopbackServer

STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<link>http://example.org/</link><description>d</description>"
    b"<item><title>one</title><link>http://example.org/1</link><guid>1</guid>"
    b"<pubDate>Wed, 25 May 2022 16:53:43 +0800</pubDate></item></channel></rss>"
)


def poll_logging(
    tmp_path: Path, loopback: LoopbackServer, journal: bool, settings: str = ""
) -> tuple[str, str]:
    """Run ``aggregator poll`` with stderr in a file; JOURNAL_STREAM naming that file or not."""
    good = loopback.add("/feed.xml", FEED)
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""[aggregator]
database = "sqlite:///{tmp_path}/db.sqlite"
{settings}
[categories.news]
title = "News"
[[sources]]
id = "good"
url = "{good}"
categories = ["news"]
[[sources]]
id = "broken"
url = "{loopback.url}/status/500"
categories = ["news"]
""",
        encoding="utf-8",
    )
    err_path = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "TZ")}
    env["TZ"] = "Asia/Shanghai"  # the offset in text timestamps is the local one
    with err_path.open("wb") as err:
        if journal:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        out = subprocess.run(
            [sys.executable, "-m", "aggregator", "poll", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1
    return out.stdout, err_path.read_text(encoding="utf-8")


def test_journal_lines_have_priority_and_no_timestamp(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    stdout, stderr = poll_logging(tmp_path, loopback, journal=True)
    lines = stderr.splitlines()
    assert lines and all(re.match(r"<[0-7]>|  ", line) for line in lines), stderr
    assert not STAMP.search(stderr), stderr
    ok = [line for line in lines if "source=good" in line]
    assert len(ok) == 1 and re.fullmatch(
        r"<6>aggregator\.poll: poll source=good status=ok new=1 updated=0 unchanged=0 "
        r"skipped=0 dropped=0 duration=\d+\.\d{3}",
        ok[0],
    ), ok
    failed = [line for line in lines if "source=broken" in line]
    assert len(failed) == 1 and failed[0].startswith(
        "<4>aggregator.poll: poll source=broken status=failed "
    )
    assert "error=5xx" in failed[0] and "duration=" in failed[0]
    # stdout stays the contract's plain lines, whatever the log format
    assert sorted(stdout.splitlines())[0].startswith("broken failed 5xx")


def test_terminal_lines_have_timestamps(tmp_path: Path, loopback: LoopbackServer) -> None:
    stdout, stderr = poll_logging(tmp_path, loopback, journal=False)
    poll_lines = [line for line in stderr.splitlines() if "poll source=" in line]
    assert len(poll_lines) == 2 and all(STAMP.match(line) for line in poll_lines)
    assert not re.search(r"^<\d>", stderr, re.M)
    # no TTY: no progress bar, no colours, in either stream
    assert "\x1b[" not in stdout + stderr
    table = subprocess.run(
        [sys.executable, "-m", "aggregator", "sources", "-c", str(tmp_path / "aggregator.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "\x1b[" not in table.stdout + table.stderr
    rows = [line for line in table.stdout.splitlines() if "good" in line or "broken" in line]
    assert len(rows) == 2 and "5xx" in rows[0] + rows[1]


def test_journal_stream_of_another_file_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JOURNAL_STREAM inherited by a process whose stderr went elsewhere: timestamps stay."""
    from aggregator.logs import journal_stream

    journal = tmp_path / "journal"
    journal.write_bytes(b"")
    st = os.stat(journal)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    with (tmp_path / "elsewhere").open("w") as elsewhere, journal.open("a") as same:
        assert not journal_stream(elsewhere)
        assert journal_stream(same)
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    with journal.open("a") as same:
        assert not journal_stream(same)


#: ISO 8601 with milliseconds and the local offset (TZ=Asia/Shanghai in poll_logging)
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00"


def test_text_lines_are_iso_8601_with_offset_and_logfmt(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    _, stderr = poll_logging(tmp_path, loopback, journal=False)
    lines = {line.split("source=")[1].split()[0]: line for line in stderr.splitlines()
             if "poll source=" in line}  # fmt: skip
    assert re.fullmatch(
        ISO + r" INFO aggregator\.poll: poll source=good status=ok new=1 updated=0 "
        r"unchanged=0 skipped=0 dropped=0 duration=\d+\.\d{3}",
        lines["good"],
    ), lines["good"]
    # a value with spaces is quoted, logfmt's way (not Python's repr)
    assert re.fullmatch(
        ISO + r" WARNING aggregator\.poll: poll source=broken status=failed .* "
        r'error=5xx message="HTTP 500[^"]*"',
        lines["broken"],
    ), lines["broken"]


def test_json_lines_for_log_shippers(tmp_path: Path, loopback: LoopbackServer) -> None:
    stdout, stderr = poll_logging(tmp_path, loopback, journal=False, settings='log_format = "json"')
    docs = [json.loads(line) for line in stderr.splitlines()]  # every line is one object
    polls = {d["source"]: d for d in docs if d["msg"] == "poll"}
    good, broken = polls["good"], polls["broken"]
    assert re.fullmatch(ISO, good["ts"]), good
    assert (good["level"], good["logger"], good["status"], good["new"]) == (
        "info",
        "aggregator.poll",
        "ok",
        1,
    )
    assert isinstance(good["duration"], float)
    assert broken["level"] == "warning" and broken["error"] == "5xx"
    assert broken["message"].startswith("HTTP 500")
    assert all({"ts", "level", "logger", "msg"} <= set(d) for d in docs)
    assert sorted(stdout.splitlines())[0].startswith("broken failed 5xx")  # stdout unchanged


def test_json_lines_under_journald_keep_the_priority(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    _, stderr = poll_logging(tmp_path, loopback, journal=True, settings='log_format = "json"')
    broken = next(line for line in stderr.splitlines() if '"source": "broken"' in line)
    assert broken.startswith("<4>{") and json.loads(broken[3:])["status"] == "failed"


def test_logfmt_values() -> None:
    from aggregator.logs import logfmt_value

    assert logfmt_value("plain") == "plain"
    assert logfmt_value(3) == "3"
    assert logfmt_value(0.41234) == "0.412"
    assert logfmt_value("two words") == '"two words"'
    assert logfmt_value('say "hi"') == '"say \\"hi\\""'
    assert logfmt_value("a=b") == '"a=b"'
    assert logfmt_value("") == '""'
    assert logfmt_value("line\nbreak") == '"line\\nbreak"'
