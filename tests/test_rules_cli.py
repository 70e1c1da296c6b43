"""Rules end to end: ``aggregator poll``/``build``/``rules test`` as subprocesses against a
loopback feed, on SQLite and PostgreSQL; and the daemon keeping its rules on a bad reload."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.loopback import LoopbackServer
from tests.test_daemon import NotifyListener, notify, start_daemon, wait_until

__all__ = ["notify", "start_daemon"]  # the daemon fixtures, used here too

RSS = {"Content-Type": "application/rss+xml"}


def rss(*titles: str, site: str = "a") -> bytes:
    """``site``: each source's own links (items of two sources with one link merge)."""
    items = "".join(
        f"<item><title>{t}</title><link>http://example.org/{site}/{i}</link><guid>g{i}-{t}</guid>"
        f"<pubDate>Wed, 25 May 2022 1{i}:00:00 +0800</pubDate>"
        f"<description>body of {t}</description></item>"
        for i, t in enumerate(titles)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def write_config(
    folder: Path, db_url: str, base: str, rules: str, interval: str = "1h", posts: bool = False
) -> Path:
    path = folder / "aggregator.toml"
    site = '\n[posts]\ndir = "site"\nsite_url = "//site.example"\n' if posts else ""
    path.write_text(
        f"""[aggregator]
database = "{db_url}"
output_dir = "public"
{site}
[server]
listen = "127.0.0.1:0"

[categories.news]
title = "News"

[categories.tech]
title = "Tech"

[categories.misc]
title = "Misc"

[[sources]]
id = "em-a"
url = "{base}/a.xml"
categories = ["news"]
interval = "{interval}"

[[sources]]
id = "kj-b"
url = "{base}/b.xml"
categories = ["misc"]
interval = "{interval}"
{rules}""",
        encoding="utf-8",
    )
    return path


def aggregator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args], capture_output=True, text=True, timeout=120
    )


def feed(folder: Path, name: str) -> str:
    return (folder / "public" / f"{name}.atom").read_text(encoding="utf-8")


DROP_ADS = '\n[[rules]]\nmatch = "广告"\naction = "drop"\n'
FILE_CHIPS = '\n[[rules]]\nmatch = "chip"\naction = "file"\nto = ["tech"]\n'
RETITLE_ADS = '\n[[rules]]\nmatch = "^【广告】"\naction = "retitle"\nreplace = ""\n'


