"""Canonical links, normalized titles and text similarity (pure): tables."""

from __future__ import annotations

import pytest

from aggregator.canonical import canonical_link, permalink, tracking
from aggregator.similar import normalized_title, shingles, similarity

STORY = "example.com/news/2024/05/story.html"


@pytest.mark.parametrize(
    "link",
    [
        "https://example.com/news/2024/05/story.html",
        "http://example.com/news/2024/05/story.html",
        "HTTPS://EXAMPLE.COM/news/2024/05/story.html",
        "https://www.example.com/news/2024/05/story.html",
        "https://m.example.com/news/2024/05/story.html",
        "https://mobile.example.com/news/2024/05/story.html",
        "https://example.com:443/news/2024/05/story.html",
        "http://example.com:80/news/2024/05/story.html",
        "https://example.com/news/2024/05/story.html#comments",
        "https://example.com/news/2024/05/story.html/",
        "https://example.com/news/2024/05/story.html?utm_source=rss&utm_medium=feed",
        "https://example.com/news/2024/05/story.html?spm=a2c4g.11186623&fbclid=IwAR0x",
        "https://example.com/news/2024/05/story.html?gclid=1&msclkid=2&mc_cid=3&mc_eid=4",
        "https://example.com/news/2024/05/story.html?yclid=1&igshid=2&_hsenc=3&ref_src=twsrc",
        "https://example.com/news/2024/05/%73tory.html",
        "  https://example.com/news/2024/05/story.html  ",
    ],
)
def test_variants_of_one_link_share_a_form(link: str) -> None:
    assert canonical_link(link) == STORY


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a?id=1&page=2", "https://example.com/a?page=2&id=1"),
        ("https://example.com/%e4%b8%ad", "https://example.com/中"),
        ("https://example.com/%7Euser", "https://example.com/~user"),
        ("https://example.com/a?q=a+b", "https://example.com/a?q=a%20b"),
    ],
)
def test_equal_forms(a: str, b: str) -> None:
    assert canonical_link(a) == canonical_link(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),  # the story's own id
        ("https://example.com/a", "https://example.org/a"),
        ("https://example.com:8443/a", "https://example.com/a"),  # another server
        ("https://news.example.com/a", "https://example.com/a"),  # another site
        ("https://example.com/A", "https://example.com/a"),  # paths are case-sensitive
        ("https://example.com/a/b", "https://example.com/a%2Fb"),
    ],
)
def test_different_stories_stay_apart(a: str, b: str) -> None:
    assert canonical_link(a) != canonical_link(b)


@pytest.mark.parametrize(
    "link", [None, "", "ftp://example.com/a", "mailto:x@example.com", "/relative", "http://[::1"]
)
def test_not_a_web_link(link: str | None) -> None:
    assert canonical_link(link) is None


def test_tracking_parameters_from_config() -> None:
    link = "https://example.com/a?id=1&campaign=x"
    assert canonical_link(link) == "example.com/a?campaign=x&id=1"
    assert canonical_link(link, tracking(["Campaign"])) == "example.com/a?id=1"


def test_a_two_label_host_keeps_its_prefix() -> None:
    assert canonical_link("https://m.me/a") == "m.me/a"


def test_long_links_are_kept_as_a_hash() -> None:
    long = "https://example.com/" + "a" * 1000
    canon = canonical_link(long)
    assert canon is not None and canon.startswith("sha1:") and len(canon) < 60
    assert canonical_link(long + "?utm_source=x") == canon


def test_hostile_links_give_a_form() -> None:
    # many parameters, long escapes: each step is one pass over the text
    link = "https://example.com/" + "%" * 50_000 + "?" + "&".join(f"a{i}=b" for i in range(5000))
    canon = canonical_link(link)
    assert canon is not None and canon.startswith("sha1:")


@pytest.mark.parametrize(
    ("guid", "link"),
    [
        ("https://example.com/p/1", "https://example.com/p/1"),
        (" http://example.com/p/1 ", "http://example.com/p/1"),
        ("tag:example.com,2024:1", None),
        ("12345", None),
        (None, None),
    ],
)
def test_permalink_guid(guid: str | None, link: str | None) -> None:
    assert permalink(guid) == link


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Fed holds rates steady - Reuters", "Fed holds rates steady"),
        ("Fed holds rates steady | BBC News", "FED HOLDS RATES STEADY!"),
        ("【独家】央行宣布降准0.5个百分点", "央行宣布降准0.5个百分点｜新浪财经"),
        ("央行宣布降准0.5个百分点_网易新闻", "央行宣布降准 0.5 个百分点"),
        ("[视频] 神舟十八号发射成功", "神舟十八号发射成功 — 央视新闻"),
        ("Ｆｅｄ holds rates", "fed holds rates"),  # NFKC: full-width letters
    ],
)
def test_titles_that_normalize_alike(a: str, b: str) -> None:
    assert normalized_title(a) is not None
    assert normalized_title(a) == normalized_title(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Fed holds rates steady", "Fed raises rates"),
        ("央行宣布降准", "央行宣布加息"),
    ],
)
def test_titles_that_differ(a: str, b: str) -> None:
    assert normalized_title(a) != normalized_title(b)


def test_a_title_too_short_to_say_anything() -> None:
    assert normalized_title("Update") is not None  # six letters: still a title
    assert normalized_title("!!") is None
    assert normalized_title("") is None


def test_similar_texts_and_digests() -> None:
    story = "美联储周三宣布维持联邦基金利率目标区间不变，符合市场预期。声明称通胀仍然偏高。"
    copy = "据报道，" + story + "更多内容请关注。"
    other = "今日快讯：沪指收涨0.5%，创业板指涨1.2%，北向资金净买入30亿元，两市成交额破万亿。"
    assert similarity(shingles(story), shingles(copy)) >= 0.9
    assert similarity(shingles(story), shingles(other)) < 0.1
    assert similarity(shingles("short"), shingles("short")) == 0.0  # too little text


def test_the_short_way_gives_the_long_ways_form() -> None:
    """canonical_link folds common links without urllib; every form must be the long way's."""
    from itertools import product

    from aggregator.canonical import _canonical

    schemes = ("http://", "HTTPS://", "Https://", "ftp://")
    hosts = ("example.com", "www.example.com", "m.example.com", "m.me", "127.0.0.1", "EXAMPLE.com")
    ports = ("", ":80", ":443", ":8080", ":0443", ":99999", ":")
    paths = ("", "/", "/a/", "/a/b.html", "//x", "/a;b=c", "/~u", "/a:b@c", "/%7e", "/中", "/a b")
    tails = ("", "#top", "#", "?", "?a=1", "#a?b", "?utm_source=x", *QUERIES)
    long_path = ("/" + "x" * 500,)
    extra = tracking(["Campaign"])
    for parts in product(schemes, hosts, ports, paths + long_path, tails):
        link = "".join(parts)
        assert canonical_link(link) == _canonical(link, frozenset()), link
        assert canonical_link(link, extra) == _canonical(link, extra), link


#: queries the short way folds too (name=value pairs of unreserved characters), and some
#: that go the long way
QUERIES = (
    "?b=2&a=1",
    "?a-=1&a=2&a_=0",
    "?a=1&a=0&a=",
    "?infoCode=NW2022832365460459",
    "?a=1&utm_medium=x&UTM_source=y&fbclid=z#top",
    "?utm_source=x&spm=y",
    "?campaign=x&id=7",
    "?A.b~c=d-e_f",
    "?a=1&",
    "?a",
    "?a=b+c",
    "?a=%41",
    "?a=1;b=2",
    "?a=1&&b=2",
    "?=1",
    "?a==1",
)
