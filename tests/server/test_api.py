"""API tests that run the app's lifespan (``with TestClient(app)``)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitor.server import create_app
from monitor.store import Store
from tests.server.helpers import AUTH, TOKEN, record, settings_for


@pytest.fixture()
def client(tmp_path: Path) -> Any:
    app = create_app(settings_for(tmp_path), start_scheduler=False)
    with TestClient(app) as c:
        yield c


def _count(c: TestClient) -> int:
    return c.app.state.shiftwatch.store.count_predictions()  # type: ignore[attr-defined,no-any-return]


def test_healthz_is_open_and_everything_else_needs_the_token(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    for method, path in (("get", "/metrics"), ("get", "/v1/drift"), ("get", "/reports/"),
                         ("post", "/v1/predictions"), ("post", "/v1/labels")):
        r = getattr(client, method)(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer wrong"}
    assert client.get("/metrics", headers=bad).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/metrics", headers=AUTH).status_code == 200


def test_ingest_is_committed_and_idempotent(client: TestClient) -> None:
    batch = [record(i) for i in range(50)]
    r = client.post("/v1/predictions", json={"records": batch}, headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {"accepted": 50, "duplicates": 0}
    assert _count(client) == 50
    again = client.post("/v1/predictions", json={"records": [*batch[40:], record(50)]}, headers=AUTH)
    assert again.json() == {"accepted": 1, "duplicates": 10}
    assert _count(client) == 51


def test_bad_batch_lists_rows_and_fields_and_writes_nothing(client: TestClient) -> None:
    batch = [record(i) for i in range(5)]
    batch[1]["confidence"] = 1.5
    batch[3]["ts"] = "yesterday"
    del batch[4]["model_name"]
    r = client.post("/v1/predictions", json={"records": batch}, headers=AUTH)
    assert r.status_code == 422
    found = {(e["row"], e["field"]) for e in r.json()["errors"]}
    # type errors are reported first (row by row), value ranges once the types are right
    assert found == {(3, "ts"), (4, "model_name")}
    batch[3]["ts"], batch[4]["model_name"] = "2026-01-01T00:00:00Z", "m"
    r = client.post("/v1/predictions", json={"records": batch}, headers=AUTH)
    assert r.status_code == 422
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(1, "confidence")]
    assert _count(client) == 0


def test_repeated_id_within_a_batch_is_rejected(client: TestClient) -> None:
    batch = [record(0), record(1), record(0)]
    r = client.post("/v1/predictions", json={"records": batch}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["errors"] == [{"row": 2, "field": "event_id",
                                   "message": "repeats the event_id of row 0 in this batch"}]
    assert _count(client) == 0


def test_wrong_embedding_dimension_is_rejected(client: TestClient) -> None:
    ok = client.post("/v1/predictions", json={"records": [record(0, dim=4)]}, headers=AUTH)
    assert ok.status_code == 202
    r = client.post("/v1/predictions", json={"records": [record(1, dim=5)]}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "embedding"
    assert _count(client) == 1


def test_body_and_batch_size_are_bounded(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, max_body_bytes=20_000, max_batch_records=10),
                     start_scheduler=False)
    with TestClient(app) as c:
        r = c.post("/v1/predictions", json={"records": [record(i) for i in range(11)]}, headers=AUTH)
        assert r.status_code == 413
        assert "limit of 10" in r.json()["detail"]
        big = record(0, text="x" * 30_000)
        r = c.post("/v1/predictions", json={"records": [big]}, headers=AUTH)
        assert r.status_code == 413
        # a body streamed without Content-Length is cut off by the running count as well
        chunks = (b'{"records": [' + b" " * 5000 for _ in range(5))
        r = c.post("/v1/predictions", content=chunks, headers=AUTH)
        assert r.status_code == 413
        assert c.app.state.shiftwatch.store.count_predictions() == 0  # type: ignore[attr-defined]


def test_labels_are_merged_into_windows(client: TestClient) -> None:
    client.post("/v1/predictions", json={"records": [record(i) for i in range(3)]}, headers=AUTH)
    r = client.post("/v1/labels", json={"labels": [{"event_id": "e-00000001", "label": "neg"}]},
                    headers=AUTH)
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    store: Store = client.app.state.shiftwatch.store  # type: ignore[attr-defined]
    labels = store.read_window("m").column("label").to_pylist()
    assert labels == [None, "neg", None]
    bad = client.post("/v1/labels", json={"labels": [{"event_id": "x", "label": 3}]}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "label"


def _seed_drift(store: Store) -> None:
    result = {"n_reference": 100, "n_current": 50, "drifted": True, "signals": []}
    for run_id, ts, drifted, stat in (("r1", "2026-01-01 00:00:00+00", False, 0.01),
                                      ("r2", "2026-01-02 00:00:00+00", True, 0.25)):
        store.fetchall_sql(
            "INSERT INTO drift_runs (run_id, model_name, model_version, reference_name, n_reference,"
            " n_current, drifted, result, created_at) VALUES ($r, 'm', 'v1', 'ref', 100, 50, $d, $res, $ts)",
            {"r": run_id, "d": drifted, "res": json.dumps(result), "ts": ts})
        store.fetchall_sql(
            "INSERT INTO drift_results VALUES ($r, 'embedding', 'mmd', $s, 0.001, 0.01, $d, 'ok', NULL),"
            " ($r, 'confidence', 'ks', 0.3, NULL, 0.01, false, 'ok', NULL)",
            {"r": run_id, "s": stat, "d": drifted})
    store.fetchall_sql("INSERT INTO alerts (alert_id, model_name, rule, severity, run_id) VALUES"
                       " ('a1', 'm', 'embedding-only', 'info', 'r2'),"
                       " ('a2', 'm', 'embedding-only', 'info', 'r1')")
    store.fetchall_sql(
        "INSERT INTO job_runs VALUES ('j1', 'drift_check', '2026-01-02 00:00:00+00',"
        " '2026-01-02 00:00:02+00', 2.0, 'ok', NULL), ('j2', 'drift_check', '2026-01-02 00:10:00+00',"
        " '2026-01-02 00:10:01+00', 1.5, 'failed', 'boom')")


def test_drift_endpoint_and_metrics_read_the_tables(client: TestClient) -> None:
    store: Store = client.app.state.shiftwatch.store  # type: ignore[attr-defined]
    _seed_drift(store)
    r = client.get("/v1/drift", headers=AUTH).json()
    assert [m["run_id"] for m in r["models"]] == ["r2"]
    assert r["models"][0]["result"]["drifted"] is True
    assert client.get("/v1/drift", params={"model_name": "other"}, headers=AUTH).json() == {"models": []}
    text = client.get("/metrics", headers=AUTH).text
    assert 'shiftwatch_drift_statistic{method="mmd",model="m",signal="embedding",version="v1"} 0.25' in text
    assert 'shiftwatch_drift_p_value{model="m",signal="embedding",version="v1"} 0.001' in text
    assert 'shiftwatch_drift_p_value{model="m",signal="confidence"' not in text  # no p-value: no gauge
    assert 'shiftwatch_alerts_fired_total{model="m",rule="embedding-only",severity="info"} 2.0' in text
    assert 'shiftwatch_job_runs_total{job="drift_check",status="failed"} 1.0' in text
    assert 'shiftwatch_job_last_duration_seconds{job="drift_check"} 1.5' in text
    assert 'shiftwatch_job_last_success_timestamp_seconds{job="drift_check"} 1.767312002e+09' in text


def test_reports_are_served_from_the_reports_dir(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    app = create_app(settings, start_scheduler=False)
    with TestClient(app) as c:
        (settings.reports_dir / "index.html").write_text("<h1>index</h1>", encoding="utf-8")
        (settings.reports_dir / "run.html").write_text("<h1>run</h1>", encoding="utf-8")
        (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
        assert c.get("/reports/", headers=AUTH).text == "<h1>index</h1>"
        assert c.get("/reports/run.html", headers=AUTH).text == "<h1>run</h1>"
        assert c.get("/reports/../secret.txt", headers=AUTH).status_code == 404
        assert c.get("/reports/%2e%2e/secret.txt", headers=AUTH).status_code == 404


def test_lifespan_closes_the_store_and_reopening_migrates_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with TestClient(create_app(settings, start_scheduler=False)) as c:
        c.post("/v1/predictions", json={"records": [record(0)]}, headers=AUTH)
    assert c.app.state.shiftwatch.store is None  # type: ignore[attr-defined]
    with Store(settings.db_path) as store:  # the file lock was released
        assert store.migrate() == []
        assert store.count_predictions() == 1


def test_lifespan_starts_and_stops_the_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class FakeScheduler:
        def __init__(self, settings: Any, store: Store) -> None:
            calls.append(f"init:{store.count_predictions()}")

        def start(self) -> None:
            calls.append("start")

        def shutdown(self) -> None:
            calls.append("shutdown")

    fake = types.ModuleType("monitor.scheduler")
    fake.Scheduler = FakeScheduler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "monitor.scheduler", fake)
    with TestClient(create_app(settings_for(tmp_path))) as c:
        assert c.get("/healthz").status_code == 200
        assert calls == ["init:0", "start"]
    assert calls == ["init:0", "start", "shutdown"]


def test_caller_owned_store_stays_open(tmp_path: Path) -> None:
    with Store(tmp_path / "own.duckdb") as store:
        with TestClient(create_app(settings_for(tmp_path), store=store, start_scheduler=False)) as c:
            c.post("/v1/predictions", json={"records": [record(0)]}, headers=AUTH)
        assert store.count_predictions() == 1


def test_open_without_token_only_with_auth_off(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, token=None, auth="off"), start_scheduler=False)
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 200


def test_query_parameter_errors_are_422_not_500(client: TestClient) -> None:
    r = client.get("/v1/drift", params={"model_name": ["a", "b"]}, headers=AUTH)
    assert r.status_code in (200, 422)


def test_collector_telemetry_is_stored_and_exported(client: TestClient) -> None:
    errors = [{"ts": "2026-01-01T00:00:05Z", "model_name": "m", "model_version": "v1", "kind": "tokenizer",
               "message": "cannot tokenize"},
              {"ts": "2026-01-01T00:00:06Z", "model_name": "m", "model_version": "v1", "kind": "model",
               "message": "CUDA OOM", "source": "web"}]
    r = client.post("/v1/errors", json={"errors": errors}, headers=AUTH)
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    beat = {"collector_id": "c1", "ts": "2026-01-01T00:00:10Z", "model_name": "m", "model_version": "v1",
            "queue_depth": 12, "queue_capacity": 10000, "dropped": 3, "sink_failures": 1, "spooled": 0,
            "sent": 500}
    assert client.post("/v1/heartbeat", json=beat, headers=AUTH).status_code == 202
    assert client.post("/v1/heartbeat", json=beat, headers=AUTH).status_code == 202  # a resend is fine
    bad = client.post("/v1/heartbeat", json={**beat, "dropped": -1}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "dropped"
    bad = client.post("/v1/errors", json={"errors": [{**errors[0], "kind": 5}]}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0] == {
        "row": 0, "field": "kind", "message": "expected a string, got int"}
    text = client.get("/metrics", headers=AUTH).text
    assert 'shiftwatch_collector_dropped_total{collector="c1",model="m",version="v1"} 3.0' in text
    assert 'shiftwatch_collector_queue_depth{collector="c1",model="m",version="v1"} 12.0' in text
    assert 'shiftwatch_serving_errors_total{kind="tokenizer",model="m",version="v1"} 1.0' in text
    assert "shiftwatch_heartbeats_received_total 2.0" in text


def test_health_windows_appear_in_metrics(client: TestClient) -> None:
    from datetime import datetime, timedelta

    from monitor.opshealth import health_window, save_health
    from tests.server.helpers import T0

    store: Store = client.app.state.shiftwatch.store  # type: ignore[attr-defined]
    store.insert_predictions([record(i) for i in range(100)])
    save_health(store, health_window(store, model_name="m", model_version="v1", start=T0,
                                     end=T0 + timedelta(seconds=100)), run_id="r1")
    text = client.get("/metrics", headers=AUTH).text
    assert 'shiftwatch_health_latency_ms{model="m",quantile="0.99",version="v1"} 99.01' in text
    assert 'shiftwatch_health_throughput_per_second{model="m",version="v1"} 1.0' in text
    assert "shiftwatch_metrics_scrape_errors_total 0.0" in text
    windows = client.get("/v1/health", params={"model_name": "m"}, headers=AUTH).json()["windows"]
    assert [(w["health_id"], w["n_records"], w["latency_p50_ms"]) for w in windows] == [("r1", 100, 50.5)]
    assert datetime.fromisoformat(windows[0]["window_start"]) == T0
    assert client.get("/v1/health", params={"model_name": "m", "limit": 0}, headers=AUTH).status_code == 422
    assert client.get("/v1/health", headers=AUTH).status_code == 422  # model_name is required


def test_startup_repairs_a_registry_pointer_left_behind_by_a_crash(tmp_path: Path) -> None:
    from monitor.registry import Preprocessing, Registry, read_active_pointer, write_active_pointer
    from tests.conftest import make_tiny_bert

    settings = settings_for(tmp_path)
    with Store(settings.db_path) as store:
        registry = Registry(store, settings.registry_dir)
        pre = Preprocessing(max_length=32, labels=("label_0", "label_1"))
        registry.register("tiny", make_tiny_bert(tmp_path / "src"), version="v1", preprocessing=pre,
                          status="active")
    write_active_pointer(settings.registry_dir, "tiny", "v0-stale")  # as if a switch crashed midway
    with TestClient(create_app(settings, start_scheduler=False, enrich=False)):
        assert read_active_pointer(settings.registry_dir, "tiny") == "v1"
