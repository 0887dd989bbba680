"""The embedding dimension of a model version: first accepted record, declared, reset
(HTTP route and CLI); a mismatch 422 names the record (issue 13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from monitor.errors import SchemaError
from monitor.server import create_app
from monitor.store import Store
from tests.server.helpers import AUTH, record, settings_for

DIM = "/v1/models/m/versions/v1/embedding-dim"


@pytest.fixture()
def client(tmp_path: Path) -> Any:
    app = create_app(settings_for(tmp_path), start_scheduler=False, enrich=False)
    with TestClient(app) as c:
        yield c


def test_stray_8d_first_record_then_reset(client: TestClient) -> None:
    assert client.get(DIM, headers=AUTH).json()["dim"] is None
    r = client.post("/v1/predictions", json={"records": [record(0, prefix="stray", dim=8)]}, headers=AUTH)
    assert r.status_code == 202
    assert client.get(DIM, headers=AUTH).json() | {"set_at": None} == {
        "model_name": "m", "model_version": "v1", "dim": 8, "origin": "first_record", "set_at": None}
    batch = [record(i, dim=384) for i in range(1, 4)]
    r = client.post("/v1/predictions", json={"records": batch}, headers=AUTH)
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert (err["row"], err["field"], err["event_id"]) == (0, "embedding", batch[0]["event_id"])
    assert "384" in err["message"] and "8" in err["message"]  # got and expected
    reset = client.delete(DIM, headers=AUTH).json()
    assert reset["previous_dim"] == 8 and reset["dim"] is None
    assert client.post("/v1/predictions", json={"records": batch}, headers=AUTH).status_code == 202
    assert client.get(DIM, headers=AUTH).json()["dim"] == 384  # fixed again by the first accepted


def test_declared_dim_wins_over_the_first_record(client: TestClient) -> None:
    r = client.put(DIM, json={"dim": 384}, headers=AUTH)
    assert r.status_code == 200 and r.json()["origin"] == "declared"
    r = client.post("/v1/predictions", json={"records": [record(0, dim=8)]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "embedding"
    for bad in ({"dim": 0}, {"dim": "384"}, {"dim": True}, {"dim": 10**9}, {"size": 3}, [384]):
        assert client.put(DIM, json=bad, headers=AUTH).status_code == 422, bad
    assert client.get(f"/v1/models/{'x' * 300}/versions/v1/embedding-dim", headers=AUTH).status_code == 422
    assert client.get(DIM).status_code == 401


def test_cli_models_dim_set_show_reset(tmp_path: Path) -> None:
    from monitor.cli import _register_all, app

    _register_all()
    db = tmp_path / "x.duckdb"
    runner = CliRunner()
    r = runner.invoke(app, ["models", "dim", "--model", "m", "--version", "v1", "--set", "384",
                            "--db", str(db)])
    assert r.exit_code == 0, r.output
    with Store(db) as store:
        assert store.embedding_dims() == {("m", "v1"): 384}
    r = runner.invoke(app, ["models", "dim", "-m", "m", "--version", "v1", "--db", str(db)])
    assert "384 (declared)" in r.output
    r = runner.invoke(app, ["models", "dim", "-m", "m", "--version", "v1", "--reset", "--db", str(db)])
    assert r.exit_code == 0 and "was 384" in r.output
    with Store(db) as store:
        assert store.embedding_dims() == {}


def test_a_version_registered_with_a_dim_refuses_other_dims(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from monitor.registry import Registry

    with Store(tmp_path / "r.duckdb") as store:
        Registry(store, tmp_path / "models").register("m", tiny_bert_dir, version="v1", embedding_dim=4)
        assert store.embedding_dim("m", "v1")["origin"] == "registry"  # type: ignore[index]
        assert store.insert_predictions([record(0, dim=4)]).accepted == 1
        with pytest.raises(SchemaError, match="dimension 8 differs from 4"):
            store.insert_predictions([record(1, dim=8)])


def test_cli_dim_through_a_running_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import _register_all, app
    from tests.server.helpers import TOKEN, ThreadServer

    _register_all()
    monkeypatch.setenv("SHIFTWATCH_TOKEN", TOKEN)
    with Store(tmp_path / "side.duckdb") as store:
        side = create_app(settings_for(tmp_path), store=store, start_scheduler=False, enrich=False)
        with ThreadServer(side) as server:
            runner = CliRunner()
            args = ["models", "dim", "-m", "m", "--version", "v1", "--url", server.base]
            assert runner.invoke(app, [*args, "--set", "16"]).exit_code == 0
            assert store.embedding_dims() == {("m", "v1"): 16}
            r = runner.invoke(app, args)
            assert "16 (declared)" in r.output, r.output
            assert runner.invoke(app, [*args, "--reset"]).exit_code == 0
            assert store.embedding_dims() == {}
            monkeypatch.setenv("SHIFTWATCH_TOKEN", "wrong")
            r = runner.invoke(app, args)
            assert r.exit_code != 0 and "401" in str(r.exception)
