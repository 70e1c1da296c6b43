"""infoCode rules: normalizing, reading it from URLs, and the feed-item lookup order."""

from __future__ import annotations

import pytest

from aggregator.parse.infocode import find_infocode, infocode_from_url, normalize_infocode

SEED = "NW202205252391675717"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("202205252391675717", SEED),  # bare 18 digits get NW
        (202205252391675717, SEED),  # a JSON number
        (SEED, SEED),
        (" NW202205252391675717 ", SEED),
        ("nw202205252391675717", SEED),  # prefix upper-cased
        ("AN202205251234567890", "AN202205251234567890"),  # other [A-Z]{2}digits kept
        ("RP12345", "RP12345"),
        ("20220525239167571", None),  # 17 digits
        ("2022052523916757171", None),  # 19 digits
        ("NW", None),
        ("N1234", None),
        ("NW2022-05", None),
        ("", None),
        (None, None),
        (True, None),
        (2.02205252391675717e17, None),
        (["NW1"], None),
    ],
)
def test_normalize(value: object, expected: str | None) -> None:
    assert normalize_infocode(value) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"http://finews.zning.xyz/html_News/NewsShare.html?infoCode={SEED}", SEED),
        ("https://x.example/a?id=1&infoCode=202205252391675717#top", SEED),
        (
            "https://choicew2z.eastmoney.com/info/detail.html?infocode=NW202602053642763595",
            "NW202602053642763595",
        ),
        ("https://x.example/a?InfoCode=NW202205252391675717", None),  # the name is case-sensitive
        ("https://x.example/a?infoCode=junk&infocode=NW202205252391675717", SEED),
        ("https://x.example/a?infoCode=", None),
        ("http://finance.eastmoney.com/a/202205312398034850.html", None),  # a path is not the rule
        ("not a url", None),
        ("http://[::1", None),
        (None, None),
        ("", None),
    ],
)
def test_from_url(url: str | None, expected: str | None) -> None:
    assert infocode_from_url(url) == expected


def test_find_without_pattern_tries_link_then_guid() -> None:
    link = f"https://x.example/a?infoCode={SEED}"
    guid = "https://x.example/?infoCode=NW202112082206672930"
    assert find_infocode(link, guid, None) == SEED
    assert find_infocode("https://x.example/a", guid, None) == "NW202112082206672930"
    assert find_infocode(None, None, None) is None


def test_find_with_pattern_group_one_on_link_then_guid() -> None:
    pattern = r"/a/(\d{18})\.html"
    assert find_infocode(
        "http://finance.eastmoney.com/a/202205312398034850.html", None, pattern
    ) == ("NW202205312398034850")
    assert (
        find_infocode(
            "http://x/", "http://finance.eastmoney.com/a/202205252391675717.html", pattern
        )
        == SEED
    )
    # A pattern replaces the query rule, it does not add to it.
    assert find_infocode(f"https://x.example/a?infoCode={SEED}", None, pattern) is None
    # What group 1 captures must still be an infoCode.
    assert find_infocode("http://x/a/b.html", None, r"/a/(\w+)\.html") is None
    assert (
        find_infocode(f"https://x.example/?infoCode={SEED}", None, r"infoCode=([A-Z]{2}\d+)")
        == SEED
    )
