"""JSON list APIs -> ParsedFeed, in the shapes the finews scripts read.

Bodies are in tests/data/parse/eastmoney (its README says where each shape comes from).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import DetailMapping, JsonMapping
from aggregator.errors import EmptyFeed, NotAFeed, Unparseable
from aggregator.model import Fetched
from aggregator.parse import parse_detail, parse_json_api
from aggregator.parse.jsondoc import MISSING, get_path, unwrap_jsonp

DATA = Path(__file__).parent / "data" / "parse" / "eastmoney"
TZ = ZoneInfo("Asia/Shanghai")
SEED = "NW202205252391675717"
SEED_TITLE = "科技金融+组团发展 内江高新区力造百亿级产业集群"
DETAIL = DetailMapping(
    url="https://example.org/NewsData/GetNewsText.do?id={infocode}", content="text"
)


def fetched(
    body: bytes | str, url: str = "https://example.org/api/list", **headers: str
) -> Fetched:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Fetched(url, 200, body, headers, datetime(2022, 5, 25, tzinfo=UTC), 0.1)


def load(name: str, **headers: str) -> Fetched:
    return fetched((DATA / name).read_bytes(), **headers)


def test_publisher_list_gives_the_seed_article() -> None:
    mapping = JsonMapping(
        items="nodeList",
        infocode="infocode",
        title="title",
        published="showtime",
        link="https://example.org/NewsShare.html?infoCode={infocode}",
        summary="digest",
        author="from",
        detail=DETAIL,
    )
    feed = parse_json_api(load("publisher_45.json"), mapping, tz=TZ)
    assert [i.infocode for i in feed.items] == [SEED, "NW202205252391600001", None]
    seed = feed.items[0]
    assert seed.guid == SEED
    assert seed.title == SEED_TITLE
    assert seed.author == "科技日报"
    assert seed.published == datetime(2022, 5, 25, 16, 53, 43, tzinfo=TZ)
    assert seed.published.isoformat() == "2022-05-25T16:53:43+08:00"
    assert seed.link == f"https://example.org/NewsShare.html?infoCode={SEED}"
    assert seed.detail_url == f"https://example.org/NewsData/GetNewsText.do?id={SEED}"
    assert seed.summary is not None and seed.summary.startswith("2014年")
    assert seed.content is None
    # A bare 18-digit code is normalized before it fills the templates.
    assert feed.items[1].link == "https://example.org/NewsShare.html?infoCode=NW202205252391600001"
    # No infoCode: templates that need one give nothing, the item is still there.
    last = feed.items[2]
    assert (last.guid, last.link, last.detail_url) == (None, None, None)
    assert last.title == "Item without an infoCode"


def test_rolling_news_jsonp_with_plain_link_path() -> None:
    mapping = JsonMapping(
        items="records",
        infocode="id",
        title="title",
        published="showtime",
        link="url_w",
        summary="digest",
    )
    feed = parse_json_api(
        load("rolling_102.jsonp", **{"content-type": "text/javascript"}), mapping, tz=TZ
    )
    first = feed.items[0]
    assert first.infocode == "NW202112082206672930"  # the bare id got its NW
    assert first.link == "http://finance.eastmoney.com/news/11060,202112082206672930.html"
    assert first.published == datetime(2021, 12, 8, 10, 46, 18, tzinfo=TZ)
    assert first.summary == "离岸人民币兑美元升至6.3512，为2018年以来最高水平。"
    assert feed.items[1].infocode == SEED


def test_market_news_script_assignment() -> None:
    mapping = JsonMapping(
        items="record", infocode="infoCode", title="title", published="datetime", author="medianame"
    )
    (item,) = parse_json_api(load("market_37.js"), mapping, tz=TZ).items
    assert item.infocode == item.guid == "NW202205312398034850"
    assert item.author == "证券时报网"
    assert item.published == datetime(2022, 5, 31, 15, 2, 11, tzinfo=TZ)


def test_epoch_milliseconds_and_real_sample_items() -> None:
    mapping = JsonMapping(
        items="items",
        infocode="infoCode",
        title="title",
        published="showDateTime",
        summary="content",
        author="source",
    )
    (item,) = parse_json_api(load("eminfo_getnewslist.json"), mapping, tz=TZ).items
    assert item.infocode == "NW202205292395438077"
    assert item.published == datetime(2022, 5, 29, 13, 0, 8, tzinfo=UTC)  # 1653829208000 ms
    assert item.author == "中国基金报"
    assert item.title == "什么信号？海外中国ETF重现强劲流入 机构发话：增持时机已到！"


def test_fast_news_bare_code_and_epoch() -> None:
    mapping = JsonMapping(items="items", infocode="code", title="title", published="updateTime")
    feed = parse_json_api(load("eminfo_fastnews.json"), mapping, tz=TZ)
    assert [i.infocode for i in feed.items] == ["NW202205302396671645", "NW202205302396671291"]
    assert feed.items[0].published == datetime.fromtimestamp(1653919229, UTC)


def test_nested_list_path_and_link_infocode() -> None:
    mapping = JsonMapping(
        items="data.list", title="title", published="showtime", link="url", author="source"
    )
    (item,) = parse_json_api(load("np_pushlist.json"), mapping, tz=TZ).items
    # No infocode mapping, and the link has no infoCode query parameter: none.
    assert item.infocode is None and item.guid is None
    assert item.link == "http://finance.eastmoney.com/a/202205312398034850.html"
    assert item.published == datetime(2022, 5, 31, 18, 3, 41, tzinfo=TZ)
    with_code = mapping.model_copy(update={"infocode": "code"})
    (item,) = parse_json_api(load("np_pushlist.json"), with_code, tz=TZ).items
    assert item.infocode == "NW202205312398034850"


def test_getlistinfo_jsonp_with_callback() -> None:
    mapping = JsonMapping(
        items="data.list",
        infocode="Art_Code",
        title="Art_Title",
        link="Art_Url",
        published="Art_ShowTime",
        author="Art_MediaName",
    )
    (item,) = parse_json_api(load("np_getlistinfo.jsonp"), mapping, tz=TZ).items
    assert item.infocode == "NW202202092271136373"
    assert item.author == "每日经济新闻"
    assert item.published == datetime(2022, 2, 9, 14, 12, 30, tzinfo=TZ)


def test_relative_dates_give_no_date() -> None:
    mapping = JsonMapping(
        items="items", infocode="infocode", summary="simdigest", published="showtime", author="from"
    )
    feed = parse_json_api(load("choicegw_items.json"), mapping, tz=TZ)
    assert [i.published for i in feed.items] == [None, None]
    assert feed.items[0].infocode == "NW202602053642763595"


def test_infocode_from_the_link_when_no_mapping() -> None:
    body = {"list": [{"t": "x", "u": "https://example.org/a.html?infoCode=NW202205252391675717"}]}
    mapping = JsonMapping(items="list", title="t", link="u")
    (item,) = parse_json_api(fetched(json.dumps(body)), mapping, tz=TZ).items
    assert item.infocode == item.guid == SEED


def test_templates_use_item_fields_and_dotted_names() -> None:
    body = {
        "data": [
            {"meta": {"code": "202205252391675717"}, "t": "A &amp; B <em>hot</em>", "n": 7},
        ]
    }
    mapping = JsonMapping(
        items="data",
        infocode="meta.code",
        title="t",
        link="https://example.org/{meta.code}/{n}.html",
        guid="item-{n}",
    )
    (item,) = parse_json_api(fetched(json.dumps(body)), mapping, tz=TZ).items
    assert item.link == "https://example.org/202205252391675717/7.html"
    assert item.title == "A & B hot"
    assert item.guid == SEED  # the infoCode wins over the guid mapping
    no_code = mapping.model_copy(update={"infocode": None, "link": None})
    (item,) = parse_json_api(fetched(json.dumps(body)), no_code, tz=TZ).items
    assert item.guid == "item-7"


def test_template_values_are_url_quoted() -> None:
    body = {"items": [{"q": "a b/c", "u": "https://other.example/x?y=1"}]}
    mapping = JsonMapping(items="items", link="https://example.org/s?q={q}", guid="{u}")
    (item,) = parse_json_api(fetched(json.dumps(body)), mapping, tz=TZ).items
    assert item.link == "https://example.org/s?q=a%20b%2Fc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-05-25 16:53:43", datetime(2022, 5, 25, 16, 53, 43, tzinfo=TZ)),
        ("2022-05-25T08:53:43Z", datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)),
        (1653468823, datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)),
        ("1653468823", datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)),
        (1653468823000, datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)),
        ("1653468823000", datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)),
        (1653468823000.0, datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)),
        (None, None),
        (True, None),
        ({"a": 1}, None),
    ],
)
def test_published_shapes(value: object, expected: datetime | None) -> None:
    mapping = JsonMapping(items="items", title="t", published="p")
    body = json.dumps({"items": [{"t": "x", "p": value}]})
    (item,) = parse_json_api(fetched(body), mapping, tz=TZ).items
    assert item.published == expected


def test_items_keyed_by_id_and_index_paths() -> None:
    body = {
        "data": {"byId": {"1": {"t": "one"}, "2": {"t": "two"}}},
        "pages": [{"rows": [{"t": "r"}]}],
    }
    by_id = parse_json_api(
        fetched(json.dumps(body)), JsonMapping(items="data.byId", title="t"), tz=TZ
    )
    assert [i.title for i in by_id.items] == ["one", "two"]
    for path in ("pages.0.rows", "pages[0].rows"):
        rows = parse_json_api(fetched(json.dumps(body)), JsonMapping(items=path, title="t"), tz=TZ)
        assert [i.title for i in rows.items] == ["r"]


def test_max_items_keeps_the_first() -> None:
    body = json.dumps({"items": [{"t": str(n)} for n in range(10)] + ["junk"]})
    feed = parse_json_api(fetched(body), JsonMapping(items="items", title="t"), tz=TZ, max_items=3)
    assert [i.title for i in feed.items] == ["0", "1", "2"]
    assert any("kept the first 3" in w for w in feed.warnings)


def test_non_object_items_are_dropped_with_a_warning() -> None:
    body = json.dumps({"items": [{"t": "ok"}, 3, None]})
    feed = parse_json_api(fetched(body), JsonMapping(items="items", title="t"), tz=TZ)
    assert [i.title for i in feed.items] == ["ok"]
    assert len(feed.warnings) == 2


def test_empty_list_is_a_valid_feed() -> None:
    feed = parse_json_api(fetched('{"data": {"list": []}}'), JsonMapping(items="data.list"), tz=TZ)
    assert feed.items == ()


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"", EmptyFeed, "empty"),
        (b"  \n", EmptyFeed, "empty"),
        (b'{"data": ', Unparseable, "broken JSON"),
        (b"callback({oops})", Unparseable, "broken JSON"),
        (b"<!DOCTYPE html><html><body>502</body></html>", NotAFeed, "HTML"),
        (b'{"rc": 0, "data": null}', NotAFeed, "'data.list'"),
        (b'{"rc": 0, "message": "busy"}', NotAFeed, "'data.list'"),
        (b'{"data": {"list": "none"}}', NotAFeed, "found a str"),
        (b"[" * 100_000 + b"]" * 100_000, Unparseable, "broken JSON"),
    ],
)
def test_errors(body: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(")) as caught:
        parse_json_api(fetched(body), JsonMapping(items="data.list"), tz=TZ)
    assert isinstance(caught.value, error)


def test_not_a_feed_names_the_path_and_what_was_there() -> None:
    with pytest.raises(NotAFeed) as caught:
        parse_json_api(
            fetched('{"rc": 0, "message": "busy"}'), JsonMapping(items="nodeList"), tz=TZ
        )
    assert "'nodeList'" in str(caught.value)
    assert "rc, message" in str(caught.value)


def test_detail_body_is_returned_byte_for_byte() -> None:
    expected = (DATA / "detail_NW202205252391675717.html").read_bytes().decode("utf-8")
    assert "\r\n" in expected  # the paragraphs are separated by CRLF and a space
    body = (DATA / "detail_NW202205252391675717.json").read_bytes()
    assert parse_detail(body, {"Content-Type": "application/json"}, "text") == expected
    jsonp = b"cb(" + body + b");"
    assert parse_detail(jsonp, {}, "text") == expected
    assert parse_detail(body, {}, "missing") is None
    assert parse_detail(b'{"data": {"text": "  "}}', {}, "data.text") is None
    assert parse_detail(b'{"data": {"text": "<p>x</p>"}}', {}, "data.text") == "<p>x</p>"


def test_detail_matches_the_finews_post() -> None:
    post = Path(__file__).resolve().parents[2] / "shared/fixtures/finews" / f"2022-05-25-{SEED}.md"
    if not post.exists():
        pytest.skip("shared fixtures not laid beside the clone")
    text = post.read_bytes().decode("utf-8")
    body = parse_detail((DATA / f"detail_{SEED}.json").read_bytes(), {}, "text")
    assert body is not None and f"---\n{body}\n\n<http://finews" in text


def test_detail_errors() -> None:
    with pytest.raises(Unparseable):
        parse_detail(b"{nope", {}, "text")
    with pytest.raises(EmptyFeed):
        parse_detail(b"", {}, "text")


@pytest.mark.parametrize(
    ("text", "inner"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('cb({"a": 1})', '{"a": 1}'),
        ('jQuery123_456( {"a": 1} );', '{"a": 1}'),
        ('/**/ typeof cb === "function" && cb({"a": 1});', '{"a": 1}'),
        ('var x = {"a": 1};', '{"a": 1}'),
        ("window.data = [1, 2]", "[1, 2]"),
        ("[1]", "[1]"),
    ],
)
def test_unwrap_jsonp(text: str, inner: str) -> None:
    assert unwrap_jsonp(text) == inner


def test_get_path() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": None}]}, "0": "zero"}
    assert get_path(doc, "a.b.0.c") == 1
    assert get_path(doc, "a.b[1].c") is None  # a JSON null is a value
    assert get_path(doc, "a.b.-1.c") is None
    assert get_path(doc, "a.b.5.c") is MISSING
    assert get_path(doc, "a.x") is MISSING
    assert get_path(doc, "0") == "zero"
    assert get_path(doc, "") is doc
