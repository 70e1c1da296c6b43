"""posts: the Jekyll site, byte for byte as the original finance-news site wrote it."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from aggregator.model import Category, Entry
from aggregator.posts import (
    post_category,
    post_filename,
    render_category_page,
    render_post,
    write_posts,
    yaml_quote,
    yaml_scalar,
)

FINEWS = Path(__file__).parent / "data" / "write" / "finews"
POST = FINEWS / "2022-05-25-NW202205252391675717.md"
TZ = ZoneInfo("Asia/Shanghai")
LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205252391675717"
SITE = "//finews.withounder.com"
KEJIRIBAO = Category("kejiribao", "科技日报新闻")
EMNEWS = Category("emnews", "东财滚动新闻")
CATEGORIES = {"kejiribao": KEJIRIBAO, "emnews": EMNEWS}


def fixture_body() -> str:
    """The article HTML of the fixture post: between the front matter and the share link."""
    text = POST.read_bytes().decode("utf-8")
    _, _front_matter, rest = text.split("---\n", 2)
    body, _tail = rest.split(f"\n\n<{LINK}>", 1)
    return body


def fixture_entry(**fields: object) -> Entry:
    base = Entry(
        key="ic:NW202205252391675717",
        infocode="NW202205252391675717",
        title="科技金融+组团发展 内江高新区力造百亿级产业集群",
        link=LINK,
        content_html=None,
        content_raw=fixture_body(),
        summary_html=None,
        author="科技日报",
        # stored in UTC: the post is dated in the configured zone
        published=datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
        updated=datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC),
        categories=("emnews", "kejiribao"),
        post_category="kejiribao",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_fixture_keeps_crlf_and_no_final_newline() -> None:
    data = POST.read_bytes()
    assert b"</p>\r\n <p>" in fixture_body().encode()
    assert not data.endswith(b"\n")


def test_post_is_byte_equal_to_the_fixture() -> None:
    assert render_post(fixture_entry(), KEJIRIBAO, SITE, tz=TZ) == POST.read_bytes()


def test_site_url_with_a_trailing_slash() -> None:
    assert render_post(fixture_entry(), KEJIRIBAO, SITE + "/", tz=TZ) == POST.read_bytes()


def test_post_without_tz_uses_the_dates_own_offset() -> None:
    entry = fixture_entry(published=datetime(2022, 5, 25, 16, 53, 43, tzinfo=TZ))
    assert render_post(entry, KEJIRIBAO, SITE) == POST.read_bytes()


def test_post_body_falls_back_to_summary() -> None:
    entry = fixture_entry(content_raw=None, summary_html="<p>digest</p>", link=None)
    out = render_post(entry, KEJIRIBAO, SITE, tz=TZ).decode()
    assert out.endswith(
        "---\n<p>digest</p>\n\n[返回科技日报新闻](//finews.withounder.com/category/kejiribao.html)"
        "｜[返回首页](//finews.withounder.com/)"
    )


def test_post_filename() -> None:
    assert post_filename(fixture_entry(), TZ) == POST.name
    # the date is the configured zone's: 23:30 UTC is the next day in Shanghai
    late = fixture_entry(published=datetime(2022, 5, 24, 23, 30, tzinfo=UTC))
    assert post_filename(late, TZ) == "2022-05-25-NW202205252391675717.md"
    keyed = fixture_entry(infocode=None, key="src:kjrb-rss:guid:https://e.org/a?id=7&x=../../y")
    name = post_filename(keyed, TZ)
    assert name.startswith("2022-05-25-src-kjrb-rss-guid-https-e-org-a-id-7-x-y-")
    assert name.endswith(".md")
    assert "/" not in name and ".." not in name
    other = fixture_entry(infocode=None, key="src:kjrb-rss:guid:https://e.org/a?id=7&x=../../Y")
    assert post_filename(other, TZ) != name  # same slug, different key: different file
    # an infoCode that is not safe as a file name is not used as one
    odd = fixture_entry(infocode="../etc/passwd")
    assert "/" not in post_filename(odd, TZ)


def test_category_page_is_byte_equal_to_the_fixture() -> None:
    expected = (FINEWS / "category-kejiribao.html").read_bytes()
    assert render_category_page(KEJIRIBAO) == expected


def test_category_page_title_is_str_title() -> None:
    page = render_category_page(Category("zhong-guo_zheng-quan-bao", "中国证券报新闻"))
    meta = yaml.safe_load(page.decode().split("---")[1])
    assert meta == {
        "layout": "category",
        "title": "Zhong-Guo_Zheng-Quan-Bao",
        "category": "zhong-guo_zheng-quan-bao",
    }


TITLES = [
    'He said "quote" and \\backslash\\',
    'only "',
    "trailing \\",
    "colon: and # hash",
    "- leading dash",
    "{braces} [brackets] & *star !bang |pipe >gt 'single' %pct @at `tick`",
    "line\nbreak\r\nand\ttab",
    "\x00\x01\x07\x1b\x7f\x80\x9f nul and controls",
    "\x85 NEL \u2028 LS \u2029 PS \ufeff BOM",
    "emoji 🎉 and 中文 and ＂fullwidth＂",
    "yes",
    "null",
    "123",
    "2022-05-25",
    "",
    "   spaces   ",
    "{{ liquid }} {% tag %}",
]


@pytest.mark.parametrize("title", TITLES)
def test_yaml_title_round_trips(title: str) -> None:
    out = render_post(fixture_entry(title=title), KEJIRIBAO, SITE, tz=TZ).decode()
    front_matter = out.split("---\n")[1]
    meta = yaml.safe_load(front_matter)
    assert meta["title"] == title
    assert meta["layout"] == "post"
    assert meta["categories"] == "kejiribao"
    assert meta["tags"] == "科技日报新闻"
    assert front_matter.count("\n") == 5  # the title stays on one line


def test_yaml_lone_surrogate_is_dropped() -> None:
    quoted = yaml_quote("a\ud800b")
    assert yaml.safe_load("t: " + quoted)["t"] == "ab"


@pytest.mark.parametrize(
    "value", ["kejiribao", "科技日报新闻", "yes", "No", "0x1f", "1e3", "12", "a: b", "#x", "~", ""]
)
def test_yaml_scalar_round_trips(value: str) -> None:
    assert yaml.safe_load(f"k: {yaml_scalar(value)}")["k"] == value


def test_post_category_publisher_first() -> None:
    assert post_category(fixture_entry(), CATEGORIES) == KEJIRIBAO
    assert post_category(fixture_entry(post_category=None), CATEGORIES) == EMNEWS
    unknown = fixture_entry(post_category="renminribao")
    assert post_category(unknown, CATEGORIES) == Category("renminribao", "renminribao")
    assert post_category(fixture_entry(post_category=None, categories=()), CATEGORIES) is None


NOW = datetime(2022, 6, 10, 12, 0, tzinfo=TZ)


def entries() -> list[Entry]:
    recent = fixture_entry(
        key="ic:NW202206092391675799",
        infocode="NW202206092391675799",
        published=datetime(2022, 6, 9, 10, 0, tzinfo=TZ),
        updated=datetime(2022, 6, 9, 10, 0, tzinfo=TZ),
        post_category=None,
    )
    return [recent, fixture_entry()]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_write_posts_writes_once(tmp_path: Path) -> None:
    result = write_posts(tmp_path, entries(), CATEGORIES, SITE, TZ, None, NOW)
    assert (result.written, result.unchanged, result.archived, result.pages_written) == (2, 0, 0, 2)
    assert tree(tmp_path) == [
        "_posts/2022-05-25-NW202205252391675717.md",
        "_posts/2022-06-09-NW202206092391675799.md",
        "category/emnews.html",
        "category/kejiribao.html",
    ]
    assert (tmp_path / "_posts" / POST.name).read_bytes() == POST.read_bytes()
    # filed under the first category when there is no publisher category
    recent = (tmp_path / "_posts" / "2022-06-09-NW202206092391675799.md").read_text()
    assert "categories: emnews\ntags: 东财滚动新闻\n" in recent

    post = tmp_path / "_posts" / POST.name
    os.utime(post, ns=(10**18, 10**18))
    again = write_posts(tmp_path, entries(), CATEGORIES, SITE, TZ, None, NOW)
    assert (again.written, again.unchanged, again.pages_written) == (0, 2, 0)
    assert post.stat().st_mtime_ns == 10**18

    changed = [entries()[0], fixture_entry(title="新标题")]
    third = write_posts(tmp_path, changed, CATEGORIES, SITE, TZ, None, NOW)
    assert (third.written, third.unchanged) == (1, 1)
    assert 'title: "新标题"' in post.read_text()


def test_write_posts_archives_old_posts(tmp_path: Path) -> None:
    write_posts(tmp_path, entries(), CATEGORIES, SITE, TZ, None, NOW)
    result = write_posts(tmp_path, entries(), CATEGORIES, SITE, TZ, timedelta(days=7), NOW)
    assert result.archived == 1
    assert (result.written, result.unchanged) == (0, 2)
    assert tree(tmp_path) == [
        "_posts/2022-06-09-NW202206092391675799.md",
        "category/emnews.html",
        "category/kejiribao.html",
        f"old_post/{POST.name}",
    ]
    assert (tmp_path / "old_post" / POST.name).read_bytes() == POST.read_bytes()
    # never written back into _posts; a change lands in old_post
    again = write_posts(
        tmp_path, [fixture_entry(title="改")], CATEGORIES, SITE, TZ, timedelta(days=7), NOW
    )
    assert (again.archived, again.written) == (0, 1)
    assert not (tmp_path / "_posts" / POST.name).exists()
    assert 'title: "改"' in (tmp_path / "old_post" / POST.name).read_text()


def test_old_entry_goes_straight_to_old_post(tmp_path: Path) -> None:
    result = write_posts(tmp_path, [fixture_entry()], CATEGORIES, SITE, TZ, timedelta(days=7), NOW)
    assert (result.written, result.archived) == (1, 0)
    assert (tmp_path / "old_post" / POST.name).exists()
    assert not (tmp_path / "_posts").exists() or not any((tmp_path / "_posts").iterdir())


def test_a_moved_date_leaves_no_duplicate(tmp_path: Path) -> None:
    write_posts(tmp_path, [fixture_entry()], CATEGORIES, SITE, TZ, None, NOW)
    earlier = fixture_entry(published=datetime(2022, 5, 24, 9, 0, tzinfo=TZ))
    result = write_posts(tmp_path, [earlier], CATEGORIES, SITE, TZ, None, NOW)
    assert (result.written, result.removed) == (1, 1)
    posts = sorted(p.name for p in (tmp_path / "_posts").iterdir())
    assert posts == ["2022-05-24-NW202205252391675717.md"]


def test_entries_without_category_are_skipped(tmp_path: Path) -> None:
    orphan = fixture_entry(categories=(), post_category=None)
    result = write_posts(tmp_path, [orphan], {}, SITE, TZ, None, NOW)
    assert (result.written, result.skipped) == (0, 1)
