"""Fleet drift on a small lake: the drifting replica-hour is flagged, partials are computed
once and recomputed when an hour gains a file, backfill ranges, the CLI contract."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from collectors.sinks import ParquetSink
from monitor.drift.frame import DriftFrame
from monitor.lake.fleet import LakeConfig, fleet_drift
from monitor.lake.layout import list_partials, list_predictions, write_predictions
from tests.lake.conftest import T0, record_table

CONFIG = LakeConfig(n_features=16, sample_k=50)


def _lake(root: Path) -> DriftFrame:
    rng = np.random.default_rng(0)
    for day in range(2):
        for h in range(2):
            start = T0 + timedelta(days=day, hours=h)
            for replica in ("a", "b"):
                drift = replica == "b" and day == 1 and h == 1
                write_predictions(root, record_table(250, rng, start=start,
                                                     shift=1.0 if drift else 0.0),
                                  replica=replica)
    ref = record_table(1500, rng, start=T0 - timedelta(days=7))
    pq.write_table(ref, root.parent / "reference.parquet")
    return DriftFrame.from_arrow(ref)


def test_exactly_the_drifting_replica_hour_is_flagged(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ref = _lake(lake)
    windows = fleet_drift(lake, ref, by="replica", config=CONFIG)
    assert len(windows) == 4 * 3  # 4 hours x (fleet + 2 replicas)
    flagged = {(w.date, w.hour, (w.group or {}).get("replica", "fleet"))
               for w in windows if w.report.signal("embedding").drifted}  # type: ignore[union-attr]
    assert ("2026-12-01", "01", "b") in flagged
    assert not {f for f in flagged if f[:2] != ("2026-12-01", "01")}
    assert ("2026-12-01", "01", "a") not in flagged
    fleet_hour = next(w for w in windows if w.group is None and (w.date, w.hour) ==
                      ("2026-12-01", "01"))
    assert fleet_hour.report.n_current == 500 and fleet_hour.partials == 2
    d = fleet_hour.to_dict()
    assert d["window"]["start"] == "2026-12-01T01:00:00+00:00" and "group" not in d
    assert {s["signal"] for s in d["signals"]} == {"embedding", "class_distribution",
                                                   "confidence", "unknown_input", "tokenizer"}


def test_partials_are_reused_and_recomputed_when_an_hour_gains_a_file(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ref = _lake(lake)
    fleet_drift(lake, ref, config=CONFIG)
    partials = list_partials(lake)
    assert set(partials) == set(list_predictions(lake))
    mtimes = {p: f.stat().st_mtime_ns for p, f in partials.items()}
    sink = ParquetSink(lake, lake_replica="a")
    late = record_table(40, np.random.default_rng(9), start=T0, minutes=5)
    assert sink.send(late.to_pylist()) == 40
    windows = fleet_drift(lake, ref, by="replica", config=CONFIG)
    after = list_partials(lake)
    changed = {p for p, f in after.items() if f.stat().st_mtime_ns != mtimes[p]}
    assert [(p.date, p.hour, p.replica) for p in changed] == [("2026-11-30", "00", "a")]
    first = next(w for w in windows if w.group == {"replica": "a"} and w.hour == "00"
                 and w.date == "2026-11-30")
    assert first.report.n_current == 290


def test_backfill_range_and_engine_choice(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ref = _lake(lake)
    windows = fleet_drift(lake, ref, since=date(2026, 12, 1), until=date(2026, 12, 1),
                          config=CONFIG)
    assert {w.date for w in windows} == {"2026-12-01"} and len(windows) == 2
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown engine"):
        fleet_drift(lake, ref, engine="hadoop", config=CONFIG)


def test_cli_fleet_drift_json_and_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import _register_all, app

    lake = tmp_path / "lake"
    _lake(lake)
    _register_all()
    runner = CliRunner()
    res = runner.invoke(app, ["fleet", "drift", "--lake", str(lake), "--reference",
                              str(tmp_path / "reference.parquet"), "--by", "replica", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert len(rows) == 12
    grouped = [r for r in rows if "group" in r]
    assert {r["group"]["replica"] for r in grouped} == {"a", "b"}
    assert all({"n_reference", "n_current", "drifted", "signals"} <= set(r) for r in rows)
    assert all(set(r["sketches"]["latency_ms"]["quantiles"]["current"]) == {"p50", "p95", "p99"}
               for r in rows)
    out = tmp_path / "page"
    res = runner.invoke(app, ["fleet", "report", "--lake", str(lake), "--reference",
                              str(tmp_path / "reference.parquet"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("<tr>") == 1 + 3 and "windows/" in page
    assert len(list((out / "windows").glob("*.json"))) == 12
    window = next((out / "windows").glob("*.html")).read_text(encoding="utf-8")
    assert "KLL sketches" in window and "<td>latency_ms</td><td>reference</td>" in window


def test_sidecar_export_job_writes_new_records_once(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from monitor.scheduler import Scheduler
    from monitor.settings import load_settings
    from monitor.store import Store

    lake = tmp_path / "lake"
    settings = load_settings(db_path=tmp_path / "db.duckdb", lake_path=str(lake),
                             lake_replica="pod-1", spool_dir=tmp_path / "no-spool")
    clock = [datetime.now(UTC) + timedelta(minutes=5)]
    with Store(settings.db_path) as store:
        store.insert_predictions(record_table(60, np.random.default_rng(1), start=T0))
        sched = Scheduler(settings, store, clock=lambda: clock[0])
        first = sched.export_lake()
        again = sched.export_lake()
    assert first["rows"] == 60 and first["files"] == 1
    assert again["rows"] == 0
    (part, files), = list_predictions(lake).items()
    assert (part.date, part.hour, part.replica) == ("2026-11-30", "00", "pod-1")
    assert pq.read_table(files[0]).num_rows == 60


def _latency_lake(root: Path, slow: float) -> DriftFrame:
    rng = np.random.default_rng(0)
    for h in range(2):
        for replica in ("a", "b"):
            write_predictions(root, record_table(
                400, rng, start=T0 + timedelta(hours=h),
                latency_scale=slow if (replica, h) == ("b", 1) else 1.0), replica=replica)
    return DriftFrame.from_arrow(record_table(1500, rng, start=T0 - timedelta(days=7)))


def test_latency_is_compared_from_sketches_outside_the_verdict(tmp_path: Path) -> None:
    ref = _latency_lake(tmp_path / "same", 1.0)
    same = fleet_drift(tmp_path / "same", ref, by="replica", config=CONFIG)
    _latency_lake(tmp_path / "slow", 1.3)
    slow = fleet_drift(tmp_path / "slow", ref, by="replica", config=CONFIG)
    flagged = set()
    for a, b in zip(same, slow, strict=True):
        da, db = a.to_dict(), b.to_dict()
        # the latency comparison is informational: signals, verdict and diagnosis are unchanged
        assert {k: v for k, v in da.items() if k != "sketches"} == {
            k: v for k, v in db.items() if k != "sketches"}
        lat = db["sketches"]["latency_ms"]
        assert lat["method"] == "ks_sketch" and lat["informational"] is True
        assert set(lat["quantiles"]["current"]) == {"p50", "p95", "p99"}
        assert lat["quantiles"]["current"]["p50"] <= lat["quantiles"]["current"]["p99"]
        assert lat["p_value"] >= lat["p_value_naive"]
        assert not da["sketches"]["latency_ms"]["drifted"]
        if lat["drifted"]:
            flagged.add((b.hour, (b.group or {}).get("replica", "fleet")))
        assert "latency_ms" not in {s["signal"] for s in db["signals"]}
    assert flagged == {("01", "fleet"), ("01", "b")}
    slow_b = next(w for w in slow if (w.hour, w.group) == ("01", {"replica": "b"}))
    q = slow_b.to_dict()["sketches"]["latency_ms"]["quantiles"]
    assert q["current"]["p50"] > 1.2 * q["reference"]["p50"]


def test_partials_without_sketches_are_recomputed(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ref = _latency_lake(lake, 1.0)
    fleet_drift(lake, ref, config=CONFIG)
    (_, file), *_ = sorted(list_partials(lake).items())
    table = pq.read_table(file)
    pq.write_table(table.drop_columns([c for c in table.column_names if c.startswith("kll_")]),
                   file)
    windows = fleet_drift(lake, ref, config=CONFIG)
    assert "kll_items" in pq.read_table(file).column_names
    assert all("latency_ms" in w.to_dict()["sketches"] for w in windows)
