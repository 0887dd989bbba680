"""``shiftwatch demo --quick`` end to end, judged from the DuckDB it leaves behind (not its output).

Runs the real CLI in a subprocess (real MiniLM, real collector path, scheduler, policy, retrain,
reports) and then reads ``OUT/shiftwatch.duckdb`` through the demo's named queries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.store import Store

MODEL = "support-sentiment"
# the module fixture runs the demo inside the first test: allow for a loaded CI machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-c", "from monitor.cli import main; main()", "demo", "--quick", "--out", str(out),
         "--seed", "0"],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    tail = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{tail}"
    return out


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
    expected = {"promoted": "active", "rejected": "rejected", "undecided": "candidate"}[decided[0]["status"]]
    assert versions[decided[0]["candidate_version"]] in (expected, "retired", "rejected"), versions
    if decided[0]["status"] == "promoted":
        # the new version got its own reference and later windows were checked against it
        refs = _rows(demo_out, "demo_reference_sets")
        assert any(r["model_version"] == decided[0]["candidate_version"] for r in refs)
        runs = _rows(demo_out, "demo_run_sources")
        assert any(r["model_version"] == decided[0]["candidate_version"] for r in runs)


def test_reports_were_written(demo_out: Path) -> None:
    index = demo_out / "reports" / "index.html"
    assert index.is_file() and index.stat().st_size > 0
    runs = _rows(demo_out, "demo_windows")
    assert runs and all(r["report_path"] for r in runs), runs
    assert all(Path(r["report_path"]).is_file() for r in runs)
