"""Done-when test of issue 12 (part A): a real ``shiftwatch serve`` subprocess holds the DuckDB file, and
every CLI command of the README succeeds against it through the HTTP client; a retrain runs in the
sidecar's background while the drift checks keep their interval (read from ``job_runs``)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.discovery import read_discovery
from monitor.errors import StoreError
from monitor.store import Store
from tests.retrain.helpers import sentences
from tests.server.helpers import (
    TOKEN,
    free_port,
    sidecar_cmd,
    sidecar_env,
    stop_process,
    wait_healthy,
    write_world,
)

INTERVAL_S = 1.0


def _files(tmp: Path) -> dict[str, Path]:
    files = write_world(tmp, n_train=300, n_prod=400)
    prod = sentences(400, seed=2, domain="food")  # the texts and labels of the records
    window = tmp / "window.jsonl"
    window.write_text("\n".join(files["records"].read_text(encoding="utf-8").splitlines()[:200]),
                      encoding="utf-8")
    labels = tmp / "labels.csv"  # a filled-in review file: event_id,label
    labels.write_text("event_id,label\n" + "".join(f"e-{i:08d},{prod.labels[i]}\n" for i in range(400)),
                      encoding="utf-8")
    return {**files, "window": window, "labels": labels}


def _serve(db: Path, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = sidecar_env(tmp)
    # the records are dated 2026-01-01: a long retention keeps the retention job off them
    env.update(SHIFTWATCH_SPOOL_DIR=str(tmp / "spool"), SHIFTWATCH_DRIFT_INTERVAL_S=str(INTERVAL_S),
               SHIFTWATCH_RETENTION_DAYS="36500")
    return subprocess.Popen(sidecar_cmd(db, port, tmp, scheduler=True), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_every_readme_command_works_against_a_running_sidecar_and_retrain_runs_in_its_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import _register_all, app

    _register_all()
    files = _files(tmp_path)
    db = tmp_path / "sw.duckdb"
    monkeypatch.setenv("SHIFTWATCH_TOKEN", TOKEN)
    monkeypatch.delenv("SHIFTWATCH_URL", raising=False)
    port = free_port()
    proc = _serve(db, tmp_path, port)
    runner = CliRunner()

    def sw(*args: str) -> str:
        res = runner.invoke(app, [*args])
        assert res.exit_code == 0, f"shiftwatch {' '.join(args)}: {res.output} {res.exception!r}"
        return res.output

    D = ["--db", str(db)]
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        assert read_discovery(db)["url"] == f"http://127.0.0.1:{port}"  # type: ignore[index]
        with pytest.raises(StoreError, match="lock"):  # the sidecar holds the file
            Store(db).close()

        assert "registered m v1 (active)" in sw("models", "register", str(files["model"]), "--model", "m",
                                                "--train-file", str(files["train"]), "--labels", "neg,pos",
                                                "--max-length", "32", "--activate", *D)
        assert "ingested 400 records" in sw("ingest", str(files["records"]), *D)
        assert "exported 400 records" in sw("export", "--out", str(tmp_path / "lake"), *D)
        assert "reference set 'base': 300 rows" in sw("reference", "create", "--name", "base", "--model", "m",
                                                       "--last", "300", *D)
        assert "reference set 'file': 200 rows" in sw("reference", "create", "--name", "file", "--from",
                                                       str(files["window"]), *D)
        assert {json.loads(x)["name"] for x in sw("reference", "list", "--json", *D).splitlines()} == {
            "base", "file"}
        drift = json.loads(sw("drift", *D, "--model", "m", "--reference-name", "base", "--last", "100",
                              "--signals", "confidence,class_distribution", "--json"))
        assert drift["run_id"] and {s["signal"] for s in drift["signals"]} == {"confidence",
                                                                               "class_distribution"}
        sw("drift", "--reference", str(files["window"]), "--current", str(files["window"]), "--json")
        assert "index:" in sw("report", *D, "--out", str(tmp_path / "html"))
        assert "exported" in sw("review", "export", str(tmp_path / "queue.csv"), *D)
        assert "imported 400 label(s)" in sw("review", "import", str(files["labels"]), *D)
        summary = json.loads(sw("check", *D, "--no-reports", "--json"))
        assert any(j["job"] == "drift_check:m" for j in summary["jobs"])
        assert "ok:" in sw("policy", "validate", str(Path("monitor/policies/default.yaml")))
        assert "shiftwatch" in sw("--version")
        assert "no candidates waiting" in sw("models", "shadow", *D)

        dry = json.loads(sw("retrain", "--model", "m", "--dry-run", "--max-steps", "40", "--min-labelled",
                            "100", "--json", *D))
        assert dry["decision"] == "dry_run" and dry["metrics"]["plan"]["total_steps"] == 40
        assert "estimated training time" in dry["reasons"][1]

        started = json.loads(sw("retrain", "--model", "m", "--max-steps", "30", "--min-labelled", "100",
                                "--alpha", "0.25", "--max-forgetting", "0.5", "--json", *D))
        run_id = started["run_id"]
        busy = runner.invoke(app, ["retrain", "--model", "m", "--max-steps", "6", *D])
        assert busy.exit_code != 0 and "already running" in str(busy.exception), (
            busy.output, sw("retrain", "status", run_id, "--json", *D))
        seen: list[dict[str, Any]] = []
        while True:
            status = json.loads(sw("retrain", "status", run_id, "--json", *D))
            seen.append(status)
            if status["state"] not in ("queued", "running", "cancelling"):
                break
            time.sleep(0.5)
        # the paired test decides (a tiny model may leave it undecided); the loop's commands go on
        assert status["state"] in ("promoted", "rejected", "undecided"), status
        assert (status["step"], status["total_steps"]) == (30, 30)
        if status["state"] != "promoted":
            assert "-> v2 (active)" in sw("promote", "v2", "--model", "m", *D)
        assert all(s["run_id"] == run_id and "elapsed_s" in s and "eta_s" in s for s in seen)
        assert run_id[:12] in sw("retrain", "status", *D)
        metrics = _get(port, "/metrics")
        assert f'shiftwatch_retrain_progress{{model="m",run_id="{run_id}"}} 1.0' in metrics

        shown = json.loads(sw("models", "show", "active", "--model", "m", *D))
        assert shown["version"] == "v2" and shown["parent_version"] == "v1"
        assert "v2 -> v1" in sw("rollback", "--model", "m", "--reason", "test", *D)
        assert "v1 -> v2" in sw("promote", "v2", "--model", "m", *D)
        versions = json.loads(sw("models", "list", "--json", *D))
        assert [v["version"] for v in versions] == ["v1", "v2"] and versions[1]["status"] == "active"

        second = json.loads(sw("retrain", "--model", "m", "--max-steps", "400", "--min-labelled", "100",
                               "--json", *D))["run_id"]
        assert "stops before its next training step" in sw("retrain", "cancel", second, *D)
        while json.loads(sw("retrain", "status", second, "--json", *D))["state"] in ("running", "cancelling"):
            time.sleep(0.5)
        assert json.loads(sw("retrain", "status", second, "--json", *D))["state"] == "cancelled"
    finally:
        stop_process(proc, timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful shutdown
    assert read_discovery(db) is None  # removed on a clean shutdown

    with Store(db) as store:
        run = store.fetch_dicts("retrain_jobs_run", {"run_id": run_id})[0]
        checks = [r for r in store.fetchall_sql(
            "SELECT started_at FROM job_runs WHERE job = 'drift_check:m' ORDER BY started_at")]
    during = [r[0] for r in checks if run["started_at"] <= r[0] <= run["finished_at"]]
    duration = (run["finished_at"] - run["started_at"]).total_seconds()
    # the drift job ran all through the retrain, on its interval (a generous allowance for a loaded box)
    assert len(during) >= max(2, int(duration / INTERVAL_S / 3)), (duration, len(during))
    edges: list[datetime] = [run["started_at"], *during, run["finished_at"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(edges)]
    assert max(gaps) <= INTERVAL_S + 5.0, gaps


def _get(port: int, path: str) -> str:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"},
                     timeout=10).text
