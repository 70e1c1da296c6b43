"""``[dedupe]`` and the per-category and per-source ``similar`` keys."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.update import similar_rule

BASE = """
[categories.news]
title = "News"

[categories.wire]
title = "Wire"
similar = true

[[sources]]
id = "plain"
url = "http://127.0.0.1:9/a.xml"
categories = ["news"]

[[sources]]
id = "wired"
url = "http://127.0.0.1:9/b.xml"
categories = ["wire"]

[[sources]]
id = "own"
url = "http://127.0.0.1:9/c.xml"
categories = ["wire"]
similar = false
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)
    assert (config.dedupe.similar, config.dedupe.window) == (False, timedelta(hours=48))
    by_id = {s.id: config.similar(s) for s in config.sources}
    assert by_id == {"plain": False, "wired": True, "own": False}
    wired = config.source("wired")
    assert wired is not None and similar_rule(config, wired) is not None
    plain = config.source("plain")
    assert plain is not None and similar_rule(config, plain) is None

    config = load(
        tmp_path,
        '[dedupe]\nsimilar = true\nwindow = "6h"\nthreshold = 0.7\n'
        'tracking_params = ["campaign"]\n' + BASE,
    )
    assert {s.id: config.similar(s) for s in config.sources} == {
        "plain": True,
        "wired": True,
        "own": False,
    }
    rule = similar_rule(config, config.sources[0])
    assert rule is not None and (rule.window, rule.threshold) == (timedelta(hours=6), 0.7)
    assert config.dedupe.tracking_params == ("campaign",)


@pytest.mark.parametrize(
    ("section", "word"),
    [
        ('[dedupe]\nsimilar = "maybe"\n', "similar"),
        ('[dedupe]\nwindow = "two days"\n', "window"),
        ("[dedupe]\nthreshold = 0\n", "threshold"),
        ("[dedupe]\nsimlar = true\n", "simlar"),
    ],
)
def test_bad_dedupe_keys_are_config_errors(tmp_path: Path, section: str, word: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, section + BASE)
    assert any(word in str(p) for p in info.value.problems)
