"""Background retrains: progress from the trainer's callback, cancel, one per model, retry when labels arrive,
the dry run's plan and estimate, and the Prometheus gauges."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import InsufficientLabels, RetrainCancelled
from monitor.retrain.background import RetrainBusy, RetrainJobs, labelled_count
from monitor.retrain.service import RetrainConfig, retrain
from monitor.retrain.trainer import TrainConfig
from monitor.store import Store
from tests.retrain.helpers import label_rows, retrain_world

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _config(max_steps: int = 12, **kw: object) -> RetrainConfig:
    train = TrainConfig(max_steps=max_steps, lr=1e-2, eval_every=6, progress=False)
    kw.setdefault("min_labelled", 100)
    return RetrainConfig(train=train, use_worker=False, **kw)  # type: ignore[arg-type]


def test_background_retrain_reports_progress_from_the_trainer_and_records_the_outcome(tmp_path: Path) -> None:
    store, settings, reg = retrain_world(tmp_path)
    jobs = RetrainJobs(store, settings)
    started = jobs.start("m", reason="test", config=_config(max_steps=12))
    assert jobs.wait(started.run_id, timeout=300)
    run = jobs.get(started.run_id)
    assert run["state"] in ("promoted", "rejected", "undecided")
    assert run["status"] == run["state"] and run["finished_at"] is not None
    assert (run["step"], run["total_steps"], run["fraction"]) == (12, 12, 1.0)
    assert run["phases"] >= 2 and run["phase"] == run["phases"] - 1  # gradual: the last phase ran last
    assert run["eta_s"] is None and run["elapsed_s"] > 0
    assert reg.get("m", "v2").parent_version == "v1"
    # the runs listing has it too, newest first, and the gauges show it done
    assert jobs.runs("m")[0]["run_id"] == started.run_id
    text = _scrape(jobs)
    assert f'shiftwatch_retrain_progress{{model="m",run_id="{started.run_id}"}} 1.0' in text
    state = run["state"]
    assert f'shiftwatch_retrain_state{{model="m",run_id="{started.run_id}",state="{state}"}} 1.0' in text
    store.close()


def _scrape(jobs: RetrainJobs) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from monitor.retrain.background import register_metrics

    registry = CollectorRegistry()
    register_metrics(jobs, registry)
    return generate_latest(registry).decode()


def test_cancel_between_steps_records_cancelled_and_registers_nothing(tmp_path: Path) -> None:
    store, settings, reg = retrain_world(tmp_path)
    seen: list[int] = []
    with pytest.raises(RetrainCancelled, match="after step 3 of 12"):
        retrain(store, settings, "m", reason="test", config=_config(max_steps=12), run_id="r-cancel",
                on_step=lambda step, total, phase, phases: seen.append(step), cancel=lambda: len(seen) > 3)
    assert seen == [0, 1, 2, 3]
    row = store.fetch_dicts("retrain_jobs_run", {"run_id": "r-cancel"})[0]
    assert row["status"] == "cancelled" and row["candidate_version"] is None
    assert [v.version for v in reg.versions("m")] == ["v1"]
    assert not any((settings.registry_dir / "m" / ".staging").glob("*"))
    store.close()


def test_a_cancelled_background_run_and_one_retrain_per_model(tmp_path: Path) -> None:
    store, settings, _ = retrain_world(tmp_path)
    jobs = RetrainJobs(store, settings)
    first = jobs.start("m", reason="first", config=_config(max_steps=200))
    with pytest.raises(RetrainBusy, match="already running"):
        jobs.start("m", reason="second", config=_config())
    jobs.cancel(first.run_id)
    assert jobs.wait(first.run_id, timeout=300)
    run = jobs.get(first.run_id)
    assert run["state"] == "cancelled" and "cancelled" in (run["error"] or "")
    # the model is free again
    again = jobs.start("m", reason="third", config=_config(max_steps=6))
    assert jobs.wait(again.run_id, timeout=300)
    assert jobs.get(again.run_id)["state"] in ("promoted", "rejected", "undecided")
    store.close()


def test_a_run_refused_for_too_few_labels_is_started_again_once_they_arrive(tmp_path: Path) -> None:
    store, settings, _ = retrain_world(tmp_path, n_labelled=60)
    with pytest.raises(InsufficientLabels, match=r"needs at least 100 .* found 60") as info:
        retrain(store, settings, "m", reason="drift alert", config=_config(max_steps=6))
    assert (info.value.needed, info.value.found) == (100, 60)
    jobs = RetrainJobs(store, settings)
    assert jobs.retry_refused() == [{"model_name": "m", "refused_run_id": _refused(store), "needed": 100,
                                     "found": 60, "started_run_id": None}]
    label_rows(store, 60, 50)
    assert labelled_count(store, settings, "m") == 110
    (item,) = jobs.retry_refused()
    assert item["found"] == 110 and item["started_run_id"] is not None
    assert jobs.wait(item["started_run_id"], timeout=300)
    run = jobs.get(item["started_run_id"])
    assert run["state"] in ("promoted", "rejected", "undecided")
    assert run["reason"].startswith(f"retry of {item['refused_run_id']}") and "drift alert" in run["reason"]
    assert json.loads(store.fetch_dicts("retrain_jobs_run", {"run_id": run["run_id"]})[0]["metrics"])[
        "train"]["steps"] == 6  # the refused run's config (max_steps=6) was reused
    assert jobs.retry_refused() == []  # closed
    store.close()


def _refused(store: Store) -> str:
    return str(store.fetch_dicts("retrain_jobs_open_refusals")[0]["run_id"])


def test_dry_run_states_steps_phases_and_an_estimate_from_a_measured_or_the_last_step_time(
        tmp_path: Path) -> None:
    store, settings, _ = retrain_world(tmp_path)
    out = retrain(store, settings, "m", reason="plan", dry_run=True, config=_config(max_steps=40))
    plan = out.metrics["plan"]
    assert plan["total_steps"] == 40 == sum(plan["steps_per_phase"])
    assert plan["phases"] == len(plan["steps_per_phase"]) >= 2
    assert plan["seconds_per_step"] > 0
    assert plan["estimated_s"] == pytest.approx(40 * plan["seconds_per_step"])
    assert plan["step_time_source"].startswith("2 timed training steps")
    assert "40 steps" in out.reasons[0] and "estimated training time" in out.reasons[1]
    trained = retrain(store, settings, "m", reason="real", config=_config(max_steps=6))
    again = retrain(store, settings, "m", reason="plan", dry_run=True, config=_config(max_steps=40))
    assert again.metrics["plan"]["step_time_source"].startswith(f"the last training run {trained.run_id}")
    wall = trained.metrics["train"]["wall_s"]
    assert again.metrics["plan"]["seconds_per_step"] == pytest.approx(wall / 6)
    store.close()


def test_the_policy_retrain_action_hands_its_run_to_the_attached_background_jobs(tmp_path: Path) -> None:
    from monitor.actions.base import ActionContext
    from monitor.actions.retrain import RetrainAction
    from monitor.retrain.background import jobs_for
    from monitor.services import LocalModelServices

    store, settings, _ = retrain_world(tmp_path)
    jobs = RetrainJobs(store, settings).attach()
    assert jobs_for(store) is jobs
    action = RetrainAction({"config": {"use_worker": False, "train": {"max_steps": 6}}})
    alert = {"model_name": "m", "rule": "r", "run_id": "d1", "alert_id": "a1"}
    out = action.run(ActionContext(store=store, settings=settings, alert=alert, now=T0,
                                   services=LocalModelServices(store, settings)), dry_run=False)
    assert out.status == "ok" and out.detail["retrain"]["background"] is True
    run_id = out.detail["retrain"]["run_id"]
    assert jobs.wait(run_id, timeout=300)
    run = jobs.get(run_id)
    assert run["state"] in ("promoted", "rejected", "undecided") and "policy rule r" in run["reason"]
    again = action.run(ActionContext(store=store, settings=settings, alert=alert, now=T0,
                                   services=LocalModelServices(store, settings)), dry_run=False)
    assert again.status == "ok"  # the first run is over: the model is free
    assert jobs.wait(again.detail["retrain"]["run_id"], timeout=300)
    jobs.shutdown()
    assert jobs_for(store) is None
    store.close()
