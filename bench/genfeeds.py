"""Deterministic benchmark feeds: N feeds x M items, plus matching poller configs.

Feeds alternate RSS 2.0 (``.rss``) and Atom (``.atom``); each item carries a
1-3 KB HTML body mixing Chinese and English, dates in +08:00. About
``--shared`` of the items are stories carried by 2-3 feeds at once, linked by
an infoCode (``...NewsShare.html?infoCode=NW<18 digits>``), so the aggregator
has real merging to do. The same seed always gives the same bytes.

    python3 bench/genfeeds.py --feeds 50 --items 20 --out /tmp/feeds --port 8081

writes the feeds under ``/tmp/feeds/feeds/``, ``manifest.json``, an
``aggregator.toml`` and a newsboat ``urls`` file pointing at
``http://127.0.0.1:8081/``.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, NamedTuple
from xml.sax.saxutils import escape, quoteattr

CST = timezone(timedelta(hours=8))
NOW = datetime(2022, 5, 25, 16, 53, 43, tzinfo=CST)  #: newest item time; fixed for determinism
LINK_HOST = "http://127.0.0.1:8000"  #: item links (never fetched); feeds use the server's port

CATEGORIES = [
    ("caijing", "财经新闻"),
    ("keji", "科技新闻"),
    ("gupiao", "股票新闻"),
    ("jijin", "基金新闻"),
    ("qihuo", "期货新闻"),
    ("waihui", "外汇新闻"),
    ("zhaiquan", "债券新闻"),
    ("hongguan", "宏观经济"),
    ("chanjing", "产经新闻"),
    ("fangchan", "房地产新闻"),
    ("qiche", "汽车新闻"),
    ("nengyuan", "能源新闻"),
    ("yiyao", "医药新闻"),
    ("xiaofei", "消费新闻"),
    ("yinhang", "银行新闻"),
    ("baoxian", "保险新闻"),
    ("guoji", "国际新闻"),
    ("difang", "地方新闻"),
    ("gongsi", "公司新闻"),
    ("pinglun", "评论"),
]

PUBLISHERS = [
    "科技日报",
    "证券时报",
    "中国证券报",
    "上海证券报",
    "经济参考报",
    "第一财经",
    "每日经济新闻",
    "21世纪经济报道",
    "财联社",
    "新华社",
]


def _words(text: str) -> list[str]:
    return text.split()


ZH_WORDS = _words(
    "市场 投资者 上市公司 数据 显示 同比 增长 下降 季度 营业收入 净利润 板块 资金 流入 "
    "央行 货币 政策 稳健 经济 复苏 消费 需求 供应链 企业 创新 科技 研发 芯片 新能源 汽车 "
    "光伏 储能 产业链 龙头 估值 分析师 认为 预计 未来 发展 趋势 监管 部门 发布 通知 "
    "要求 加强 风险 防控 银行 信贷 支持 实体 中小企业 融资 成本 降低 债券 发行 规模 "
    "基金 净值 收益率 指数 上涨 下跌 收盘 成交额 亿元 万元 百分点 机构 调研 业绩 预告"
)
EN_WORDS = _words(
    "market investors shares growth quarter revenue profit fund index bond yield central "
    "bank policy economy recovery demand supply chain battery chip solar storage energy "
    "analysts expect outlook risk regulator notice credit lending rate basis points trading "
    "volume billion yuan percent rally slump close open earnings guidance report survey"
)


@dataclass
class FeedSpec:
    id: str  #: source id, also the file stem
    path: str  #: file name under feeds/
    kind: str  #: "rss" or "atom"
    categories: list[str]
    items: int


@dataclass
class Manifest:
    feeds: int
    items: int
    seed: int
    shared: float
    total_items: int  #: items over all documents
    unique_items: int  #: after merging shared stories by infoCode
    shared_stories: int
    bytes: int
    specs: list[FeedSpec] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        raw = json.loads(path.read_text())
        raw["specs"] = [FeedSpec(**s) for s in raw["specs"]]
        return cls(**raw)


@dataclass
class Story:
    title: str
    body: str
    published: datetime
    author: str
    infocode: str | None
    slug: str


def _zh_sentence(rng: random.Random) -> str:
    words = rng.choices(ZH_WORDS, k=rng.randint(6, 14))
    mid = rng.randint(2, len(words) - 2)
    return "".join(words[:mid]) + "，" + "".join(words[mid:]) + "。"


def _en_sentence(rng: random.Random) -> str:
    words = rng.choices(EN_WORDS, k=rng.randint(8, 16))
    return " ".join(words).capitalize() + ". "


def _paragraph(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(2, 5)):
        parts.append(_zh_sentence(rng) if rng.random() < 0.6 else _en_sentence(rng))
    text = "".join(parts)
    roll = rng.random()
    if roll < 0.15:
        n = rng.randint(1, 999)
        text += f' <a href="{LINK_HOST}/stock/{n:06d}.html" target="_blank">查看详情 more</a>'
    elif roll < 0.25:
        text = f"<strong>{_zh_sentence(rng)}</strong>" + text
    elif roll < 0.30:
        n = rng.randint(1, 99)
        text += f'<span style="color:#c00" onclick="track({n})">（记者 Reporter）</span>'
    return f"<p>{text}</p>"


def _body(rng: random.Random) -> str:
    """HTML of 1-3 KB (UTF-8), with the odd image and script a sanitizer must handle."""
    target = rng.randint(1000, 3000)
    out: list[str] = []
    size = 0
    while size < target:
        p = _paragraph(rng)
        if rng.random() < 0.08:
            p += f'<p><img src="{LINK_HOST}/img/{rng.getrandbits(32):08x}.jpg" width="600"></p>'
        if rng.random() < 0.03:
            p += "<script>var _hmt = _hmt || [];</script>"
        out.append(p)
        size += len(p.encode("utf-8"))
    return "".join(out)


def _title(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return "".join(rng.choices(ZH_WORDS, k=rng.randint(4, 8)))
    return " ".join(rng.choices(EN_WORDS, k=rng.randint(5, 9))).capitalize()


def _story(rng: random.Random, infocode: str | None, slug: str) -> Story:
    published = NOW - timedelta(seconds=rng.randint(0, 30 * 86400))
    return Story(_title(rng), _body(rng), published, rng.choice(PUBLISHERS), infocode, slug)


def _link(story: Story) -> str:
    if story.infocode:
        return f"{LINK_HOST}/html_News/NewsShare.html?infoCode={story.infocode}"
    return f"{LINK_HOST}/a/{story.slug}.html"


def _rss(spec: FeedSpec, stories: list[Story], cats: dict[str, str], rng: random.Random) -> str:
    items = []
    for s in stories:
        link = _link(s)
        body = f"<![CDATA[{s.body}]]>" if rng.random() < 0.5 else escape(s.body)
        cat = "".join(f"<category>{escape(cats[c])}</category>" for c in spec.categories)
        items.append(
            f"<item><title>{escape(s.title)}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(spec.id + ":" + s.slug)}</guid>'
            f"<pubDate>{format_datetime(s.published)}</pubDate>"
            f"<dc:creator>{escape(s.author)}</dc:creator>{cat}"
            f"<description>{body}</description></item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>\n'
        f"<title>基准源 {spec.id} bench feed</title><link>{LINK_HOST}/{spec.id}/</link>"
        f"<description>Benchmark feed {spec.id}</description><language>zh-cn</language>"
        f"<lastBuildDate>{format_datetime(NOW)}</lastBuildDate><ttl>15</ttl>\n"
        + "".join(items)
        + "</channel></rss>\n"
    )


def _atom(spec: FeedSpec, stories: list[Story], cats: dict[str, str]) -> str:
    entries = []
    for s in stories:
        link = _link(s)
        cat = "".join(
            f"<category term={quoteattr(c)} label={quoteattr(cats[c])}/>" for c in spec.categories
        )
        entries.append(
            f"<entry><title>{escape(s.title)}</title>"
            f"<id>tag:bench.invalid,2022:{spec.id}:{s.slug}</id>"
            f'<link rel="alternate" href={quoteattr(link)}/>'
            f"<published>{s.published.isoformat()}</published>"
            f"<updated>{s.published.isoformat()}</updated>"
            f"<author><name>{escape(s.author)}</name></author>{cat}"
            f'<content type="html">{escape(s.body)}</content></entry>\n'
        )
    newest = max((s.published for s in stories), default=NOW)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="zh-CN">\n'
        f"<title>基准源 {spec.id} bench feed</title><id>tag:bench.invalid,2022:{spec.id}</id>"
        f"<updated>{newest.isoformat()}</updated>"
        f'<link rel="alternate" href="{LINK_HOST}/{spec.id}/"/>\n' + "".join(entries) + "</feed>\n"
    )


def _share_groups(
    rng: random.Random, slots: list[tuple[int, int]]
) -> tuple[list[list[tuple[int, int]]], list[tuple[int, int]]]:
    """Group (feed, slot) pairs into stories of 2-3 distinct feeds; leftovers stay single."""
    rng.shuffle(slots)
    groups: list[list[tuple[int, int]]] = []
    singles: list[tuple[int, int]] = []
    while slots:
        want = rng.choice((2, 3))
        group = [slots.pop()]
        feeds = {group[0][0]}
        i = len(slots) - 1
        while len(group) < want and i >= 0 and i >= len(slots) - 50:
            if slots[i][0] not in feeds:
                feeds.add(slots[i][0])
                group.append(slots.pop(i))
            i -= 1
        if len(group) > 1:
            groups.append(group)
        else:
            singles.append(group[0])
    return groups, singles


def generate(out: Path, feeds: int, items: int, seed: int = 1, shared: float = 0.2) -> Manifest:
    """Write ``out/feeds/*`` and ``out/manifest.json``; the same arguments give the same bytes."""
    rng = random.Random(seed)
    feed_dir = out / "feeds"
    feed_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = [c for c, _ in CATEGORIES]
    cat_titles = dict(CATEGORIES)
    specs = []
    for i in range(feeds):
        kind = "rss" if i % 2 == 0 else "atom"
        fid = f"f{i + 1:04d}"
        cats = rng.sample(cat_ids, rng.choice((1, 1, 2)))
        specs.append(FeedSpec(fid, f"{fid}.{kind}", kind, cats, items))

    per_feed_shared = round(items * shared)
    slots = [(f, s) for f in range(feeds) for s in range(per_feed_shared)] if feeds > 1 else []
    groups, singles = _share_groups(rng, slots)
    stories: list[list[Story | None]] = [[None] * items for _ in range(feeds)]
    serial = 0
    for group in groups:
        serial += 1
        code = f"NW2022{rng.randint(0, 10**12 - 1):012d}"
        story = _story(rng, code, f"s{serial:07d}")
        for f, s in group:
            stories[f][s] = story
    for f, row in enumerate(stories):
        for s in range(items):
            if row[s] is None:
                serial += 1
                row[s] = _story(rng, None, f"{specs[f].id}-{serial:07d}")

    total_bytes = 0
    for spec, row in zip(specs, stories, strict=True):
        ordered = sorted(
            (s for s in row if s is not None), key=lambda s: (s.published, s.slug), reverse=True
        )
        text = (
            _rss(spec, ordered, cat_titles, rng)
            if spec.kind == "rss"
            else _atom(spec, ordered, cat_titles)
        )
        data = text.encode("utf-8")
        total_bytes += len(data)
        (feed_dir / spec.path).write_bytes(data)

    shared_items = sum(len(g) for g in groups)
    manifest = Manifest(
        feeds=feeds,
        items=items,
        seed=seed,
        shared=shared,
        total_items=feeds * items,
        unique_items=feeds * items - shared_items + len(groups),
        shared_stories=len(groups),
        bytes=total_bytes,
        specs=specs,
    )
    (out / "manifest.json").write_text(json.dumps(asdict(manifest), indent=1))
    return manifest


def ensure(out: Path, feeds: int, items: int, seed: int = 1, shared: float = 0.2) -> Manifest:
    """Reuse ``out`` when it already holds this exact set, else (re)generate it."""
    path = out / "manifest.json"
    if path.exists():
        m = Manifest.load(path)
        if (m.feeds, m.items, m.seed, m.shared) == (feeds, items, seed, shared) and all(
            (out / "feeds" / s.path).exists() for s in m.specs
        ):
            return m
    return generate(out, feeds, items, seed, shared)


def write_aggregator_config(
    path: Path, manifest: Manifest, base_url: str, *, workers: int = 8, database: str = "agg.db"
) -> None:
    """An aggregator.toml polling every feed; state (db, outputs) beside the file."""
    used = sorted({c for s in manifest.specs for c in s.categories})
    titles = dict(CATEGORIES)
    lines = [
        "# generated by bench/genfeeds.py",
        "[aggregator]",
        f'database = "sqlite:///{database}"',
        'output_dir = "public"',
        'base_url = "http://127.0.0.1:8080/"',
        'timezone = "Asia/Shanghai"',
        "entries_per_feed = 50",
        'default_interval = "15m"',
        "",
        "[limits]",
        f"workers = {workers}",
        # Every bench feed is on one loopback host; the per-host politeness limit
        # would otherwise serialise the whole run, unlike 1,000 real hosts.
        f"per_host_concurrency = {workers}",
        "",
    ]
    for cid in used:
        lines += [f"[categories.{cid}]", f'title = "{titles[cid]}"', ""]
    for spec in manifest.specs:
        cats = ", ".join(f'"{c}"' for c in spec.categories)
        lines += [
            "[[sources]]",
            f'id = "{spec.id}"',
            f'url = "{base_url.rstrip("/")}/{spec.path}"',
            f"categories = [{cats}]",
            'interval = "15m"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def parse_set(set_dir: Path, manifest: Manifest, config: Any) -> list[tuple[Any, Any]]:
    """Every feed of a generated set parsed once, as a poll's fetch would hand it over:
    (source, parsed feed) pairs for the in-process benchmarks (ingest, dedupe, rules)."""
    from datetime import UTC

    from aggregator.model import Fetched
    from aggregator.parse import parse_feed

    parsed = []
    for source, spec in zip(config.sources, manifest.specs, strict=True):
        body = (set_dir / "feeds" / spec.path).read_bytes()
        ctype = "application/rss+xml" if spec.kind == "rss" else "application/atom+xml"
        fetched = Fetched(source.url, 200, body, {"content-type": ctype}, datetime.now(UTC), 0.0)
        parsed.append((source, parse_feed(fetched, tz=config.aggregator.tz)))
    return parsed


class LoadedSet(NamedTuple):
    """A generated set as the in-process benchmarks start from it."""

    config: Any  #: the aggregator config of its sources
    parsed: list[tuple[Any, Any]]  #: parse_set's (source, parsed feed) pairs
    categories: list[Any]  #: the config's categories, for Store.sync_config
    total: int  #: items in all the parsed feeds


def load_set(set_dir: Path, manifest: Manifest, tmp: Path) -> LoadedSet:
    """The set's config written in ``tmp`` and loaded, and every feed parsed once."""
    from aggregator.config import load_config

    cfg_path = tmp / "aggregator.toml"
    write_aggregator_config(cfg_path, manifest, "http://127.0.0.1:9/")
    config = load_config(cfg_path)
    categories = [c for c in (config.category(cid) for cid in config.categories) if c]
    parsed = parse_set(set_dir, manifest, config)
    return LoadedSet(config, parsed, categories, sum(len(feed.items) for _, feed in parsed))


def write_newsboat_urls(path: Path, manifest: Manifest, base_url: str) -> None:
    path.write_text("".join(f"{base_url.rstrip('/')}/{s.path}\n" for s in manifest.specs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shared", type=float, default=0.2, help="fraction of shared items")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--port", type=int, default=8081, help="port the feeds will be served on")
    args = ap.parse_args()
    m = generate(args.out, args.feeds, args.items, args.seed, args.shared)
    base = f"http://127.0.0.1:{args.port}/"
    write_aggregator_config(args.out / "aggregator.toml", m, base)
    write_newsboat_urls(args.out / "urls", m, base)
    print(
        f"{m.feeds} feeds x {m.items} items = {m.total_items} items "
        f"({m.unique_items} unique, {m.shared_stories} shared stories), "
        f"{m.bytes / 1e6:.1f} MB in {args.out / 'feeds'}"
    )


if __name__ == "__main__":
    main()
