"""The app under a real uvicorn server on 127.0.0.1 (random free port, stopped by the test)."""

from __future__ import annotations

from pathlib import Path

import httpx

from monitor.server import create_app
from monitor.store import Store
from tests.server.helpers import AUTH, ThreadServer, record, settings_for


def test_real_server_ingests_serves_metrics_and_shuts_down_cleanly(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    app = create_app(settings, start_scheduler=False, enrich=False)
    with ThreadServer(app) as server, httpx.Client(base_url=server.base, headers=AUTH, timeout=10) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        assert httpx.get(f"{server.base}/metrics").status_code == 401
        for start in range(0, 1000, 250):
            r = c.post("/v1/predictions", json={"records": [record(i) for i in range(start, start + 250)]})
            assert r.status_code == 202 and r.json() == {"accepted": 250, "duplicates": 0}
        r = c.post("/v1/predictions", json={"records": [record(0), record(1000)]})
        assert r.json() == {"accepted": 1, "duplicates": 1}
        bad = c.post("/v1/predictions", content=b'{"records": [{"confidence": NaN}]}',
                     headers={"content-type": "application/json"})
        assert bad.status_code == 422
        assert c.post("/v1/labels", json={"labels": [{"event_id": "e-00000005", "label": "neg"}]}
                      ).status_code == 202
        text = c.get("/metrics").text
        assert "shiftwatch_records_ingested_total 1001.0" in text
        assert "shiftwatch_records_duplicated_total 1.0" in text
        assert 'shiftwatch_predictions_stored{model="m",version="v1"} 1001.0' in text
        assert 'shiftwatch_http_requests_total{route="/v1/predictions",status="202"} 5.0' in text
    # the server released the DuckDB file: another process-level open works and sees everything
    with Store(settings.db_path) as store:
        assert store.migrate() == []
        assert store.count_predictions() == 1001
        assert store.read_window("m").column("label").to_pylist()[5] == "neg"
