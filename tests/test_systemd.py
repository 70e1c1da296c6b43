"""systemd/aggregator.service: verifies clean and scores <= 2.0 in systemd-analyze security.

systemd-analyze comes with the Debian package systemd; CI installs it, so
there (``CI`` set) its absence is a failure, elsewhere a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "aggregator.service"
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (apt-get install systemd)", pytrace=False)
        pytest.skip("systemd-analyze is not installed")
    return found


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this interpreter: verify checks the binary exists."""
    text = UNIT.read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=/usr/local/bin/aggregator run$", text, re.M)
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable} -m aggregator", text, flags=re.M)
    copy = tmp_path / "aggregator.service"
    copy.write_text(text, encoding="utf-8")
    return copy


def run(analyze: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([analyze, *args], capture_output=True, text=True, timeout=120)


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_verifies_clean(analyze: str, unit: Path) -> None:
    out = run(analyze, "verify", "--man=no", "--recursive-errors=no", str(unit))
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), (
        out.stdout + out.stderr
    )


def test_verify_catches_a_typo(analyze: str, unit: Path) -> None:
    """The check above is worth something: a misspelt key is reported."""
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSystm="))
    out = run(analyze, "verify", "--man=no", "--recursive-errors=no", str(unit))
    assert "ProtectSystm" in out.stdout + out.stderr


def test_security_exposure_is_low(analyze: str, unit: Path) -> None:
    out = run(analyze, "security", "--offline=true", "--no-pager", str(unit))
    text = out.stdout + out.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    assert match, text
    assert float(match.group(1)) <= MAX_EXPOSURE, text


def test_unit_has_what_the_daemon_relies_on() -> None:
    text = UNIT.read_text(encoding="utf-8")
    d = directives(text)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"] and d["WatchdogSec"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["ExecStart"][0].startswith("/")
    assert "AGGREGATOR_CONFIG=/etc/aggregator/aggregator.toml" in d["Environment"]
    for key in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert d[key] == ["aggregator"], key
    assert d["DynamicUser"] == ["yes"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in d["SystemCallFilter"]
    assert "IPAddressDeny" not in d and "PrivateNetwork" not in d  # sources are anywhere


def test_every_directive_has_a_comment() -> None:
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")) and "=" in line:
            key = line.split("=", 1)[0]
            if key in ("Description", "Documentation", "WantedBy"):
                continue
            assert lines[i - 1].startswith("#") or lines[i - 1].split("=", 1)[0] == key, (
                f"line {i + 1} ({key}) has no comment above it"
            )
