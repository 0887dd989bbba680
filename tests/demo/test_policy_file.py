"""The demo's policy file: the shipped rules, pointed at the local receiver."""

from __future__ import annotations

from pathlib import Path

import yaml

from monitor.actions import load_policy
from monitor.demo.story import write_demo_policy


def test_demo_policy_keeps_the_shipped_rules(tmp_path: Path) -> None:
    shipped = load_policy(None)
    path = write_demo_policy(tmp_path, "http://127.0.0.1:9/hook", window_size=100)
    demo = load_policy(path)
    assert [r.name for r in demo.rules] == [r.name for r in shipped.rules]
    for mine, theirs in zip(demo.rules, shipped.rules, strict=True):
        assert mine.when == theirs.when
        assert (mine.for_, mine.cooldown, mine.severity, mine.actions) == (
            theirs.for_, theirs.cooldown, theirs.severity, theirs.actions)
        assert mine.min_samples == min(theirs.min_samples, 100)
    assert demo.actions["notify"]["url"] == "http://127.0.0.1:9/hook"
    assert demo.actions["retrain"]["config"]["reference_rows"] == 200
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Written by `shiftwatch demo`")
    assert "min_samples capped" in text


def test_no_capping_when_windows_are_large_enough(tmp_path: Path) -> None:
    path = write_demo_policy(tmp_path, "http://127.0.0.1:9/hook", window_size=10_000)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    shipped = load_policy(None)
    assert [r["min_samples"] for r in doc["rules"]] == [r.min_samples for r in shipped.rules]
    assert "min_samples capped" not in path.read_text(encoding="utf-8")
