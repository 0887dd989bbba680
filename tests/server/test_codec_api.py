"""Issue 13's HTTP reproductions: every bad value is a 422 naming row and field, never a 500."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitor.server import create_app
from tests.server.helpers import AUTH, record, settings_for

EPOCH_NS = 1_764_547_200_000_000_000  # 2025-12-01T00:00:00Z


@pytest.fixture()
def client(tmp_path: Path) -> Any:
    app = create_app(settings_for(tmp_path), start_scheduler=False, enrich=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _store(client: TestClient) -> Any:
    return client.app.state.shiftwatch.store  # type: ignore[attr-defined]


def test_epoch_ns_ts_is_read_as_ns(client: TestClient) -> None:
    recs = [record(0, ts=EPOCH_NS), record(1, ts=time.time_ns()), record(2, ts=EPOCH_NS // 10**6)]
    r = client.post("/v1/predictions", json={"records": recs}, headers=AUTH)
    assert r.status_code == 202, r.text
    rows = _store(client).fetchall_sql("SELECT min(year(timezone('UTC', ts))) FROM predictions")
    assert rows == [(2025,)]


@pytest.mark.parametrize(("over", "field"), [
    ({"ts": 10**30}, "ts"), ({"ts": -1}, "ts"), ({"ts": "2026-01-01T00:00:00"}, "ts"),
    ({"event_id": "a\u0000b"}, "event_id"), ({"model_name": "m" * 1_000_000}, "model_name"),
    ({"n_tokens": 2**63}, "n_tokens"), ({"confidence": 10**300}, "confidence"),
])
def test_bad_values_are_422_naming_row_and_field(client: TestClient, over: dict[str, Any],
                                                 field: str) -> None:
    recs = [record(0), record(1, **over)]
    r = client.post("/v1/predictions", json={"records": recs}, headers=AUTH)
    assert r.status_code == 422, r.text[:300]
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(1, field)]
    assert len(r.text) < 5_000  # the million-character name is not echoed back
    assert _store(client).count_predictions() == 0


def test_labels_follow_the_prediction_rules(client: TestClient) -> None:
    assert client.post("/v1/predictions", json={"records": [record(0), record(1)]},
                       headers=AUTH).status_code == 202
    ok = client.post("/v1/labels", json={"labels": [
        {"event_id": "e-00000000", "label": "pos", "labeled_at": EPOCH_NS},
        {"event_id": "e-00000001", "label": "neg", "labeled_at": "2026-01-02T00:00:00Z"}]}, headers=AUTH)
    assert ok.status_code == 202 and ok.json() == {"accepted": 2}
    for labels, row, field in [
        ([{"event_id": "e-00000000", "label": "pos", "labeled_at": "2026-01-02T00:00:00"}], 0, "labeled_at"),
        ([{"event_id": "e-00000000", "label": "pos", "labeled_at": "0001-01-01T00:00:00Z"}], 0, "labeled_at"),
        ([{"event_id": "e-00000000", "label": "pos"}, {"event_id": "e-00000000", "label": "neg"}], 1,
         "event_id"),
        ([{"event_id": "e\u00000", "label": "pos"}], 0, "event_id"),
    ]:
        r = client.post("/v1/labels", json={"labels": labels}, headers=AUTH)
        assert r.status_code == 422, r.text
        assert (r.json()["errors"][0]["row"], r.json()["errors"][0]["field"]) == (row, field)
    assert _store(client).fetchall_sql("SELECT count(*) FROM labels") == [(2,)]


def test_heartbeat_int_of_2_63_names_its_field(client: TestClient) -> None:
    beat = {"collector_id": "c1", "ts": "2026-01-01T00:00:10Z", "model_name": "m", "model_version": "v1",
            "queue_depth": 0, "queue_capacity": 10, "dropped": 2**63, "sink_failures": 0, "spooled": 0,
            "sent": 5}
    r = client.post("/v1/heartbeat", json=beat, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"] == [
        {"row": 0, "field": "dropped", "message": f"must be between 0 and {2**63 - 1}, got {2**63}"}]
    r = client.post("/v1/heartbeat", json={**beat, "dropped": 2**63 - 1, "ts": EPOCH_NS}, headers=AUTH)
    assert r.status_code == 202, r.text
    r = client.post("/v1/heartbeat", json={**beat, "collector_id": "c" * 201}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "collector_id"
