"""Operational health per window: known answers from seeded records."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.opshealth import health_history, health_window, save_health
from monitor.store import Store
from tests.server.helpers import T0, record


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "h.duckdb")
    # latency_ms of record i is 1 + i % 100: 100 records give exactly 1..100
    s.insert_predictions([record(i) for i in range(100)])
    s.insert_predictions([record(i, version="v2", latency_ms=None) for i in range(100, 110)])
    return s


def _has_collector_tables(store: Store) -> bool:
    names = {r[0] for r in store.fetchall_sql("SELECT table_name FROM information_schema.tables")}
    return {"serving_errors", "collector_heartbeats"} <= names


def test_latency_quantiles_and_throughput(store: Store) -> None:
    h = health_window(store, model_name="m", model_version="v1", start=T0, end=T0 + timedelta(seconds=200))
    assert h.n_records == 100
    assert h.duration_s == 200.0
    assert h.throughput_per_s == pytest.approx(0.5)
    assert h.latency_p50_ms == pytest.approx(50.5)
    assert h.latency_p95_ms == pytest.approx(95.05)
    assert h.latency_p99_ms == pytest.approx(99.01)


def test_unknown_latency_is_none_not_zero(store: Store) -> None:
    h = health_window(store, model_name="m", model_version="v2")
    assert h.n_records == 10
    assert h.latency_p50_ms is None and h.latency_p99_ms is None
    assert h.duration_s == 9.0  # span of the records' timestamps without start/end


def test_empty_window(store: Store) -> None:
    h = health_window(store, model_name="nobody")
    assert h.n_records == 0 and h.throughput_per_s is None and h.latency_p50_ms is None


def test_errors_and_heartbeats(store: Store) -> None:
    assert _has_collector_tables(store)  # migration 002
    from monitor import health

    def ts(seconds: int) -> str:
        return (T0 + timedelta(seconds=seconds)).isoformat()

    health.insert_serving_errors(store, [
        {"ts": ts(5), "model_name": "m", "model_version": "v1", "kind": "tokenizer", "message": "bad"},
        {"ts": ts(6), "model_name": "m", "model_version": "v1", "kind": "model", "message": "oom"},
        {"ts": ts(500), "model_name": "m", "model_version": "v1", "kind": "model", "message": "late"},
    ])
    beat = {"collector_id": "c1", "model_name": "m", "model_version": "v1", "queue_capacity": 100,
            "sink_failures": 0, "spooled": 0, "sent": 0}
    health.insert_heartbeats(store, [
        {**beat, "ts": ts(-10), "queue_depth": 1, "dropped": 3},
        {**beat, "ts": ts(10), "queue_depth": 40, "dropped": 5},
        {**beat, "ts": ts(20), "queue_depth": 7, "dropped": 9},
    ])
    h = health_window(store, model_name="m", model_version="v1", start=T0, end=T0 + timedelta(seconds=200))
    assert (h.n_errors, h.n_tokenizer_failures) == (2, 1)
    assert h.error_rate == pytest.approx(2 / 102)
    assert (h.queue_depth_max, h.queue_capacity, h.dropped) == (40, 100, 6)


def test_save_is_idempotent_per_run_and_history_reads_back(store: Store) -> None:
    h1 = health_window(store, model_name="m", model_version="v1", start=T0, end=T0 + timedelta(seconds=50))
    h2 = health_window(store, model_name="m", model_version="v1", start=T0 + timedelta(seconds=50),
                       end=T0 + timedelta(seconds=100))
    assert save_health(store, h1, run_id="run-1") == "run-1"
    save_health(store, h1, run_id="run-1")
    save_health(store, h2)
    rows = health_history(store, "m")
    assert len(rows) == 2
    assert rows[0]["n_records"] == 50 and rows[0]["run_id"] is None
    assert rows[1]["health_id"] == "run-1" and rows[1]["latency_p50_ms"] == pytest.approx(25.5)
    assert h1.to_dict()["window_start"] == T0.isoformat()
