"""A bad promotion rolls back by itself in a running sidecar, and the serving example reloads v1.

Real pieces end to end: a real uvicorn sidecar on loopback (``create_app`` with its scheduler
running drift cycles), the example serving app (``examples/serving_app.py``: HttpSink to the
sidecar, ACTIVE-pointer watcher), the shipped ``rollback-after-promotion`` rule (the paired test of
the promoted version against the version it replaced, on the same labelled live rows), the notify
action posting to a local webhook receiver, and the rollback action moving the pointer.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from monitor.demo.receiver import WebhookReceiver
from monitor.registry import Preprocessing, Registry, read_active_pointer
from monitor.server import create_app
from monitor.store import Store
from tests.conftest import make_tiny_bert
from tests.retrain.helpers import flip_head, sentences
from tests.server.helpers import AUTH, ThreadServer, settings_for
from tests.server.test_examples import _load_example

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LABELS = ("negative", "positive")
PRE = Preprocessing(max_length=32, labels=LABELS)
WINDOW = 60

POLICY = """\
version: 1
actions:
  notify: {{url: "{url}", format: generic, timeout_s: 5, retries: 1, backoff_s: 0.1}}
rules:
  - name: rollback-after-promotion
    description: Since its promotion, significantly worse than the version it replaced on the same rows.
    when:
      all:
        - {{metric: hours_since_promotion, le: 168}}
        - {{metric: n_paired_with_parent, ge: 50}}
        - {{metric: parent_paired_p, le: 0.05}}
    for: 1
    cooldown: 24h
    severity: critical
    actions: [notify, rollback]
"""


def _v1(tmp_path: Path) -> Path:
    from monitor.retrain.trainer import TrainConfig, train

    cfg = TrainConfig(strategy="full", max_steps=60, lr=1e-2, eval_every=20, progress=False, seed=0)
    res = train(make_tiny_bert(tmp_path / "base"), sentences(200, seed=1, labels=LABELS),
                sentences(60, seed=2, labels=LABELS), labels=LABELS, config=cfg, out_dir=tmp_path / "v1")
    assert res.best_val_macro_f1 >= 0.9, res
    return tmp_path / "v1"


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_forced_bad_promotion_rolls_back_and_the_serving_app_reloads_v1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.persist.references import reference_for
    from monitor.retrain.evaluate import build_reference

    models = tmp_path / "models"
    store = Store(tmp_path / "sidecar.duckdb")
    registry = Registry(store, models)
    v1 = registry.register("sentiment", _v1(tmp_path), version="v1", preprocessing=PRE, status="active")
    held_out = sentences(80, seed=5, labels=LABELS)
    ref, _ = build_reference(store, registry.load_encoder(v1, device="cpu"), model_name="sentiment",
                             model_version="v1", labels=LABELS, texts=held_out.texts, origin="held out",
                             true_labels=held_out.labels)
    # the bad candidate, force-promoted (as `shiftwatch promote v2` does: no guard, no reference of its own)
    registry.register("sentiment", flip_head(tmp_path / "v1", tmp_path / "v2"), version="v2",
                      preprocessing=PRE, parent="v1")
    registry.promote("sentiment", "v2", reason="forced promotion (demo of a bad one)")
    assert read_active_pointer(models, "sentiment") == "v2"
    assert reference_for(store, "sentiment", "v2") == ref  # it must keep v1's labelled performance

    with WebhookReceiver() as receiver:
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY.format(url=receiver.url), encoding="utf-8")
        settings = settings_for(tmp_path, registry_dir=models, policy_file=policy, window_size=WINDOW,
                                window_minutes=None, drift_interval_s=0.5, dry_run=False)
        sidecar = create_app(settings, store=store, start_scheduler=True, enrich=False)
        with ThreadServer(sidecar) as server:
            example = _load_example(monkeypatch, {
                "MODEL_NAME": "sentiment", "SHIFTWATCH_REGISTRY_DIR": str(models),
                "SHIFTWATCH_URL": server.base, "SHIFTWATCH_TOKEN": AUTH["Authorization"].split()[1],
                "COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"), "POINTER_POLL_S": "0.1", "LOG_TEXT": "1"})
            live = sentences(WINDOW, seed=9, labels=LABELS)
            truth = dict(zip(live.texts, live.labels, strict=True))
            with TestClient(example.app) as app:
                assert app.get("/healthz").json()["version"] == "v2"
                # all but the last row of the window, then their ground truth, then the last row:
                # the window is complete only once its labels are in
                for s in range(0, WINDOW - 1, 16):
                    r = app.post("/predict", json={"texts": live.texts[s:min(s + 16, WINDOW - 1)]})
                    assert r.status_code == 200 and {p["model_version"] for p in r.json()} == {"v2"}
                example.server.collector.flush()

                def logged() -> list[tuple[str, str]]:
                    return [(str(a), str(b)) for a, b in store.fetchall_sql(
                        "SELECT event_id, text FROM predictions WHERE model_version = 'v2'")]

                _wait(lambda: len(logged()) == WINDOW - 1, 60, "the sidecar to store the records")
                labels = [{"event_id": e, "label": truth[t]} for e, t in logged()]
                res = httpx.post(f"{server.base}/v1/labels", json={"labels": labels}, headers=AUTH,
                                 timeout=30)
                assert res.status_code in (200, 202), res.text
                assert app.post("/predict", json={"texts": live.texts[-1:]}).status_code == 200
                example.server.collector.flush()

                # nothing else happens from here: the scheduler checks the window, the rule fires,
                # notify + rollback run, the pointer moves, the serving app reloads
                _wait(lambda: read_active_pointer(models, "sentiment") == "v1", 300, "the rollback")
                _wait(lambda: app.get("/healthz").json()["version"] == "v1", 60, "the serving app to reload")
                r = app.post("/predict", json={"texts": ["the phone is great"]})
                assert [p["model_version"] for p in r.json()] == ["v1"]
            _wait(lambda: bool(receiver.messages()), 30, "the webhook")
    active = registry.active("sentiment")
    assert active is not None and active.version == "v1"
    bodies = [m.body for m in receiver.messages()]
    assert any(isinstance(b, dict) and (b.get("alert") or {}).get("rule") == "rollback-after-promotion"
               for b in bodies), bodies
    events = store.fetchall_sql("SELECT kind, from_version, to_version FROM registry_events "
                                "WHERE kind = 'rollback'")
    assert events == [("rollback", "v2", "v1")]
    store.close()
