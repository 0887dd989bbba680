"""Fuzz the app: malformed input is always a 4xx with a message, never a 5xx, and nothing of a
rejected batch is written. ``test_openapi_fuzz_every_route`` sends 10,000 requests over every
operation of the app's own OpenAPI schema (routes added later are covered automatically)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collectors.codec import _fast_table, _records_one_by_one, validate_table
from monitor.errors import SchemaError
from monitor.server import create_app
from tests.server.fuzz_openapi import generate, operations, schedule
from tests.server.helpers import AUTH, TOKEN, record, settings_for

#: requests of the OpenAPI-driven fuzz test (issue 13: at least 10,000 over every route)
N_REQUESTS = 10_000

NASTY: list[Any] = [
    None, True, False, 0, -1, 2**31, 2**64, 1e308, -1e308, 1e-320, float("nan"), float("inf"),
    float("-inf"), "", " ", "x" * 1_100_000, "\u0000", "\ud800", "\U0001f600" * 10, "2026-13-45",
    "NaN", [], [None], [float("nan")], [1e400], ["a"], [[1.0]], {}, {"a": 1}, [0.5] * 5000, -0.0,
]
FIELDS = ["event_id", "ts", "model_name", "model_version", "predicted_label", "confidence", "probs",
          "embedding", "n_tokens", "n_unk", "truncated", "n_chars", "latency_ms", "text", "text_sha256",
          "source", "label", "unknown_field"]


def _mutate(rng: random.Random, batch: list[Any]) -> Any:
    kind = rng.randrange(8)
    row = rng.randrange(len(batch))
    if not isinstance(batch[row], dict):
        kind = 6
    if kind <= 3:  # one field of one record gets a nasty value
        batch[row][rng.choice(FIELDS)] = rng.choice(NASTY)
    elif kind == 4:  # a field disappears
        batch[row].pop(rng.choice(FIELDS[:6]), None)
    elif kind == 5:  # a record is not an object
        batch[row] = rng.choice([*NASTY[:12], [], "record"])
    elif kind == 6:  # duplicated id
        batch.append(dict(batch[row]) if isinstance(batch[row], dict) else batch[row])
    else:  # wrong top-level shape
        return rng.choice([batch, {"records": batch, "extra": 1}, {"record": batch}, {"records": {}},
                           {"records": None}, {"records": []}, "records", 42, None])
    return {"records": batch}


def _dump(payload: Any) -> bytes:
    try:
        return json.dumps(payload).encode("utf-8", "surrogatepass")
    except ValueError:
        return b'{"records": [}'


@pytest.fixture()
def client(tmp_path: Path) -> Any:
    app = create_app(settings_for(tmp_path, max_body_bytes=4_000_000, max_batch_records=100),
                     start_scheduler=False, enrich=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_structured_fuzz_never_500s_and_writes_nothing(client: TestClient) -> None:
    rng = random.Random(1234)
    store = client.app.state.shiftwatch.store  # type: ignore[attr-defined]
    good = client.post("/v1/predictions", json={"records": [record(i, prefix="ok") for i in range(3)]},
                       headers=AUTH)
    assert good.status_code == 202
    statuses: dict[int, int] = {}
    for case in range(300):
        batch = [record(i, prefix=f"f{case}") for i in range(rng.randint(1, 5))]
        payload = _mutate(rng, batch)
        for _ in range(rng.randrange(2)):
            payload = _mutate(rng, payload["records"]) if isinstance(payload, dict) and isinstance(
                payload.get("records"), list) and payload["records"] else payload
        before = store.count_predictions()
        r = client.post("/v1/predictions", content=_dump(payload), headers=AUTH)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code in (202, 400, 413, 422), (case, r.status_code, r.text[:500])
        if r.status_code != 202:
            assert r.json()["detail"], case
            assert store.count_predictions() == before, case
        else:
            assert store.count_predictions() == before + r.json()["accepted"], case
    assert statuses.get(422, 0) > 100  # the fuzzer does produce bad batches


@pytest.mark.parametrize("body", [
    b"", b"   ", b"null", b"[]", b"{", b'{"records": [1, 2', b"\xff\xfe\x00", b'{"records": "\xc3\x28"}',
    b'{"records": [{"event_id": "a\xed\xa0\x80b"}]}', b"[" * 100_000 + b"]" * 100_000,
    b'{"records": [{"n_tokens": ' + b"9" * 5000 + b"}]}", b'{"records": [NaN]}',
    b'{"records": [{"confidence": Infinity}]}', b"\x00" * 100,
])
def test_raw_bodies_are_4xx(client: TestClient, body: bytes) -> None:
    for path in ("/v1/predictions", "/v1/labels", "/v1/errors", "/v1/heartbeat"):
        r = client.post(path, content=body, headers=AUTH)
        assert 400 <= r.status_code < 500, (path, body[:40], r.status_code, r.text[:300])
        assert r.json()["detail"]


def test_labels_fuzz(client: TestClient) -> None:
    rng = random.Random(7)
    for _ in range(100):
        item: dict[str, Any] = {"event_id": "ok-00000001", "label": "pos"}
        item[rng.choice(["event_id", "label", "labeled_at", "source", "extra"])] = rng.choice(NASTY)
        r = client.post("/v1/labels", content=_dump({"labels": [item]}), headers=AUTH)
        assert r.status_code in (202, 400, 413, 422), (item, r.status_code, r.text[:300])


def _outcome(fn: Any) -> Any:
    try:
        return fn()[0].to_pylist()
    except SchemaError as exc:
        return sorted((e.row, e.field) for e in exc.errors)
    except Exception as exc:  # the slow path's own conversion failures
        return type(exc).__name__


def test_fast_path_accepts_exactly_what_the_record_validator_accepts() -> None:
    rng = random.Random(99)
    taken = 0
    for case in range(400):
        batch = [record(i, prefix=f"p{case}", dim=rng.choice([None, 3])) for i in range(rng.randint(1, 4))]
        payload = _mutate(rng, batch) if case % 4 else {"records": batch}
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            continue
        table = _fast_table(records)
        if table is None:
            continue
        taken += 1
        slow = _outcome(lambda r=records: _records_one_by_one(
            r, range(len(r)), skip_bad=False, source=None, embedding_dims=None))
        assert _outcome(lambda t=table: validate_table(t)) == slow, case
    assert taken > 150  # the fast path is really exercised, on good and on bad values


@pytest.mark.slow  # ~1-2 min on 2 cores: 10,000 in-process requests
def test_openapi_fuzz_every_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # relative paths in fuzzed bodies (report and export directories) land in tmp_path, not the checkout
    monkeypatch.chdir(tmp_path)
    settings = settings_for(tmp_path, max_body_bytes=200_000, max_batch_records=50)
    app = create_app(settings, start_scheduler=False, enrich=False)
    (tmp_path / "reports").mkdir(parents=True, exist_ok=True)
    (tmp_path / "reports" / "index.html").write_text("<html>ok</html>", encoding="utf-8")
    ops = operations(app)
    keys = {op.key for op in ops}
    assert {"POST /v1/predictions", "POST /v1/labels", "GET /metrics", "GET /healthz",
            "GET /reports/{file_path}"} <= keys  # the enumeration sees the app's routes
    rng = random.Random(20261201)
    per_op: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    plan = schedule(ops, N_REQUESTS)
    with TestClient(app, raise_server_exceptions=False) as client:
        for op in plan:
            spec = generate(rng, op, TOKEN)
            r = client.request(spec.method, spec.url, content=spec.content, headers=spec.headers)
            per_op[op.key] += 1
            statuses[r.status_code] += 1
            if r.status_code >= 500 and len(failures) < 20:
                failures.append(f"{spec.method} {spec.url[:200]} {(spec.content or b'')[:200]!r} -> "
                                f"{r.status_code} {r.text[:300]}")
    elapsed = time.monotonic() - started
    assert not failures, "\n".join(failures)
    assert sum(per_op.values()) == N_REQUESTS
    assert min(per_op[op.key] for op in ops) >= 25  # every route; those with input share the most
    assert min(per_op[op.key] for op in ops if op.has_input) >= N_REQUESTS // (2 * len(ops))
    ok = sum(n for code, n in statuses.items() if code < 300)
    client_errors = sum(n for code, n in statuses.items() if 400 <= code < 500)
    assert ok > N_REQUESTS // 20 and client_errors > N_REQUESTS // 4, statuses  # both paths exercised
    print(f"openapi fuzz: {N_REQUESTS} requests over {len(ops)} operations in {elapsed:.1f} s; "
          f"statuses {dict(sorted(statuses.items()))}")
