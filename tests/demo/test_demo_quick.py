"""``shiftwatch demo --quick`` end to end, judged from the DuckDB it leaves behind and from its story.

Runs the real CLI in a subprocess (real MiniLM, real collector path, scheduler, policy, retrain,
reports) and then reads ``OUT/shiftwatch.duckdb`` through the demo's named queries. The story
tests read its printed output: an honest promotion with the paired test's evidence, the
deliberately bad promotion, the automatic rollback and the webhook message; and a second run
with the same seed must print the same decision lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.store import Store

MODEL = "support-sentiment"
# the module fixture runs the demo inside the first test: allow for a loaded CI machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run_demo(out: Path) -> str:
    """Run ``shiftwatch demo --quick --seed 0`` into ``out``; return what it printed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", "from monitor.cli import main; main()", "demo", "--quick", "--out", str(out),
         "--seed", "0"],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    tail = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{tail}"
    return proc.stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    return out, _run_demo(out)


@pytest.fixture(scope="module")
def demo_out(demo_run: tuple[Path, str]) -> Path:
    return demo_run[0]


_DECISION = re.compile(r"policy: rule|retrain v\d|^\s+- |active version changed|bad promotion|"
                       r"automatic rollback|drift check \(")
_IDS = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{8}T\d{6}")


def decision_lines(text: str) -> list[str]:
    """The story's decision lines (drift verdicts, rules, retrain decisions with their evidence,
    promotions, rollbacks), with run and alert ids and reference-set time stamps blanked: they
    are random or wall-clock by design."""
    return [_IDS.sub("<id>", line.rstrip()) for line in text.splitlines() if _DECISION.search(line)]


def _rows(out: Path, name: str) -> list[dict[str, Any]]:
    store = Store(out / "shiftwatch.duckdb", read_only=True)
    try:
        return store.fetch_dicts(name, {"model_name": MODEL})
    finally:
        store.close()


def test_in_domain_windows_do_not_drift_and_shifted_ones_do(demo_out: Path) -> None:
    runs = _rows(demo_out, "demo_run_sources")
    v1 = [r for r in runs if r["model_version"] == "v1"]
    home = [r for r in v1 if set(r["sources"].split(",")) <= {"w01-amazon", "w02-amazon"}]
    shifted = [r for r in v1 if not any(s.endswith("-amazon") for s in r["sources"].split(","))]
    assert len(home) == 2, runs
    assert not any(r["drifted"] for r in home), home
    assert len(shifted) >= 2, runs
    assert all(r["drifted"] for r in shifted), shifted
    # every window was checked once: as many runs as windows of 100 rows
    assert all(r["n_rows"] == 100 for r in runs), runs


def test_the_policy_alerted_and_notified(demo_out: Path) -> None:
    alerts = _rows(demo_out, "demo_alerts")
    assert alerts, "no alert was raised"
    actions = _rows(demo_out, "demo_actions")
    notify = [a for a in actions if a["kind"] == "notify"]
    assert notify and all(a["status"] == "ok" for a in notify), notify


def test_a_retrain_ran_and_was_decided(demo_out: Path) -> None:
    actions = [a for a in _rows(demo_out, "demo_actions") if a["kind"] == "retrain"]
    assert actions, "no retrain action"
    retrains = _rows(demo_out, "demo_retrain_runs")
    decided = [r for r in retrains if r["status"] in ("promoted", "rejected", "undecided")]
    assert decided, retrains
    assert decided[0]["candidate_version"] and decided[0]["reasons"]
    # the paired test's evidence is on record with the decision
    metrics = decided[0]["metrics"] if isinstance(decided[0]["metrics"], dict) else json.loads(
        decided[0]["metrics"])
    evidence = metrics["promotion"]
    assert evidence["outcome"] == {"promoted": "promote", "rejected": "reject",
                                   "undecided": "undecided"}[decided[0]["status"]]
    assert evidence["production"]["n"] > 0 and 0.0 <= evidence["production"]["p_better"] <= 1.0
    versions = {v["version"]: v["status"] for v in _rows(demo_out, "demo_versions")}
    # the candidate's status follows its last decision (an undecided one is decided again in shadow)
    cand = decided[0]["candidate_version"]
    last = [r for r in decided if r["candidate_version"] == cand][-1]["status"]
    expected = {"promoted": "active", "rejected": "rejected", "undecided": "candidate"}[last]
    assert versions[cand] in (expected, "retired", "rejected"), versions
    if last == "promoted":
        # the new version got its own reference and later windows were checked against it
        refs = _rows(demo_out, "demo_reference_sets")
        assert any(r["model_version"] == cand for r in refs)
        runs = _rows(demo_out, "demo_run_sources")
        assert any(r["model_version"] == cand for r in runs)


def test_reports_were_written(demo_out: Path) -> None:
    index = demo_out / "reports" / "index.html"
    assert index.is_file() and index.stat().st_size > 0
    runs = _rows(demo_out, "demo_windows")
    assert runs and all(r["report_path"] for r in runs), runs
    assert all(Path(r["report_path"]).is_file() for r in runs)


def test_the_story_shows_an_honest_promotion_a_bad_one_and_the_automatic_rollback(
        demo_run: tuple[Path, str]) -> None:
    out, text = demo_run
    flat = " ".join(text.split())
    # an honest promotion decided by the paired tests, with their evidence, at the shipped margin
    promoted = [r for r in _rows(out, "demo_retrain_runs") if r["status"] == "promoted"]
    assert promoted, _rows(out, "demo_retrain_runs")
    assert re.search(r"retrain v1 → candidate v2: promoted", flat), flat[-6000:]
    assert "one-sided exact McNemar p(better)=" in flat and "only candidate right" in flat
    assert "non-inferiority (margin 0.02)" in flat
    assert re.search(r"90% CI \[[+-]\d", flat)
    # the deliberately bad promotion, forced, and the rollback the scheduler did by itself
    assert "bad promotion: v2 -> v3 forced" in flat
    assert "automatic rollback v3 -> v2" in flat and "rollback-after-promotion" in flat
    assert "ACTIVE pointer now v2" in flat
    events = _rows(out, "demo_registry_events")
    rollbacks = [e for e in events if e["kind"] == "rollback"]
    # exactly one rollback, the bad promotion's: the shipped rule pairs the promoted version with
    # its parent on the same labelled rows, so the SST-2 window, hard for both, rolls nothing back
    assert [(e["from_version"], e["to_version"]) for e in rollbacks] == [("v3", "v2")], events
    assert "rollback-after-promotion" in rollbacks[0]["reason"]
    versions = {v["version"]: v["status"] for v in _rows(out, "demo_versions")}
    assert versions["v2"] == "active" and versions["v3"] != "active", versions
    assert "automatic rollback v2" not in flat
    # the webhook receiver printed the rollback notification
    assert re.search(r"webhook received \S+: json \(event\): kind=rollback, .*summary=shiftwatch: " + MODEL
                     + r" rollback v3 -> v2", flat), flat[-6000:]


def test_the_same_seed_prints_the_same_decisions(demo_run: tuple[Path, str],
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    first = decision_lines(demo_run[1])
    second = decision_lines(_run_demo(tmp_path_factory.mktemp("demo-again")))
    assert first and any("automatic rollback" in line for line in first)
    assert second == first