def test_poll_drops_and_a_rule_change_is_reapplied_without_refetch(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    loopback.add("/a.xml", rss("【广告】Deal", "Chip news", "Plain"), headers=RSS)
    loopback.add("/b.xml", rss("Other", site="b"), headers=RSS)
    config = write_config(tmp_path, db_url, loopback.url, DROP_ADS)

    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "em-a ok new=2 updated=0 unchanged=0 skipped=0 dropped=1" in first.stdout
    assert "dropped=1 duration=" in first.stderr  # the log line too
    assert "Deal" not in feed(tmp_path, "all") and "Deal" not in feed(tmp_path, "news")
    assert "Chip news" in feed(tmp_path, "news")

    # polled again: the dropped item does not come back
    again = aggregator("poll", "-c", str(config))
    assert again.returncode == 0 and "Deal" not in feed(tmp_path, "all")

    # the rules change; build re-applies them to what is stored, fetching nothing
    misc = tmp_path / "public" / "misc.atom"
    misc_written = misc.stat().st_mtime_ns
    fetched = len(loopback.requests)
    write_config(tmp_path, db_url, loopback.url, FILE_CHIPS)
    built = aggregator("build", "-c", str(config))
    assert built.returncode == 0, built.stderr
    assert "rules re-applied items=4 changed=2 dropped=0 restored=1" in built.stderr
    assert len(loopback.requests) == fetched
    assert "【广告】Deal" in feed(tmp_path, "all") and "【广告】Deal" in feed(tmp_path, "news")
    assert "Chip news" in feed(tmp_path, "tech")

    # and again: filed -> unfiled, retitled; the next poll re-applies before polling
    write_config(tmp_path, db_url, loopback.url, RETITLE_ADS)
    misc_written = misc.stat().st_mtime_ns
    polled = aggregator("poll", "-c", str(config))
    assert polled.returncode == 0, polled.stderr
    assert "rules re-applied items=4 changed=2" in polled.stderr
    assert "Chip news" not in feed(tmp_path, "tech")
    assert "<title>Deal</title>" in feed(tmp_path, "news")
    assert "<title>【广告】Deal</title>" not in feed(tmp_path, "all")
    assert misc.stat().st_mtime_ns == misc_written  # a feed whose entries stayed is not rewritten


def posted(folder: Path) -> dict[str, str]:
    """Title line of each Jekyll post -> its file name."""
    found = {}
    for post in (folder / "site" / "_posts").iterdir():
        lines = post.read_text("utf-8").splitlines()
        found[next(line for line in lines if line.startswith("title:"))] = post.name
    return found


def test_a_post_of_an_item_a_rule_change_drops_is_deleted(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    """Written while no rule dropped it; the rules change, the item is dropped by
    re-application and its post goes; the rule goes, the post comes back."""
    loopback.add("/a.xml", rss("【广告】Deal", "Chip news"), headers=RSS)
    loopback.add("/b.xml", rss("Other", site="b"), headers=RSS)
    config = write_config(tmp_path, db_url, loopback.url, "", posts=True)
    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 0, first.stderr
    before = posted(tmp_path)
    assert sorted(before) == ['title: "Chip news"', 'title: "Other"', 'title: "【广告】Deal"']

    write_config(tmp_path, db_url, loopback.url, DROP_ADS, posts=True)
    built = aggregator("build", "-c", str(config))
    assert built.returncode == 0, built.stderr
    assert "rules re-applied items=3 changed=1 dropped=1" in built.stderr
    assert posted(tmp_path) == {t: n for t, n in before.items() if "Deal" not in t}

    write_config(tmp_path, db_url, loopback.url, "", posts=True)
    again = aggregator("build", "-c", str(config))
    assert again.returncode == 0, again.stderr
    assert "restored=1" in again.stderr
    assert posted(tmp_path) == before


def test_rules_test_reports_and_changes_nothing(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    loopback.add("/a.xml", rss("【广告】Deal", "Chip news", "Plain chip"), headers=RSS)
    loopback.add("/b.xml", rss("Other chip", site="b"), headers=RSS)
    config = write_config(tmp_path, db_url, loopback.url, "")
    assert aggregator("poll", "-c", str(config)).returncode == 0
    before = feed(tmp_path, "all")

    write_config(tmp_path, db_url, loopback.url, DROP_ADS + FILE_CHIPS)
    tried = aggregator("rules", "test", "-c", str(config))
    assert tried.returncode == 0, tried.stderr
    out = tried.stdout
    assert "4 stored items evaluated: 1 dropped by the rules, 4 would change" in out
    row1 = next(line for line in out.splitlines() if "drop title ~ 广告" in line)
    assert [c.strip() for c in row1.split("│")[5:10]] == ["1", "0", "0", "0", "0"], row1
    row2 = next(line for line in out.splitlines() if "file title ~ chip" in line)
    assert [c.strip() for c in row2.split("│")[5:10]] == ["0", "0", "3", "0", "0"], row2
    assert "rule 1: examples" in out and "【广告】Deal" in out and "em-a" in out

    only = aggregator("rules", "test", "-c", str(config), "--rule", "2", "--source", "kj-b")
    assert only.returncode == 0, only.stderr
    assert "drop title ~ 广告" not in only.stdout and "Other chip" in only.stdout
    assert "1 stored items of source kj-b evaluated" in only.stdout

    # nothing changed: the next build still finds the rules new and re-applies them
    assert feed(tmp_path, "all") == before
    built = aggregator("build", "-c", str(config))
    assert "rules re-applied items=4 changed=4 dropped=1" in built.stderr

    assert aggregator("rules", "test", "-c", str(config), "--rule", "3").returncode == 2
    assert aggregator("rules", "test", "-c", str(config), "--source", "zz").returncode == 2


def test_rules_test_exits_2_on_a_bad_rule(tmp_path: Path, loopback: LoopbackServer) -> None:
    config = write_config(
        tmp_path,
        "sqlite:///db.sqlite",
        loopback.url,
        '\n[[rules]]\nmatch = "a[b"\naction = "drop"\n',
    )
    tried = aggregator("rules", "test", "-c", str(config))
    assert tried.returncode == 2
    line = config.read_text().splitlines().index('match = "a[b"') + 1
    assert f"{config}:{line}: rules[0].match: not a valid regular expression" in tried.stderr


def test_daemon_keeps_its_rules_on_a_bad_reload_and_reapplies_good_ones(
    tmp_path: Path, loopback: LoopbackServer, notify: NotifyListener, start_daemon: Any
) -> None:
    loopback.add("/a.xml", rss("spam 1", "ham 1"), headers=RSS)
    loopback.add("/b.xml", rss("other", site="b"), headers=RSS)
    drop_spam = '\n[[rules]]\nmatch = "spam"\naction = "drop"\n'
    config = write_config(tmp_path, "sqlite:///db.sqlite", loopback.url, drop_spam, "1s")
    daemon = start_daemon(config)
    notify.wait_for("READY", "1")
    all_atom = tmp_path / "public" / "all.atom"
    wait_until(lambda: all_atom.exists() and "ham 1" in all_atom.read_text(), 20, "ham 1")
    assert "spam 1" not in all_atom.read_text()

    # a bad regex: refused with file:line, the running rules stay
    write_config(
        tmp_path, "sqlite:///db.sqlite", loopback.url, drop_spam.replace("spam", "(spam"), "1s"
    )
    hup = time.monotonic()
    daemon.send(signal.SIGHUP)
    assert "reload refused" in notify.wait_for("READY", "1", since=hup, timeout=10)["STATUS"]
    daemon.wait_log(r"reload refused.*aggregator\.toml:\d+: rules\[0\]\.match: not a valid")
    loopback.add("/a.xml", rss("spam 1", "ham 1", "spam 2", "ham 2"), headers=RSS)
    wait_until(lambda: "ham 2" in all_atom.read_text(), 20, "ham 2 polled and written")
    assert "spam" not in all_atom.read_text()

    # a good change: re-applied to the stored items at once, no refetch needed
    write_config(
        tmp_path, "sqlite:///db.sqlite", loopback.url, drop_spam.replace("spam", "ham"), "1s"
    )
    daemon.send(signal.SIGHUP)
    wait_until(lambda: "spam 2" in all_atom.read_text(), 20, "spam back after the reload")
    wait_until(lambda: "ham" not in all_atom.read_text(), 20, "ham dropped after the reload")
    daemon.wait_log(r"rules re-applied items=5 changed=4 dropped=2 restored=2")
    daemon.send(signal.SIGTERM)
    assert daemon.wait(20) == 0, daemon.log()


def test_rules_test_without_a_database_creates_nothing(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    config = write_config(tmp_path, "sqlite:///db/none.sqlite", loopback.url, DROP_ADS)
    tried = aggregator("rules", "test", "-c", str(config))
    assert tried.returncode == 1
    assert "no database at" in tried.stderr
    assert not (tmp_path / "db").exists()
