"""The pure CloudEvents module: parsing both HTTP modes, reading v1/v2/Seldon bodies, the join."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from monitor.cloudevents import (
    EventError,
    Half,
    PairBuffer,
    pair_records,
    parse_binary,
    parse_structured,
    request_texts,
    response_outputs,
)

LABELS = ("neg", "pos")
REQ = "org.kubeflow.serving.inference.request"
RESP = "org.kubeflow.serving.inference.response"


def _headers(ce_id: str = "id-1", ce_type: str = REQ, **extra: str) -> dict[str, str]:
    return {"Ce-Id": ce_id, "Ce-Type": ce_type, "Ce-Source": "http://localhost:9081/",
            "Ce-Specversion": "1.0", "Ce-Inferenceservicename": "svc", "Content-Type": "application/json",
            **extra}


def test_binary_mode_reads_attributes_case_insensitively_and_nanosecond_times() -> None:
    ev = parse_binary(_headers(**{"Ce-Time": "2021-04-10T00:23:26.0789529Z", "Ce-Endpoint": ""}),
                      b'{"instances": ["x"]}')
    assert (ev.id, ev.kind, ev.stack, ev.service) == ("id-1", "request", "kserve", "svc")
    assert ev.time is not None and ev.time.microsecond == 78952 and ev.slice is None


def test_structured_mode_with_base64_data() -> None:
    doc = {"specversion": "1.0", "id": "z", "type": "io.seldon.serving.inference.response",
           "source": "s", "data_base64": base64.b64encode(b'{"predictions": [[0.5, 0.5]]}').decode()}
    ev = parse_structured(json.dumps(doc).encode())
    assert ev.stack == "seldon" and ev.kind == "response" and ev.data == {"predictions": [[0.5, 0.5]]}


@pytest.mark.parametrize(("headers", "body", "field"), [
    ({"Ce-Type": "com.example.other"}, b"{}", "ce-type"),
    ({"Ce-Source": ""}, b"{}", "ce-source"),
    ({"Ce-Specversion": "2.0"}, b"{}", "ce-specversion"),
    ({"Ce-Time": "yesterday"}, b"{}", "ce-time"),
    ({"Content-Type": "application/octet-stream"}, b"{}", "content-type"),
    ({}, b"", "data"),
])
def test_bad_binary_events_name_the_field(headers: dict[str, str], body: bytes, field: str) -> None:
    with pytest.raises(EventError) as err:
        parse_binary(_headers(**headers), body)
    assert err.value.field == field


def test_request_bodies() -> None:
    assert request_texts({"instances": ["a", ["b"], {"text": "c"}]}) == ["a", "b", "c"]
    v2 = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1], "data": [3]},
                     {"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": [["d"], ["e"]]}]}
    assert request_texts(v2) == ["d", "e"]
    assert request_texts({"strData": "f"}) == ["f"]
    assert request_texts({"data": {"ndarray": [["g"], "h"]}}) == ["g", "h"]
    for bad, field in (({"instances": [1]}, "data.instances[0]"), ({"instances": []}, "data.instances"),
                       ({"rows": []}, "data"), ({"instances": [""]}, "data.instances[0]")):
        with pytest.raises(EventError) as err:
            request_texts(bad)
        assert err.value.field == field


def test_response_bodies_probabilities_logits_and_labelled_scores() -> None:
    out = response_outputs({"predictions": [[0.25, 0.75], {"neg": 0.6, "pos": 0.4}, {"0": 0.1, "1": 0.9},
                                            {"label": "pos", "score": 0.66}]}, LABELS)
    assert [o.probs for o in out[:3]] == [(0.25, 0.75), (0.6, 0.4), (0.1, 0.9)]
    assert (out[3].probs, out[3].label, out[3].score) == (None, "pos", 0.66)
    logits = response_outputs({"outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 2],
                                            "data": [0.0, 2.0]}]}, LABELS)
    assert logits[0].probs == pytest.approx((0.1192, 0.8808), abs=1e-4)  # softmax of logits
    with pytest.raises(EventError, match="bare class id") as err:
        response_outputs({"predictions": [1]}, LABELS)
    assert err.value.field == "data.predictions[0]"
    with pytest.raises(EventError) as err:
        response_outputs({"outputs": [{"name": "p", "datatype": "FP32", "shape": [2, 2], "data": [1, 0]}]},
                         LABELS)
    assert err.value.field == "data.outputs[].shape"


def _half(ce_id: str, kind: str, **kw: Any) -> Half:
    ev = parse_binary(_headers(ce_id, REQ if kind == "request" else RESP), b"{}")
    return Half(ev, **kw)


def test_join_in_either_order_duplicates_and_bounded_wait() -> None:
    now = [0.0]
    lost: list[str] = []
    buf = PairBuffer(wait_s=10.0, max_pending=2, clock=lambda: now[0], on_unmatched=lost.append)
    assert buf.offer("m", _half("a", "response", outputs=[])).status == "pending"
    assert buf.offer("m", _half("a", "response", outputs=[])).status == "duplicate"
    joined = buf.offer("m", _half("a", "request", texts=[]))
    assert joined.status == "joined" and joined.request is not None and joined.request.event.kind == "request"
    assert buf.offer("m", _half("a", "request", texts=[])).status == "duplicate"  # already joined
    assert buf.offer("other-model", _half("a", "request", texts=[])).status == "pending"
    buf.offer("m", _half("b", "request", texts=[]))
    buf.offer("m", _half("c", "request", texts=[]))  # over max_pending: the oldest goes
    assert lost == ["request"] and len(buf) == 2
    now[0] = 11.0
    assert buf.sweep() == 0 and buf.unmatched == {"request": 3, "response": 0}


def test_pair_records_map_labels_and_check_counts() -> None:
    buf = PairBuffer()
    buf.offer("m", _half("p", "request", texts=["x", "y"]))
    join = buf.offer("m", _half("p", "response", outputs=response_outputs(
        {"predictions": [[0.9, 0.1], [0.3, 0.7]]}, LABELS)))
    recs = pair_records(join, model_name="m", model_version="v1", labels=LABELS)
    assert [(r["event_id"], r["predicted_label"], r["confidence"]) for r in recs] == [
        ("p#0", "neg", 0.9), ("p#1", "pos", 0.7)]
    buf.offer("m", _half("q", "request", texts=["x"]))
    join = buf.offer("m", _half("q", "response", outputs=response_outputs({"predictions": [[1, 0]] * 2},
                                                                          LABELS)))
    with pytest.raises(EventError, match="2 outputs but its request"):
        pair_records(join, model_name="m", model_version="v1", labels=LABELS)
