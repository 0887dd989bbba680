"""``POST /v1/cloudevents``: KServe / Seldon inference-logger events into a running sidecar with a
registered tiny model — joined, stored, enriched, and checked for drift."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from monitor.cloudevents import PairBuffer
from monitor.persist.references import create_reference
from monitor.persist.runs import check_window
from monitor.registry import Preprocessing, Registry
from monitor.server import create_app
from monitor.store import Store
from tests.conftest import make_tiny_bert
from tests.server.helpers import AUTH, TOKEN, settings_for

REQ = "org.kubeflow.serving.inference.request"
RESP = "org.kubeflow.serving.inference.response"
WORDS = ["good", "bad", "great", "awful", "phone", "battery", "food", "movie", "service", "love"]


def _binary(ce_id: str, ce_type: str, data: Any, *, service: str = "tiny", **extra: str) -> dict[str, Any]:
    """What KServe's agent sends: binary mode, extensions as ce-* headers."""
    headers = {"ce-specversion": "1.0", "ce-id": ce_id, "ce-type": ce_type,
               "ce-source": "http://localhost:9081/", "ce-time": "2026-12-01T10:00:00.123456789Z",
               "ce-inferenceservicename": service, "ce-namespace": "default",
               "ce-component": "predictor", "ce-endpoint": "default",
               "content-type": "application/json", **AUTH}
    if ce_type == RESP:
        headers["ce-time"] = "2026-12-01T10:00:00.153456789Z"
    headers.update({f"ce-{k}": v for k, v in extra.items()})
    return {"content": json.dumps(data).encode(), "headers": headers}


def _structured(ce_id: str, ce_type: str, data: Any) -> dict[str, Any]:
    doc = {"specversion": "1.0", "id": ce_id, "type": ce_type, "source": "http://localhost:9081/",
           "time": "2026-12-01T10:00:01Z", "datacontenttype": "application/json",
           "inferenceservicename": "tiny", "namespace": "default", "endpoint": "canary", "data": data}
    return {"content": json.dumps(doc).encode(),
            "headers": {"content-type": "application/cloudevents+json; charset=utf-8", **AUTH}}


def _texts(i: int, n: int) -> list[str]:
    return [f"the {WORDS[(i + j) % 10]} {WORDS[(i * 3 + j) % 10]} is {WORDS[(j + 5) % 10]}" for j in range(n)]


def _probs(i: int, n: int) -> list[list[float]]:
    return [[round(0.1 + 0.8 * ((i + j) % 5) / 4, 3), round(0.9 - 0.8 * ((i + j) % 5) / 4, 3)]
            for j in range(n)]


@pytest.fixture()
def sidecar(tmp_path: Path) -> Any:
    store = Store(tmp_path / "sidecar.duckdb")
    Registry(store, tmp_path / "models").register(
        "tiny", make_tiny_bert(tmp_path / "src"), version="v1", status="active",
        preprocessing=Preprocessing(max_length=32, labels=("neg", "pos")))
    app = create_app(settings_for(tmp_path, registry_dir=tmp_path / "models"), store=store,
                     start_scheduler=False, enrich_sweep_s=0.2)
    with TestClient(app) as client:
        yield client, store


