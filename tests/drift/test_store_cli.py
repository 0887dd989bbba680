"""Reference sets, drift runs in DuckDB, and the `shiftwatch drift` / `reference` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from monitor.errors import ConfigError, ShiftwatchError
from monitor.persist.references import create_reference, list_references, load_reference, reference_for
from monitor.persist.runs import check_window
from monitor.recordfile import write_jsonl
from monitor.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _records(n: int, start: int, *, shift: float = 0.0, d: int = 8, version: str = "v1",
             seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        emb = rng.normal(size=d) + 1.0
        emb[0] += shift
        out.append({"event_id": f"e{start + i}", "ts": T0 + timedelta(seconds=start + i),
                    "model_name": "m", "model_version": version,
                    "predicted_label": str(rng.integers(2)), "confidence": float(rng.uniform(0.5, 1)),
                    "embedding": emb.tolist(), "n_tokens": int(rng.integers(5, 30)),
                    "label": str(rng.integers(2))})
    return out


@pytest.fixture()
def store() -> Any:
    with Store(":memory:") as s:
        yield s


def test_reference_round_trip_and_newest_per_version(store: Store) -> None:
    store.insert_predictions(_records(100, 0))
    window = store.read_window("m", last_n=100)
    assert create_reference(store, "r1", window, model_name="m", model_version="v1", origin="t") == 100
    assert load_reference(store, "r1").num_rows == 100
    with pytest.raises(ConfigError, match="already exists"):
        create_reference(store, "r1", window, model_name="m", model_version="v1")
    create_reference(store, "r1", window.slice(0, 50), model_name="m", model_version="v1", replace=True)
    assert load_reference(store, "r1").num_rows == 50
    assert reference_for(store, "m", "v1") == "r1"
    assert reference_for(store, "m", "v2") is None
    assert [r["name"] for r in list_references(store)] == ["r1"]
    with pytest.raises(ConfigError, match="no reference set"):
        load_reference(store, "nope")


def test_a_version_without_a_reference_uses_its_nearest_ancestors(store: Store) -> None:
    store.insert_predictions(_records(60, 0))
    create_reference(store, "r1", store.read_window("m", last_n=60), model_name="m", model_version="v1")
    for version, parent in (("v1", None), ("v2", "v1"), ("v3", "v2"), ("x", None)):
        store.fetchall_sql("INSERT INTO model_versions (model_name, version, status, parent_version) "
                           "VALUES ('m', $v, 'candidate', $p)", {"v": version, "p": parent})
    assert reference_for(store, "m", "v3") == "r1"  # v3 -> v2 -> v1
    assert reference_for(store, "m", "x") is None
    create_reference(store, "r2", store.read_window("m", last_n=60), model_name="m", model_version="v2")
    assert reference_for(store, "m", "v3") == "r2"


def test_check_window_saves_run_and_results(store: Store) -> None:
    store.insert_predictions(_records(300, 0))
    create_reference(store, "base", store.read_window("m"), model_name="m", model_version="v1")
    store.insert_predictions(_records(150, 1000, shift=1.5, seed=1))
    run_id, report = check_window(store, model_name="m", last_n=150, signals=["embedding", "confidence"])
    assert report.drifted and report.n_current == 150 and report.n_reference == 300
    runs = store.execute("drift_get_run", {"run_id": run_id})
    assert runs and runs[0][2] == "v1" and runs[0][3] == "base" and runs[0][8] is True
    assert json.loads(runs[0][9])["verdict"]["method"] == "weighted_holm"
    rows = store.fetchall_sql("SELECT signal, status FROM drift_results WHERE run_id = $r ORDER BY 1",
                              {"r": run_id})
    assert rows == [("confidence", "ok"), ("embedding", "ok")]
    with pytest.raises(ConfigError, match="no reference set"):
        check_window(store, model_name="m", model_version="v9", last_n=10)


def _cli(args: list[str]) -> Any:
    from monitor.cli import _register_all, app

    _register_all()
    return CliRunner().invoke(app, args)


def test_cli_drift_json_pairs_and_errors(tmp_path: Path) -> None:
    from collectors.schema import records_to_table

    def write(name: str, recs: list[dict[str, Any]]) -> str:
        table, _ = records_to_table(recs)
        write_jsonl(tmp_path / name, table)
        return str(tmp_path / name)

    ref = write("ref.jsonl", _records(200, 0))
    same = write("same.jsonl", _records(100, 1000, seed=2))
    moved = write("moved.jsonl", _records(100, 2000, shift=1.5, seed=3))
    wide = write("wide.jsonl", _records(50, 3000, d=9, seed=4))
    res = _cli(["drift", "--reference", ref, "--current", same, "--current", moved, "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.strip().splitlines()]
    assert [x["drifted"] for x in lines] == [False, True]
    assert {"n_reference", "n_current", "drifted", "signals"} <= set(lines[0])
    res = _cli(["drift", "--reference", ref, "--reference", moved, "--current", same, "--current", moved,
                "--json", "--signals", "embedding"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 2
    assert [s["signal"] for s in json.loads(res.output.splitlines()[1])["signals"]] == ["embedding"]
    res = _cli(["drift", "--reference", ref, "--current", moved, "--signals", "embedding,confidence"])
    assert res.exit_code == 0 and "DRIFT" in res.output
    cases = [(["--reference", ref, "--current", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
             (["--reference", ref, "--current", wide], "dimension mismatch"),
             (["--reference", ref, "--reference", ref, "--current", same, "--current", moved,
               "--current", same], "one per current")]
    for args, message in cases:
        res = _cli(["drift", *args, "--json"])
        assert isinstance(res.exception, ShiftwatchError), res.output  # main() makes it exit 2
        assert message in str(res.exception)
        assert res.output == ""  # nothing half-printed


def test_cli_db_mode_and_reference_commands(tmp_path: Path) -> None:
    from collectors.schema import records_to_table

    db = str(tmp_path / "s.duckdb")
    table, _ = records_to_table(_records(200, 0))
    write_jsonl(tmp_path / "ref.jsonl", table)
    with Store(db) as s:
        s.insert_predictions(_records(200, 0))
        s.insert_predictions(_records(100, 1000, shift=1.5, seed=5))
    res = _cli(["reference", "create", "--name", "r1", "--from", str(tmp_path / "ref.jsonl"), "--db", db])
    assert res.exit_code == 0 and "200 rows" in res.output, res.output
    res = _cli(["reference", "create", "--name", "w1", "--db", db, "--model", "m", "--last", "50"])
    assert res.exit_code == 0, res.output
    res = _cli(["reference", "list", "--db", db, "--json"])
    assert {json.loads(x)["name"] for x in res.output.splitlines()} == {"r1", "w1"}
    res = _cli(["drift", "--db", db, "--model", "m", "--reference-name", "r1", "--last", "100", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["drifted"] and out["run_id"]


def test_main_exits_2_with_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from monitor.cli import main

    monkeypatch.setattr(sys, "argv", ["shiftwatch", "drift", "--reference", str(tmp_path / "r.jsonl"),
                                      "--current", str(tmp_path / "c.jsonl")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "r.jsonl" in err and "file not found" in err
