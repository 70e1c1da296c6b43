"""The original finews site's output from its own sources: the presets, polled on loopback.

``config/sources.d/eastmoney.toml`` pointed at the imitation in
``tests/finews_api.py`` must give the Jekyll site the old scripts wrote: the
seed post and its category page byte for byte, a post and page per
publisher, no broken posts, nothing rewritten when nothing changed, and
``old_post/`` for what is past ``archive_after``.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from aggregator.posts import archive_cutoff
from tests.finews_api import (
    CODE,
    PRESETS,
    SEED_DIGEST,
    SEED_PAGE,
    SEED_POST,
    SEED_TIME,
    SHARE_PAGE,
    TITLE,
    EastmoneyAPI,
    aggregator,
    market_record,
    node,
    presets_on,
    rolling_record,
    seed_body,
    snapshot,
)
from tests.loopback import LoopbackServer

TZ = ZoneInfo("Asia/Shanghai")
SITE = "//finews.withounder.com"
REPO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "aggregator.toml"
QUOTED = 'A股"牛市"来了？ C:\\路径\\ 与 \\"转义\\"'
PRESET_IDS = ["em-rolling", "em-publishers", "em-market-37", "em-market-38", "em-market-39"]

# (code, title, publisher, category, date) of the by-publisher list beside the seed
OTHERS = [
    ("NW202205252391675718", "另一条新闻", "中国基金报", "zhongguojijinbao", "2022-05-25 15:00:00"),
    ("202205252391675719", "券商午后拉升", "证券时报", "zhengquanshibao", "2022-05-25 14:00:00"),
    ("NW202205252391675720", QUOTED, "证券时报", "zhengquanshibao", "2022-05-25 13:00:00"),
]
MARKET = ("NW202205252391675721", "沪指收涨0.2%", "上海证券报", "shanghaizhengquanbao")
ROLLING_ONLY = ("NW202205252391675722", "央行开展逆回购操作")
TITLELESS = "NW202205252391675723"


def world() -> EastmoneyAPI:
    """Four publishers (one also on a market list), the seed again as rolling news,
    one rolling-only article, and one item with no title and no text."""
    api = EastmoneyAPI(
        by_publisher=[node(TITLE, "科技日报", CODE[2:], SEED_TIME)]
        + [node(title, pub, code, when) for code, title, pub, _, when in OTHERS]
        + [node(None, "科技日报", TITLELESS, "2022-05-25 12:00:00")],
        rolling=[
            rolling_record(TITLE, CODE, SEED_TIME, SEED_DIGEST),
            rolling_record(ROLLING_ONLY[1], ROLLING_ONLY[0], "2022-05-25 11:00:00", "央行今日开展"),
        ],
        market={
            "37": [market_record(MARKET[1], MARKET[2], MARKET[0], "2022-05-25 10:00:00")],
            "38": [],
            "39": [],
        },
    )
    codes = [CODE, MARKET[0], ROLLING_ONLY[0], TITLELESS]
    codes += ["NW" + code.removeprefix("NW") for code, *_ in OTHERS]
    api.bodies = {code: f"<p>{code} 的正文</p>\r\n <p>第二段</p>" for code in codes}
    api.bodies[CODE] = seed_body()
    return api


def write_site_config(tmp_path: Path, base: str, db_url: str, posts: str = "") -> Path:
    """A main config with [posts] that includes the presets, pointed at the loopback."""
    (tmp_path / "sources.d").mkdir(exist_ok=True)
    (tmp_path / "sources.d" / "eastmoney.toml").write_text(presets_on(base), encoding="utf-8")
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
timezone = "Asia/Shanghai"
entries_per_feed = 1   # posts are not limited to what the feeds show
include = ["sources.d/*.toml"]

[posts]
dir = "site"
site_url = "{SITE}"
{posts}
""",
        encoding="utf-8",
    )
    return config


