"""From stored drift runs to the policy's per-window metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.drift.base import DriftResult
from monitor.drift.suite import DriftReport
from monitor.errors import StoreError
from monitor.scheduler import window_from_run
from monitor.store import Store
from monitor.windowmetrics import METRICS

END = datetime(2026, 3, 2, 12, tzinfo=UTC)


def result(signal: str, *, drifted: bool = True, statistic: float | None = None,
           p_value: float | None = None, status: str = "ok", **details: object) -> DriftResult:
    return DriftResult(signal=signal, method="m", statistic=statistic, p_value=p_value, threshold=0.01,
                       drifted=drifted, n_reference=500, n_current=400, status=status,  # type: ignore[arg-type]
                       details=dict(details))


def run_row(*signals: DriftResult) -> dict:
    report = DriftReport(n_reference=500, n_current=400, drifted=True, signals=signals)
    return {"run_id": "r", "model_name": "m", "model_version": "v2", "n_current": 400, "drifted": True,
            "window_end": END, "result": json.dumps(report.to_dict())}


def test_metrics_from_signal_details_health_and_registry() -> None:
    row = run_row(
        result("embedding", statistic=0.04, p_value=0.001),
        result("confidence", statistic=0.3, p_value=0.002, mean_drop=0.07),
        result("performance", statistic=0.1, p_value=0.01, reference_accuracy=0.9, current_accuracy=0.8,
               reference_macro_f1=0.88, current_macro_f1=0.75, n_labelled=120))
    w = window_from_run(row, health={"latency_p99_ms": 250.0, "error_rate": 0.01},
                        version={"promoted_at": END - timedelta(hours=30)})
    m = w.metrics
    assert set(m) == set(METRICS)
    assert abs(m["confidence_mean_delta"] + 0.07) < 1e-12
    assert abs(m["realized_macro_f1_drop"] - 0.13) < 1e-12 and abs(m["realized_accuracy_drop"] - 0.1) < 1e-12
    assert m["n_labelled"] == 120 and m["realized_macro_f1"] == 0.75
    assert m["latency_p99_ms"] == 250.0 and m["error_rate"] == 0.01 and m["throughput_per_s"] is None
    assert m["hours_since_promotion"] == 30.0 and m["n_current"] == 400
    assert m["estimated_accuracy_drop"] is None
    assert w.signals["embedding"].p_value == 0.001 and w.signals["confidence"].drifted
    assert w.diagnosis is not None and w.diagnosis_detail is not None


def test_an_in_memory_report_gives_the_window_its_stored_run_gives() -> None:
    report = DriftReport(n_reference=500, n_current=400, drifted=False, signals=(
        result("confidence", drifted=False, statistic=float("nan"), p_value=0.4, mean_drop=float("nan")),
        result("performance", drifted=False, statistic=0.01, p_value=0.3, n_labelled=np.int64(7))))
    row = {"run_id": "r", "model_name": "m", "model_version": "v2", "n_current": 400, "drifted": False,
           "window_end": END}
    fresh = window_from_run(row, report=report)
    stored = window_from_run({**row, "result": json.dumps(report.to_dict())})
    assert fresh == stored
    assert fresh.signals["confidence"].statistic is None and fresh.metrics["confidence_mean_delta"] is None
    assert fresh.metrics["n_labelled"] == 7


def test_estimated_performance_and_missing_evidence() -> None:
    cbpe = result("performance", drifted=False, statistic=0.05, reference_accuracy=0.9,
                  estimated_accuracy=0.84, n_labelled=0)
    m = window_from_run(run_row(cbpe)).metrics
    assert abs(m["estimated_accuracy_drop"] - 0.06) < 1e-12
    assert m["realized_macro_f1_drop"] is None and m["hours_since_promotion"] is None
    bare = window_from_run(run_row(result("embedding", drifted=False, status="insufficient_data")))
    assert bare.signals["embedding"].status == "insufficient_data"
    assert bare.metrics["confidence_mean_delta"] is None


def test_a_stored_result_that_is_no_report_is_a_store_error() -> None:
    row = {"run_id": "r", "model_name": "m", "model_version": "v2", "n_current": 1, "drifted": False}
    for bad in ("not json", json.dumps([1]), json.dumps({"signals": []})):
        with pytest.raises(StoreError, match="not a drift report"):
            window_from_run({**row, "result": bad})


def test_promotion_time_comes_from_registry_events(tmp_path: Path) -> None:
    with Store(tmp_path / "r.duckdb") as store:
        store.fetchall_sql("INSERT INTO model_versions (model_name, version, status) VALUES "
                           "('m', 'v1', 'retired'), ('m', 'v2', 'active')")
        store.fetchall_sql(
            "INSERT INTO registry_events (event_id, model_name, kind, from_version, to_version, created_at) "
            "VALUES ('e1', 'm', 'promote', NULL, 'v1', $a), ('e2', 'm', 'promote', 'v1', 'v2', $b), "
            "('e3', 'm', 'rollback', 'v2', 'v1', $c)",
            {"a": END - timedelta(days=9), "b": END - timedelta(hours=5), "c": END - timedelta(hours=1)})
        (v2,) = store.fetch_dicts("ops_model_version", {"model_name": "m", "model_version": "v2"})
        (v1,) = store.fetch_dicts("ops_model_version", {"model_name": "m", "model_version": "v1"})
    assert v2["promoted_at"] == END - timedelta(hours=5)
    assert v1["promoted_at"] is None  # first activation and rollback are not promotions over another
