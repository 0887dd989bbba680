"""The example serving app: serves the ACTIVE version, logs through HttpSink to a real sidecar,
and switches versions on a pointer change without failing a request."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitor.registry import Preprocessing, Registry
from monitor.server import create_app
from monitor.store import Store
from tests.conftest import make_tiny_bert
from tests.server.helpers import TOKEN, ThreadServer, settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serving_app.py"
PRE = Preprocessing(max_length=32, labels=("negative", "positive"))


def _load_example(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("serving_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_example_app_logs_to_the_sidecar_and_reloads_on_promotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "sidecar.duckdb")
    models = tmp_path / "models"
    registry = Registry(store, models)
    registry.register("sentiment", make_tiny_bert(tmp_path / "v1src"), version="v1", preprocessing=PRE,
                      status="active")
    sidecar = create_app(settings_for(tmp_path, registry_dir=models), store=store, start_scheduler=False)
    with ThreadServer(sidecar) as server:
        example = _load_example(monkeypatch, {
            "MODEL_NAME": "sentiment", "SHIFTWATCH_REGISTRY_DIR": str(models), "SHIFTWATCH_URL": server.base,
            "SHIFTWATCH_TOKEN": TOKEN, "COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"),
            "POINTER_POLL_S": "0.1"})
        served: list[str] = []
        failures: list[Any] = []
        stop = threading.Event()
        with TestClient(example.app) as app:
            assert app.get("/healthz").json()["version"] == "v1"

            def traffic() -> None:
                while not stop.is_set():
                    r = app.post("/predict", json={"texts": ["the battery is great", "awful food"]})
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text))
                        return
                    served.extend(p["model_version"] for p in r.json())

            t = threading.Thread(target=traffic)
            t.start()
            while len(served) < 10:
                time.sleep(0.05)
            registry.register("sentiment", make_tiny_bert(tmp_path / "v2src", layers=1), version="v2",
                              preprocessing=PRE, parent="v1")
            registry.promote("sentiment", "v2", reason="test")
            deadline = time.monotonic() + 60
            while (not served or served[-1] != "v2") and time.monotonic() < deadline:
                time.sleep(0.05)
            n_after = len(served)
            while len(served) < n_after + 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            t.join(30)
        # leaving the app closed the collector, which flushed everything to the sidecar
        assert not failures
        assert served[0] == "v1" and served[-1] == "v2"
        rows = store.fetch_dicts("server_prediction_counts")
        counts = {r["model_version"]: r["n"] for r in rows}
        assert counts == {"v1": served.count("v1"), "v2": served.count("v2")}
        window = store.read_window("sentiment")
        assert set(window.column("predicted_label").to_pylist()) <= {"negative", "positive"}
        assert window.column("embedding").null_count == 0
        assert window.column("text").null_count == window.num_rows  # text stays private by default
    store.close()