def front_matter(path: Path) -> dict[str, object]:
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("---\n") and not text.endswith("\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert isinstance(meta, dict)
    return meta


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def posted(code: str, date: str = "2022-05-25") -> str:
    return f"{date}-NW{code.removeprefix('NW')}.md"


def test_presets_write_the_original_site(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    api = world()
    api.install(loopback)
    config = write_site_config(tmp_path, loopback.url, db_url)

    first = aggregator("poll", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(line.split()[:2] for line in first.stdout.splitlines()) == sorted(
        [i, "ok"] for i in PRESET_IDS
    )
    site = tmp_path / "site"
    posts, pages = site / "_posts", site / "category"
    assert (posts / SEED_POST.name).read_bytes() == SEED_POST.read_bytes()
    assert (pages / "kejiribao.html").read_bytes() == SEED_PAGE.read_bytes()

    # one post per article, the titleless one left out (and said so); the seed once,
    # under its publisher, though the rolling list also carried it
    assert names(posts) == {
        SEED_POST.name,
        *(posted(code) for code, *_ in OTHERS),
        posted(MARKET[0]),
        posted(ROLLING_ONLY[0]),
    }
    assert "neither title nor text" in first.stderr
    assert [p.name for p in site.rglob(f"*{CODE}*")] == [SEED_POST.name]
    publishers = {"kejiribao", "zhongguojijinbao", "zhengquanshibao", "shanghaizhengquanbao"}
    assert names(pages) == {f"{cid}.html" for cid in publishers | {"emnews"}}
    for cid in publishers | {"emnews"}:
        page = pages / f"{cid}.html"
        assert page.read_bytes() == (
            f"---\nlayout: category\ntitle: {cid.title()}\ncategory: {cid}\n---".encode()
        )

    expected = {posted(code): (title, cid, pub) for code, title, pub, cid, _ in OTHERS}
    expected[posted(MARKET[0])] = (MARKET[1], MARKET[3], MARKET[2])
    expected[posted(ROLLING_ONLY[0])] = (ROLLING_ONLY[1], "emnews", None)
    for name, (title, cid, publisher) in expected.items():
        meta = front_matter(posts / name)
        tags = f"{publisher}新闻" if publisher else "东财滚动新闻"
        assert (meta["title"], meta["categories"], meta["tags"]) == (title, cid, tags), name
        text = (posts / name).read_bytes().decode("utf-8")
        code = name.removesuffix(".md").split("-", 3)[3]
        assert text.count(f"<p>{code} 的正文</p>\r\n <p>第二段</p>") == 1, name  # CRLF kept
        link = f"<{SHARE_PAGE}{code}>" if publisher else f"/news/11060,{code[2:]}.html>"
        assert link in text, name
        assert text.endswith(f"[返回首页]({SITE}/)")

    before = snapshot(site)
    second = aggregator("poll", "-c", str(config))
    assert second.returncode == 0, second.stdout + second.stderr
    assert snapshot(site) == before

    # a changed title rewrites that post and nothing else; new items add theirs, all of
    # them, though the feeds show just the newest (entries_per_feed = 1)
    changed = posted(OTHERS[1][0])
    api.by_publisher[2] = node("券商板块午后大涨", "证券时报", OTHERS[1][0], OTHERS[1][4])
    added = ["NW202205242391675724", "NW202205242391675725"]
    for n, code in enumerate(added):
        api.by_publisher.append(node(f"基金新闻{n}", "中国基金报", code, f"2022-05-24 0{n}:00:00"))
        api.bodies[code] = f"<p>{code}</p>"
    third = aggregator("poll", "-c", str(config))
    assert third.returncode == 0, third.stdout + third.stderr
    assert "em-publishers ok new=2 updated=1" in third.stdout
    after = snapshot(site)
    assert {name for name in after if after[name] != before.get(name)} == {
        f"_posts/{changed}",
        *(f"_posts/{posted(code, '2022-05-24')}" for code in added),
    }
    assert front_matter(posts / changed)["title"] == "券商板块午后大涨"


def test_archive_moves_old_posts_to_old_post(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    now = datetime.now(TZ)
    fresh = f"NW{now:%Y%m%d}0000000001"
    api = EastmoneyAPI(
        by_publisher=[
            node(TITLE, "科技日报", CODE[2:], SEED_TIME),
            node("今天的新闻", "科技日报", fresh, f"{now:%Y-%m-%d %H:%M:%S}"),
        ],
        bodies={CODE: seed_body(), fresh: "<p>今天</p>"},
    )
    api.install(loopback)
    config = write_site_config(tmp_path, loopback.url, db_url, 'archive_after = "3d"')
    # a post the old site left in _posts: past three days, so it moves too
    posts, old = tmp_path / "site" / "_posts", tmp_path / "site" / "old_post"
    posts.mkdir(parents=True)
    legacy = posts / "2021-12-08-202112082206672930.md"
    legacy.write_bytes(b'---\nlayout: post\ntitle: "old"\n---\nold')

    first = aggregator("poll", "-c", str(config), "--source", "em-publishers")
    assert first.returncode == 0, first.stdout + first.stderr
    assert names(posts) == {f"{now:%Y-%m-%d}-{fresh}.md"}
    assert names(old) == {SEED_POST.name, legacy.name}
    assert (old / SEED_POST.name).read_bytes() == SEED_POST.read_bytes()

    # the archived post changes: rewritten in old_post, never back into _posts
    api.by_publisher[0] = node(TITLE + "（更新）", "科技日报", CODE[2:], SEED_TIME)
    second = aggregator("poll", "-c", str(config), "--source", "em-publishers")
    assert second.returncode == 0, second.stdout + second.stderr
    assert names(posts) == {f"{now:%Y-%m-%d}-{fresh}.md"}
    assert names(old) == {SEED_POST.name, legacy.name}
    assert front_matter(old / SEED_POST.name)["title"] == TITLE + "（更新）"

    # a poll that changes nothing still archives
    late = posts / "2022-05-26-NW202205262391675799.md"
    late.write_bytes(b'---\nlayout: post\ntitle: "late"\n---\nlate')
    third = aggregator("poll", "-c", str(config), "--source", "em-publishers")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "em-publishers ok new=0 updated=0" in third.stdout
    assert names(posts) == {f"{now:%Y-%m-%d}-{fresh}.md"}
    assert late.name in names(old)


def test_archive_keeps_three_days_as_the_original_did() -> None:
    """The old site kept today and the two days before in _posts, whatever the hour."""
    for hour in (0, 9, 23):
        now = datetime(2022, 5, 28, hour, 30, tzinfo=TZ)
        assert archive_cutoff(now, TZ, timedelta(days=3)).isoformat() == "2022-05-26"
    utc = datetime(2022, 5, 27, 17, 0, tzinfo=UTC)  # 01:00 on the 28th in Shanghai
    assert archive_cutoff(utc, TZ, timedelta(days=3)).isoformat() == "2022-05-26"


def test_presets_are_valid_and_disabled() -> None:
    """Ready [[sources]], off by default, each under a comment saying what it gives."""
    checked = aggregator("check-config", "-c", str(REPO_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = PRESETS.read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    assert [s["id"] for s in doc["sources"]] == PRESET_IDS
    assert all(s["enabled"] is False for s in doc["sources"])
    assert doc["categories"]["emnews"]["title"] == "东财滚动新闻"
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line == "[[sources]]":
            assert lines[number - 1].startswith("# "), f"no comment above line {number + 1}"
    for source in doc["sources"]:
        detail = source["json"]["detail"]
        assert detail == {
            "url": "http://choicewzp1.eastmoney.com/NewsData/GetNewsText.do?id={infocode}",
            "content": "text",
        }
    assert re.search(r"type=102\b", doc["sources"][0]["url"])
    assert re.search(r"type=45\b", doc["sources"][1]["url"])
