"""The operator routes (models, references, review, retrains, drift checks, reports, ingest/export, check)
under the app's lifespan, and the CLI talking to them through :class:`monitor.client.SidecarClient`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from monitor.cli.backend import LocalBackend, SidecarBackend
from monitor.client import SidecarClient
from monitor.errors import SidecarError
from monitor.server import create_app
from monitor.settings import Settings
from tests.retrain.helpers import sentences
from tests.server.helpers import AUTH, TOKEN, settings_for, write_world


def _world(tmp_path: Path) -> dict[str, Path]:
    """A tiny model directory, its original training data and a records file with text."""
    return write_world(tmp_path, n_train=200, n_prod=300)


@pytest.fixture()
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = settings_for(tmp_path)
    app = create_app(settings, start_scheduler=False, enrich=False)
    with TestClient(app) as c:
        yield c, settings


def test_operator_routes_need_the_token(app_client: tuple[TestClient, Settings]) -> None:
    c, _ = app_client
    for method, path in (("get", "/v1/models"), ("post", "/v1/models"), ("get", "/v1/references"),
                         ("post", "/v1/review/export"), ("post", "/v1/retrains"), ("get", "/v1/retrains/x"),
                         ("delete", "/v1/retrains/x"), ("post", "/v1/drift/checks"),
                         ("post", "/v1/reports/render"), ("post", "/v1/ingest"), ("post", "/v1/checks")):
        assert getattr(c, method)(path).status_code == 401, path


def test_routes_run_the_operations_and_answer_one_line_errors(
        tmp_path: Path, app_client: tuple[TestClient, Settings]) -> None:
    c, _settings = app_client
    w = _world(tmp_path)
    r = c.post("/v1/models", headers=AUTH, json={"directory": str(w["model"]), "name": "m",
                                                 "train_file": str(w["train"]), "labels": ["neg", "pos"],
                                                 "max_length": 32, "activate": True})
    assert r.status_code == 201 and r.json()["version"] == "v1" and r.json()["status"] == "active"
    assert c.post("/v1/models", headers=AUTH, json={"directory": str(w["model"]), "name": "m"}
                  ).json()["version"] == "v2"
    assert [v["version"] for v in c.get("/v1/models", headers=AUTH).json()["versions"]] == ["v1", "v2"]
    assert c.get("/v1/models/m/versions/active", headers=AUTH).json()["version"] == "v1"
    missing = c.get("/v1/models/m/versions/v9", headers=AUTH)
    assert missing.status_code == 400 and "v9" in missing.json()["detail"]
    assert c.post("/v1/models/m/promote", headers=AUTH, json={"version": "v2"}).json() == {
        "model_name": "m", "from_version": "v1", "to_version": "v2", "status": "active",
        "undelivered": []}
    assert c.post("/v1/models/m/rollback", headers=AUTH, json={}).json()["to_version"] == "v1"
    unknown = c.post("/v1/models/m/promote", headers=AUTH, json={"version": "v2", "bogus": 1})
    assert unknown.status_code == 422

    ing = c.post("/v1/ingest", headers=AUTH, json={"file": str(w["records"])}).json()
    assert ing == {"accepted": 300, "duplicates": 0, "skipped": []}
    ref = c.post("/v1/references", headers=AUTH, json={"name": "base", "model": "m", "last": 200}).json()
    assert ref == {"name": "base", "n_rows": 200, "model_name": "m", "model_version": "v1"}
    assert [x["name"] for x in c.get("/v1/references", headers=AUTH).json()["references"]] == ["base"]
    bad_ref = c.post("/v1/references", headers=AUTH, json={"name": "x", "last": 5})
    assert bad_ref.status_code == 400 and bad_ref.json()["detail"].startswith("give --from FILE")
    drift = c.post("/v1/drift/checks", headers=AUTH, json={
        "model": "m", "reference_name": "base", "last": 100, "signals": ["confidence"]}).json()
    assert drift["run_id"] and drift["signals"][0]["signal"] == "confidence"
    rendered = c.post("/v1/reports/render", headers=AUTH, json={"out": str(tmp_path / "html")}).json()
    assert Path(rendered["index"]).is_file()
    exported = c.post("/v1/exports", headers=AUTH, json={"out": str(tmp_path / "lake")}).json()
    assert exported["exported"] == 300
    queue = c.post("/v1/review/export", headers=AUTH, json={"out": str(tmp_path / "q.csv")}).json()
    assert queue["rows"] == 0 and (tmp_path / "q.csv").is_file()
    assert c.post("/v1/review/import", headers=AUTH, json={"file": str(tmp_path / "q.csv")}).json() == {
        "labeled": 0, "skipped": 0, "n_out_of_scope": 0, "out_of_scope": {},
        "summary": "imported 0 label(s); 0 row(s) left blank"}
    cycle = c.post("/v1/checks", headers=AUTH, json={"reports": False}).json()
    assert cycle["ok"] is True and cycle["dry_run"] is False
    assert any(j["job"] == "drift_check:m" for j in cycle["jobs"])


def test_retrain_routes_start_follow_refuse_a_second_and_cancel(
        tmp_path: Path, app_client: tuple[TestClient, Settings]) -> None:
    c, _settings = app_client
    w = _world(tmp_path)
    c.post("/v1/models", headers=AUTH, json={
        "directory": str(w["model"]), "name": "m", "train_file": str(w["train"]), "labels": ["neg", "pos"],
        "max_length": 32, "activate": True})
    c.post("/v1/ingest", headers=AUTH, json={"file": str(w["records"])})
    prod = sentences(300, seed=2, domain="food")
    c.post("/v1/labels", headers=AUTH, json={"labels": [{"event_id": f"e-{i:08d}", "label": prod.labels[i]}
                                                        for i in range(300)]})
    train: dict[str, Any] = {"max_steps": 8, "lr": 1e-2, "eval_every": 4}
    config: dict[str, Any] = {"use_worker": False, "min_labelled": 100, "train": train}
    dry = c.post("/v1/retrains", headers=AUTH, json={"model": "m", "dry_run": True, "config": config})
    assert dry.status_code == 200 and dry.json()["decision"] == "dry_run"
    assert dry.json()["metrics"]["plan"]["total_steps"] == 8

    started = c.post("/v1/retrains", headers=AUTH, json={"model": "m", "config": {
        **config, "train": {**train, "max_steps": 400}}})
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    busy = c.post("/v1/retrains", headers=AUTH, json={"model": "m", "config": config})
    assert busy.status_code == 409 and "already running" in busy.json()["detail"]
    cancel = c.delete(f"/v1/retrains/{run_id}", headers=AUTH)
    assert cancel.status_code == 202 and cancel.json()["state"] in ("cancelling", "cancelled")
    assert _until_done(c, run_id)["state"] == "cancelled"
    assert c.delete(f"/v1/retrains/{run_id}", headers=AUTH).status_code == 400  # already finished
    assert c.get("/v1/retrains/nope", headers=AUTH).status_code == 404

    second = c.post("/v1/retrains", headers=AUTH, json={"model": "m", "config": config}).json()["run_id"]
    done = _until_done(c, second)
    assert done["state"] in ("promoted", "rejected", "undecided")
    assert (done["step"], done["total_steps"]) == (8, 8)
    assert [r["run_id"] for r in c.get("/v1/retrains?model_name=m", headers=AUTH).json()["runs"]][:2] == [
        second, run_id]
    metrics = c.get("/metrics", headers=AUTH).text
    assert f'shiftwatch_retrain_progress{{model="m",run_id="{second}"}} 1.0' in metrics


def _until_done(c: TestClient, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = c.get(f"/v1/retrains/{run_id}", headers=AUTH).json()
        if run["state"] not in ("queued", "running", "cancelling"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"retrain {run_id} did not finish")


def test_local_and_sidecar_backends_give_the_same_answers(tmp_path: Path) -> None:
    w = _world(tmp_path)
    local = LocalBackend(settings_for(tmp_path / "local"))
    settings = settings_for(tmp_path / "remote")
    with TestClient(create_app(settings, start_scheduler=False, enrich=False)) as tc:
        remote = SidecarBackend(settings, SidecarClient("http://testserver", token=TOKEN, http=tc))
        answers: list[Any] = []
        for backend in (local, remote):
            backend.call("models_register", directory=str(w["model"]), name="m", labels=["neg", "pos"],
                         activate=True)
            backend.call("ingest_file", file=str(w["records"]))
            backend.call("reference_create", name="base", model="m", last=100)
            answers.append((
                [(v["version"], v["status"]) for v in backend.call("models_list")],
                backend.call("models_show", model="m", version="active")["version"],
                [(r["name"], r["n_rows"]) for r in backend.call("reference_list")],
                backend.call("ingest_file", file=str(w["records"])),
            ))
            with pytest.raises(Exception) as info:
                backend.call("promote", model="m", version="v7")
            answers.append(str(info.value))
        assert answers[0] == answers[2] and answers[1] == answers[3]
        assert answers[0][3] == {"accepted": 0, "duplicates": 300, "skipped": []}
        with pytest.raises(SidecarError) as err:
            remote.call("promote", model="m", version="v7")
        assert err.value.status == 400


def test_cli_commands_print_the_same_through_the_sidecar(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import discovery
    from monitor.cli import _register_all, app

    _register_all()
    w = _world(tmp_path)
    runner = CliRunner()
    settings = settings_for(tmp_path)
    db = ["--db", str(settings.db_path)]
    with TestClient(create_app(settings, start_scheduler=False, enrich=False)) as tc:
        # each command closes its client: hand out a fresh one over the running app
        monkeypatch.setattr(discovery, "find_sidecar", lambda s: SidecarClient(
            "http://testserver", token=TOKEN, http=TestClient(tc.app)))
        res = runner.invoke(app, ["models", "register", str(w["model"]), "--model", "m", "--activate",
                                  "--registry-dir", str(settings.registry_dir), *db])
        assert res.exit_code == 0, res.output
        assert "registered m v1 (active)" in res.output
        res = runner.invoke(app, ["ingest", str(w["records"]), *db])
        assert res.exit_code == 0 and "ingested 300 records" in res.output
        res = runner.invoke(app, ["promote", "v9", "--model", "m", *db])
        assert isinstance(res.exception, SidecarError) and res.exception.status == 400
        assert "v9" in str(res.exception)  # the registry's own message, as in local mode
        res = runner.invoke(app, ["models", "list", "--json", *db])
        assert [v["version"] for v in json.loads(res.output)] == ["v1"]
        res = runner.invoke(app, ["retrain", "status", "nope", *db])
        assert isinstance(res.exception, SidecarError) and "no retrain run 'nope'" in str(res.exception)


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("/v1/reports/render", b'{"out": "\\ud800"}', 422, "lone surrogate"),
    ("/v1/reports/render", b'{"out": "\\u0000", "model": " "}', 422, "control character"),
    ("/v1/checks", b'{"dry_run": true, "reports": false, "policy_file": "\\ud800"}', 422, "lone surrogate"),
    ("/v1/retrains", b'{"model": ";", "reason": "\\ud800"}', 422, "lone surrogate"),
    ("/v1/exports", b'{"out": "\\ud800"}', 422, "lone surrogate"),
    ("/v1/reports/render", json.dumps({"out": "x" * 300}).encode(), 400, "not a usable path"),
    ("/v1/reports/render", b'{"out": "/tmp/o", "run": "nope"}', 404, "no drift run 'nope'"),
])
def test_operator_routes_refuse_bad_input_with_a_4xx(app_client: tuple[TestClient, Settings], path: str,
                                                     body: bytes, status: int, says: str) -> None:
    """What the OpenAPI fuzzer found (500s and 503s for client input) stays a one-line 4xx."""
    c, _ = app_client
    r = c.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert says in r.text