def _wait_enriched(store: Store, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    sql = "SELECT count(*) FROM predictions WHERE embedding IS NOT NULL AND n_tokens IS NOT NULL"
    while store.fetchall_sql(sql)[0][0] < n:
        if time.monotonic() > deadline:
            raise TimeoutError("records were not enriched")
        time.sleep(0.05)


def test_kserve_and_seldon_events_are_joined_stored_enriched_and_checked(sidecar: Any) -> None:
    c, store = sidecar
    post = c.post
    # binary mode, v1 body, request first
    r = post("/v1/cloudevents", **_binary("a-1", REQ, {"instances": ["good phone", "awful food"]}))
    assert r.status_code == 202 and r.json() == {"status": "pending"}
    r = post("/v1/cloudevents", **_binary("a-1", RESP, {"predictions": [[0.2, 0.8], [0.9, 0.1]]}))
    assert r.status_code == 202 and r.json() == {"status": "stored", "accepted": 2, "duplicates": 0}
    # structured mode, v2 body, response before request
    v2_out = {"model_name": "tiny", "outputs": [{"name": "probs", "shape": [1, 2], "datatype": "FP32",
                                                 "data": [0.3, 0.7]}]}
    assert post("/v1/cloudevents", **_structured("b-1", RESP, v2_out)).json() == {"status": "pending"}
    v2_in = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["love the battery"]}]}
    assert post("/v1/cloudevents", **_structured("b-1", REQ, v2_in)).json()["accepted"] == 1
    # Seldon Core 1.x executor: its own ce-types and Seldon-protocol bodies
    seldon = {"ce-modelid": "classifier", "ce-requestid": "s-1", "ce-protocol": "seldon"}
    r = post("/v1/cloudevents", **_binary("s-1", "io.seldon.serving.inference.request",
                                          {"data": {"ndarray": ["bad service"]}}, **seldon))
    assert r.json() == {"status": "pending"}
    r = post("/v1/cloudevents", **_binary("s-1", "io.seldon.serving.inference.response",
                                          {"data": {"names": ["pos", "neg"], "ndarray": [[0.25, 0.75]]}},
                                          **seldon))
    assert r.json()["accepted"] == 1
    # a duplicate of an already-joined half is answered and not stored again
    r = post("/v1/cloudevents", **_binary("a-1", RESP, {"predictions": [[0.2, 0.8], [0.9, 0.1]]}))
    assert r.status_code == 202 and r.json() == {"status": "duplicate"}
    # malformed events name the field, and nothing is kept of them
    bad = _binary("x-1", REQ, {"instances": ["fine"]})
    del bad["headers"]["ce-id"]
    r = post("/v1/cloudevents", **bad)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ce-id"
    r = post("/v1/cloudevents", **_binary("x-2", RESP, {"predictions": [[0.1, 0.2, 0.7]]}))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "data.predictions[0]"
    r = post("/v1/cloudevents", **_binary("x-3", REQ, {"instances": ["a"]}, service="nope"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ce-inferenceservicename"
    r = post("/v1/cloudevents?model=nope", **_binary("x-3", REQ, {"instances": ["a"]}))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "model"
    r = post("/v1/cloudevents", content=b"{not json", headers=_binary("x-4", REQ, {})["headers"])
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "data"
    assert store.count_predictions() == 4

    rows = {r["event_id"]: r for r in store.read_window("tiny").to_pylist()}
    assert sorted(rows) == ["a-1#0", "a-1#1", "b-1", "s-1"]
    assert rows["a-1#0"]["predicted_label"] == "pos" and rows["a-1#1"]["predicted_label"] == "neg"
    assert rows["a-1#0"]["confidence"] == pytest.approx(0.8)
    assert rows["a-1#0"]["latency_ms"] == pytest.approx(15.0)  # 30 ms between the events, 2 inputs
    assert rows["a-1#0"]["text"] == "good phone" and rows["a-1#0"]["source"] == "default"
    assert rows["b-1"]["source"] == "canary" and rows["b-1"]["probs"] == pytest.approx([0.3, 0.7])
    # Seldon's columns were named: reordered into the version's label order
    assert rows["s-1"]["probs"] == pytest.approx([0.75, 0.25]) and rows["s-1"]["predicted_label"] == "neg"

    # a stream of pairs, then: all enriched, and a drift check runs on them
    for i in range(40):
        resp = post("/v1/cloudevents", **_binary(f"r-{i}", RESP, {"predictions": _probs(i, 3)}))
        req = post("/v1/cloudevents", **_binary(f"r-{i}", REQ, {"instances": _texts(i, 3)}))
        assert (resp.status_code, req.status_code) == (202, 202)
    assert store.count_predictions() == 124
    _wait_enriched(store, 124)
    window = store.read_window("tiny")
    assert all(len(e) == 32 for e in window["embedding"].to_pylist())
    create_reference(store, "tiny-ref", window.slice(0, 64), model_name="tiny", model_version="v1")
    _, report = check_window(store, model_name="tiny", reference_name="tiny-ref", last_n=60)
    statuses = {s.signal: s.status for s in report.signals}
    assert statuses["embedding"] == "ok" and statuses["class_distribution"] == "ok"
    assert c.get("/v1/drift", headers=AUTH).json()["models"][0]["model_name"] == "tiny"

    metrics = c.get("/metrics", headers=AUTH).text
    assert 'shiftwatch_cloudevents_received_total{kind="response",outcome="duplicate"} 1.0' in metrics
    assert 'shiftwatch_cloudevents_received_total{kind="request",outcome="rejected"} 2.0' in metrics
    assert "shiftwatch_cloudevents_pending 0.0" in metrics


@pytest.mark.parametrize("body", [
    b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"instances": ["\\ud800"]}', b'{"instances": [NaN]}',
    b'{"instances": ["' + b"x" * 10 + b'"]' + b"9" * 5000, b"null", b'"text"', b'{"instances": {"a": 1}}',
    b'{"inputs": [{"datatype": "BYTES", "data": [[[]]]}]}', b'{"instances": [' + b"1," * 1000 + b"1]}",
])
def test_hostile_bodies_get_4xx_never_500_and_nothing_kept(sidecar: Any, body: bytes) -> None:
    c, store = sidecar
    for mode in ("binary", "structured"):
        if mode == "binary":
            event = _binary("h-1", REQ, None)
            event["content"] = body
        else:
            doc = b'{"specversion": "1.0", "id": "h-1", "type": "%s", "source": "s", ' \
                  b'"inferenceservicename": "tiny", "data": ' % REQ.encode() + body + b"}"
            event = {"content": doc, "headers": {"content-type": "application/cloudevents+json", **AUTH}}
        r = c.post("/v1/cloudevents", **event)
        assert 400 <= r.status_code < 500, (mode, r.status_code, r.text)
        assert r.json()["detail"]
    assert len(c.app.state.cloudevents_buffer) == 0  # no half of a bad event waits
    assert store.count_predictions() == 0


def test_token_may_come_as_a_query_parameter_on_this_route_only(sidecar: Any) -> None:
    c, _ = sidecar
    event = _binary("q-1", REQ, {"instances": ["good"]})
    del event["headers"]["Authorization"]
    assert c.post("/v1/cloudevents", **event).status_code == 401
    assert c.post("/v1/cloudevents?token=wrong", **event).status_code == 401
    assert c.post(f"/v1/cloudevents?token={TOKEN}", **event).status_code == 202
    assert c.get(f"/v1/drift?token={TOKEN}").status_code == 401


def test_a_half_that_never_comes_is_counted_and_evicted(sidecar: Any) -> None:
    c, store = sidecar
    from monitor.api.cloudevents import buffer_of

    c.post("/v1/cloudevents", **_binary("lonely", REQ, {"instances": ["good"]}))
    buffer = c.app.state.cloudevents_buffer
    assert isinstance(buffer, PairBuffer) and buffer_of is not None
    buffer.wait_s = 1e-9  # the next scrape sweeps it
    metrics = c.get("/metrics", headers=AUTH).text
    assert 'shiftwatch_cloudevents_unmatched_total{kind="request"} 1.0' in metrics
    assert "shiftwatch_cloudevents_pending 0.0" in metrics
    assert store.count_predictions() == 0


def test_a_store_failure_keeps_the_waiting_half(sidecar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    c, store = sidecar
    from monitor.errors import StoreError

    c.post("/v1/cloudevents", **_binary("f-1", REQ, {"instances": ["good"]}))

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("disk full")

    with monkeypatch.context() as m:
        m.setattr(store, "insert_predictions", fail)
        r = c.post("/v1/cloudevents", **_binary("f-1", RESP, {"predictions": [[0.4, 0.6]]}))
        assert r.status_code == 503
    r = c.post("/v1/cloudevents", **_binary("f-1", RESP, {"predictions": [[0.4, 0.6]]}))  # the retry
    assert r.json()["accepted"] == 1
    assert pa.table(store.read_window("tiny"))["event_id"].to_pylist() == ["f-1"]
