"""The app under a real uvicorn server on 127.0.0.1 (random free port, stopped by the test)."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from monitor.demo.receiver import WebhookReceiver
from monitor.server import create_app
from monitor.store import Store
from tests.server.helpers import AUTH, T0, ThreadServer, record, settings_for


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


POLICY = """
version: 1
actions:
  notify: {format: generic, timeout_s: 5, retries: 2, backoff_s: 0.0}
rules:
  - name: embedding-drift
    when: {all: [{signal: embedding, drifted: true}]}
    min_samples: 100
    for: 1
    cooldown: 1h
    severity: warning
    actions: [notify]
"""


def _records(n: int, *, seed: int, shift: float, prefix: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(0.0, 1.0, (n, 8)).astype(np.float32)
    emb[:, :4] += shift
    out = []
    for i in range(n):
        c = float(0.55 + 0.4 * rng.random())
        out.append({"event_id": f"{prefix}-{i}", "ts": (T0 + timedelta(seconds=i)).isoformat(),
                    "model_name": "sentiment", "model_version": "v1",
                    "predicted_label": "positive" if i % 2 else "negative", "confidence": c,
                    "probs": [1 - c, c] if i % 2 else [c, 1 - c], "embedding": emb[i].tolist(),
                    "n_tokens": 20, "n_unk": 0, "truncated": False, "n_chars": 90,
                    "latency_ms": float(5 + i % 10)})
    return out


def test_sidecar_with_scheduler_alerts_a_real_webhook(tmp_path: Path) -> None:
    from collectors.schema import records_to_table
    from monitor.persist.references import create_reference

    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    with WebhookReceiver() as receiver, Store(tmp_path / "sidecar.duckdb") as store:
        reference, _ = records_to_table(_records(300, seed=1, shift=0.0, prefix="ref"))
        create_reference(store, "ref-v1", reference, model_name="sentiment", model_version="v1",
                         origin="test")
        settings = settings_for(tmp_path, webhook_url=receiver.url, policy_file=tmp_path / "policy.yaml",
                                drift_interval_s=1.0, window_size=300)
        app = create_app(settings, store=store, enrich=False)  # the real ops Scheduler
        with ThreadServer(app) as server, httpx.Client(base_url=server.base, headers=AUTH, timeout=30) as c:
            shifted = _records(300, seed=2, shift=1.5, prefix="live")
            for start in range(0, 300, 100):
                r = c.post("/v1/predictions", json={"records": shifted[start:start + 100]})
                assert r.status_code == 202
            deadline = time.monotonic() + 90
            while not receiver.messages() and time.monotonic() < deadline:
                time.sleep(0.2)
            received = receiver.messages()
            assert received, "the scheduler should have fired the notify webhook"
            alert = received[0].body["alert"]
            assert alert["rule"] == "embedding-drift" and alert["model_name"] == "sentiment"
            drift = c.get("/v1/drift").json()["models"]
            assert drift[0]["run_id"] == alert["run_id"] and drift[0]["drifted"] is True
            text = c.get("/metrics").text
            assert ('shiftwatch_alerts_fired_total{model="sentiment",rule="embedding-drift",'
                    'severity="warning"} 1.0') in text
            assert re.search(r'shiftwatch_drift_signal_drifted\{model="sentiment",signal="embedding",'
                             r'status="ok",version="v1"\} 1\.0', text)
            assert 'shiftwatch_job_last_success_timestamp_seconds{job="drift_check:sentiment"}' in text
            assert 'shiftwatch_health_latency_ms{model="sentiment",quantile="0.5",version="v1"}' in text
