"""``shiftwatch check`` (the one-shot cycle) retries a retrain refused for too few labelled rows,
as the sidecar's retry loop does, once the labels have arrived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli import _register_all, app
from monitor.errors import InsufficientLabels
from monitor.retrain.service import RetrainConfig, retrain
from monitor.retrain.trainer import TrainConfig
from monitor.store import Store
from tests.retrain.helpers import label_rows, retrain_world


def _summary(output: str) -> dict[str, Any]:
    """The cycle summary ``--json`` printed (model loading writes progress bars around it)."""
    return dict(json.loads(output[output.rindex('{"ok": '):].splitlines()[0]))


def test_check_starts_a_refused_retrain_again_once_the_labels_are_there(tmp_path: Path) -> None:
    if not any(c.name == "check" for c in app.registered_commands):
        _register_all()
    store, settings, _ = retrain_world(tmp_path, n_labelled=60, on_disk=True)
    config = RetrainConfig(train=TrainConfig(max_steps=6, lr=1e-2, eval_every=6, progress=False),
                           use_worker=False)
    with pytest.raises(InsufficientLabels):
        retrain(store, settings, "m", reason="drift alert", config=config)
    store.close()
    env = {"SHIFTWATCH_REGISTRY_DIR": str(settings.registry_dir)}
    args = ["check", "--db", str(settings.db_path), "--no-reports", "--json"]
    runner = CliRunner()

    short = runner.invoke(app, args, env=env)
    assert short.exit_code == 0, short.output
    summary = _summary(short.output)
    (item,) = summary["retrain_retry"]
    assert (item["found"], item["needed"], item["started_run_id"]) == (60, 100, None)
    assert "retrain_retry" in [j["job"] for j in summary["jobs"]]

    with Store(settings.db_path) as s:
        label_rows(s, 60, 50)
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    (item,) = _summary(done.output)["retrain_retry"]
    assert item["found"] == 110 and item["started_run_id"] is not None
    assert item["ended"] in ("promoted", "rejected", "undecided")  # ran to the end inside the command
    with Store(settings.db_path) as s:
        run = s.fetch_dicts("retrain_jobs_run", {"run_id": item["started_run_id"]})[0]
        assert run["status"] == item["ended"]
        assert run["reason"].startswith(f"retry of {item['refused_run_id']}")
        assert json.loads(run["metrics"])["train"]["steps"] == 6  # the refused run's config was reused
        assert s.fetch_dicts("retrain_jobs_open_refusals") == []

    again = runner.invoke(app, args, env=env)
    assert "retrain_retry" not in _summary(again.output)  # nothing left to retry
    dry = runner.invoke(app, ["check", "--db", str(settings.db_path), "--no-reports", "--dry-run"], env=env)
    assert dry.exit_code == 0 and "refused retrain" not in dry.output
