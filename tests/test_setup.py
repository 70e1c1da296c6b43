"""The README's set-up on the machine's own Python (Debian's /usr/bin/python3, PEP 668).

``scripts/run`` makes its virtual environment with the system python3 and
installs the package into it (a regular install: the wheel, its package data
and its declared dependencies, nothing from the test venv), then runs the
command. Skipped where there is no system Python able to make a venv.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _system_python_version() -> str | None:
    if not SYSTEM_PYTHON.exists():
        return None
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import ensurepip, platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


SYSTEM_VERSION = _system_python_version()
needs_system_python = pytest.mark.skipif(
    SYSTEM_VERSION is None, reason="no /usr/bin/python3 with venv support here"
)


def _marker() -> Path | None:
    """The PEP 668 marker of the system Python, where it has one."""
    stdlib = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    marker = Path(stdlib) / "EXTERNALLY-MANAGED"
    return marker if marker.exists() else None


@needs_system_python
def test_the_system_python_refuses_pip_install_outside_a_venv() -> None:
    """Why the README never says `python3 -m pip install .` (PEP 668)."""
    if _marker() is None:
        pytest.skip("this system Python is not marked externally managed")
    refused = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "--no-deps", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stdout + refused.stderr


@pytest.mark.setup
@needs_system_python
def test_scripts_run_installs_into_a_venv_of_the_system_python(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AGGREGATOR_", "VIRTUAL_ENV"))},
        "AGGREGATOR_VENV": str(venv),
        "PYTHON": str(SYSTEM_PYTHON),
        "PATH": "/usr/bin:/bin",  # only the system's python3, not the test venv's
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / "run"), *args],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,  # the script finds the checkout itself
            env=env,
        )

    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert f"Python {SYSTEM_VERSION} " in version.stdout
    assert (venv / "bin" / "python").resolve().parent == SYSTEM_PYTHON.resolve().parent
    # a regular install: the package and its migrations live in the venv, not the checkout
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import aggregator; print(aggregator.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        ).stdout.strip()
    ).parent
    assert venv in site.parents
    assert list((site / "store" / "migrations" / "versions").glob("0001_*.py"))

    def installed(*args: str) -> subprocess.CompletedProcess[str]:
        """The installed command itself (scripts/run would install the package again)."""
        return subprocess.run(
            [str(venv / "bin" / "aggregator"), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )

    checked = installed("check-config", "-c", str(ROOT / "config" / "aggregator.toml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"aggregator\.toml: ok \(\d+ sources", checked.stdout)

    # the installed migrations make a database; build writes the feeds from it
    config = tmp_path / "aggregator.toml"
    config.write_text(
        '[aggregator]\ndatabase = "sqlite:///var/db.sqlite"\n'
        '[categories.news]\ntitle = "News"\n'
        '[[sources]]\nid = "one"\nurl = "http://127.0.0.1:9/feed.xml"\ncategories = ["news"]\n',
        encoding="utf-8",
    )
    built = installed("build", "-c", str(config))
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "public" / "news.atom").exists()
    assert "Traceback" not in built.stderr


def test_readme_setup_is_two_commands_in_a_venv() -> None:
    """The README's two set-up commands are scripts/test (what CI runs) and scripts/run."""
    readme = (ROOT / "README.md").read_text("utf-8")
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    ")]
    assert commands[:2] == ["./scripts/test", "./scripts/run"], commands
    first_pip = next(line for line in readme.splitlines() if "pip install" in line)
    assert "venv" in first_pip, first_pip
    # the example config the first command runs on is in the repository (a fresh clone has it)
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "config/aggregator.toml"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert tracked.returncode == 0 or not (ROOT / ".git").exists()
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert './scripts/test "$@"' in ci
