"""``shiftwatch ingest`` / ``export`` / ``--version`` / ``--help``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor import __version__
from monitor.cli import _register_all, app
from monitor.store import Store
from tests.monitor.records import record

SHIFTWATCH = Path(sys.executable).parent / "shiftwatch"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_all()
    return CliRunner()


def _jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_ingest_jsonl_then_export(runner: CliRunner, tmp_path: Path) -> None:
    f = _jsonl(tmp_path / "r.jsonl", [record(i) for i in range(5)])
    db = tmp_path / "x.duckdb"
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "ingested 5 records" in res.output and "0 duplicates" in res.output
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])
    assert "ingested 0 records" in res.output and "5 duplicates" in res.output
    res = runner.invoke(app, ["export", "--db", str(db), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0 and "exported 5 records" in res.output
    assert list((tmp_path / "out").rglob("*.parquet"))


def test_ingest_skip_bad_lists_rows(runner: CliRunner, tmp_path: Path) -> None:
    recs = [record(i) for i in range(3)]
    recs[1]["confidence"] = None
    f = _jsonl(tmp_path / "r.jsonl", recs)
    res = runner.invoke(app, ["ingest", str(f), "--db", str(tmp_path / "x.duckdb"), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "ingested 2 records" in res.output and "row 2: field confidence" in res.output


def test_bad_input_exits_2_with_one_line_naming_file_row_field(tmp_path: Path) -> None:
    recs = [record(i) for i in range(3)]
    recs[2]["confidence"] = float("nan")
    f = tmp_path / "bad.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")  # NaN is valid json.dumps
    db = tmp_path / "x.duckdb"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(SHIFTWATCH), "ingest", str(f), "--db", str(db)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(f) in lines[0] and "row 3" in lines[0] and "field confidence" in lines[0]
    with Store(db) as store:
        assert store.count_predictions() == 0


def test_version_and_help(runner: CliRunner) -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"shiftwatch {__version__}"
    for cmd in (["--help"], ["ingest", "--help"], ["export", "--help"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 0 and "Usage" in res.output
    assert "--skip-bad" in runner.invoke(app, ["ingest", "--help"]).output
