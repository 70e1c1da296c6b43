"""pyproject.toml says what the package imports, and the private names it leans on are checked."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aggregator"
#: declared but never imported by name, and why
INDIRECT = {
    "psycopg": "SQLAlchemy's postgresql+psycopg dialect loads it",
    "tzdata": "zoneinfo's data where the system has none (Asia/Shanghai by default)",
    "uvloop": "uvicorn's loop='auto' takes it",
    "httptools": "uvicorn's http='auto' takes it",
    "lxml-html-clean": "trafilatura's justext imports lxml.html.clean, which lxml 5.2+ left out",
}

#: imported by name, and installed (at the one version that fits) by a declared dependency
PROVIDED = {"pydantic_core": "pydantic"}


def _declared() -> dict[str, str]:
    """Normalized distribution name -> its requirement string."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    declared = {}
    for req in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", req)
        assert name, req
        declared[_norm(name[0])] = req
    return declared


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported() -> set[str]:
    """Top-level names of every module the package imports (not its own, not the stdlib)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "aggregator" and n not in sys.stdlib_module_names}


def test_every_import_is_declared() -> None:
    declared = _declared()
    dists = packages_distributions()
    missing = {
        module: dists.get(module)
        for module in _imported()
        if PROVIDED.get(module) not in declared
        and not any(_norm(d) in declared for d in dists.get(module, [module]))
    }
    assert not missing, f"imported but not in pyproject.toml dependencies: {missing}"


def test_every_declared_dependency_is_used() -> None:
    dists = packages_distributions()
    imported = {_norm(d) for m in _imported() for d in dists.get(m, [m])}
    unused = set(_declared()) - imported - set(INDIRECT)
    assert not unused, f"declared but never imported: {unused}"
    assert not any("[standard]" in req for req in _declared().values())


def test_dependency_floors_cover_what_the_code_uses() -> None:
    declared = _declared()
    assert declared["nh3"] == "nh3>=0.3"  # nh3.Cleaner is new in 0.3
    assert declared["feedparser"].endswith("<6.1")  # fastfeed replays 6.0's private tables
    assert "urllib3" in declared and "tzdata" in declared


def test_package_data_exists() -> None:
    """Every package-data glob matches a file; the migrations are among them."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["aggregator"]
    for pattern in globs:
        assert list(PACKAGE.glob(pattern)), f"package-data {pattern!r} matches nothing"
    assert "store/migrations/versions/*.py" in globs


FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<link>http://example.org/</link><description>d</description>"
    b"<item><title>one</title><link>http://example.org/1</link><guid>g1</guid>"
    b"<pubDate>Wed, 25 May 2022 16:53:43 +0800</pubDate></item></channel></rss>"
)

PARSE = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
{prelude}
from zoneinfo import ZoneInfo
from aggregator.model import Fetched
from aggregator.parse import feed
doc = feed.parse_document(sys.stdin.buffer.read(), "application/rss+xml",
                          "http://example.org/feed", None, ZoneInfo("UTC"), None, 10)
print(feed.read_fast is not None, [(i.title, i.link, i.published.isoformat()) for i in doc.items])
"""


def _parse_in_child(prelude: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PARSE.format(prelude=prelude)],
        input=FEED.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_feedparser_without_its_private_tables_falls_back_to_parse() -> None:
    """A feedparser whose private names moved: the public parse() reads the feed, and says so."""
    normal = _parse_in_child("")
    assert normal.returncode == 0, normal.stderr
    assert normal.stdout.startswith("True ")
    assert "fast feed path off" not in normal.stderr
    moved = _parse_in_child("import feedparser.urls; del feedparser.urls._urljoin")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("False ")
    assert "WARNING aggregator.parse: fast feed path off" in moved.stderr
    # the same records either way
    assert moved.stdout.split(" ", 1)[1] == normal.stdout.split(" ", 1)[1]
    assert "2022-05-25T16:53:43+08:00" in moved.stdout


SERVE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
{prelude}
from aggregator.serve.server import uvicorn_config
http = uvicorn_config(object(), request_timeout=5.0).http
print(http if isinstance(http, str) else http.__name__)
"""


def _serve_config_in_child(prelude: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SERVE.format(prelude=prelude)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_uvicorn_without_the_guarded_internal_still_serves_and_says_so() -> None:
    """serve/guard.py extends a uvicorn internal: where it moved, uvicorn's own protocol serves."""
    normal = _serve_config_in_child("")
    assert normal.returncode == 0, normal.stderr
    assert normal.stdout.strip() == "GuardedProtocol"
    assert "connection guard" not in normal.stderr
    moved = _serve_config_in_child(
        "sys.modules['uvicorn.protocols.http.httptools_impl'] = None  # import fails"
    )
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == "httptools"
    assert "WARNING aggregator.serve: serve: this uvicorn lacks" in moved.stderr
