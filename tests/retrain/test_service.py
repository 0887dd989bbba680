"""retrain(): promote and reject end to end (tiny BERT, in process), the worker, the per-model lock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.errors import RetrainError
from monitor.registry import Registry, read_active_pointer
from monitor.retrain.evaluate import Guard
from monitor.retrain.service import RetrainConfig, retrain
from monitor.retrain.trainer import TrainConfig
from monitor.retrain.worker import TrainJob, model_lock, run_in_worker
from monitor.settings import Settings
from monitor.store import Store
from tests.conftest import make_tiny_bert
from tests.retrain.helpers import retrain_world, sentences


def _config(**kw: object) -> RetrainConfig:
    train = TrainConfig(max_steps=60, lr=1e-2, eval_every=20, progress=False)
    kw.setdefault("min_labelled", 100)
    return RetrainConfig(train=train, use_worker=False, **kw)  # type: ignore[arg-type]


def test_retrain_promotes_a_better_candidate_and_builds_a_reference(tmp_path: Path) -> None:
    store, settings, reg = retrain_world(tmp_path)
    out = retrain(store, settings, "m", reason="drift", config=_config())
    assert out.decision == "promoted", out.reasons
    assert (out.parent_version, out.candidate_version) == ("v1", "v2")
    assert reg.active("m").version == "v2"  # type: ignore[union-attr]
    assert read_active_pointer(reg.root, "m") == "v2"
    assert out.metrics["candidate"]["production"] > out.metrics["active"]["production"] + 0.01
    cand = reg.get("m", "v2")
    assert cand.parent_version == "v1" and cand.preprocessing.max_length == 32
    assert cand.metrics["evaluation"]["data"]["n_production_val"] == 40
    logs = store.fetch_dicts("retrain_training_logs", {"train_run_id": out.run_id})
    assert logs and logs[-1]["step"] == 60
    run = store.fetch_dicts("retrain_runs", {"model_name": "m"})[0]
    assert run["status"] == "promoted" and run["candidate_version"] == "v2"
    assert out.reference_name is not None
    n = store.fetchall_sql("SELECT n_rows FROM reference_sets WHERE name = $n", {"n": out.reference_name})
    # the labelled held-out rows (40 production, topped up to 50 from the original validation data)
    # first, then the 160 newest production texts, unlabelled
    assert cand.metrics["evaluation"]["data"]["n_production_val"] == 40
    assert n[0][0] == 50 + 160
    labelled = store.fetchall_sql("SELECT count(label), count(text) FROM reference_rows "
                                  "WHERE reference_name = $n", {"n": out.reference_name})
    assert labelled[0] == (50, 0)  # labels kept; text not (privacy default)
    assert out.promotion is not None and out.promotion.outcome == "promote"
    evidence = run["metrics"]["promotion"] if isinstance(run["metrics"], dict) else json.loads(
        run["metrics"])["promotion"]
    assert evidence["production"]["n"] == 40 and evidence["production"]["p_better"] <= 0.05


def test_retrain_keeps_an_unproven_candidate_in_shadow(tmp_path: Path) -> None:
    from monitor.retrain.service import pending_shadow

    store, settings, reg = retrain_world(tmp_path)
    cfg = RetrainConfig(train=TrainConfig(strategy="head", max_steps=6, progress=False), use_worker=False,
                        min_labelled=100, guard=Guard(max_forgetting=0.0))
    out = retrain(store, settings, "m", reason="drift", config=cfg)
    # margin 0: the candidate would have to be shown better on the original data; it is not, nor worse
    assert out.decision == "undecided", out.reasons
    assert "not excluded on the original data" in out.reasons[-2]
    assert out.promotion is not None and out.promotion.original is not None
    assert out.promotion.original.p_noninferior is not None and out.promotion.original.p_noninferior > 0.05
    assert reg.get("m", "v2").status == "candidate" and reg.active("m").version == "v1"  # type: ignore[union-attr]
    assert read_active_pointer(reg.root, "m") == "v1"
    assert pending_shadow(store) == [("m", "v2")]
    run = store.fetch_dicts("retrain_runs", {"model_name": "m"})[0]
    assert run["status"] == "undecided"
    assert not (reg.root / "m" / ".staging" / out.run_id).exists()
    # decided again on live traffic: the original-data evidence it lacks cannot come from there
    from monitor.retrain.service import shadow_evaluate

    _log_live_traffic(store, 60, after=reg.get("m", "v2").created_at)  # type: ignore[arg-type]
    again = shadow_evaluate(store, settings, "m", "v2", min_rows=60)
    assert again.decision in ("undecided", "rejected"), again.reasons
    if again.decision == "undecided":
        assert "not excluded on the original data" in again.reasons[-2]
        assert reg.get("m", "v2").metrics["shadow"]["min_rows"] >= 120  # backs off, no re-scoring per row
        assert pending_shadow(store) == [("m", "v2")]  # listed once, however often decided


def test_retrain_refuses_too_few_labelled_rows_and_records_the_failure(tmp_path: Path) -> None:
    store, settings, reg = retrain_world(tmp_path, n_labelled=30)
    with pytest.raises(RetrainError, match=r"found 30 \(70 more needed\)"):
        retrain(store, settings, "m", reason="drift", config=_config())
    run = store.fetch_dicts("retrain_runs", {"model_name": "m"})[0]
    assert run["status"] == "failed" and "70 more" in run["error"]
    assert [v.version for v in reg.versions("m")] == ["v1"]
    dry = retrain(store, settings, "m", reason="x", dry_run=True, config=_config(min_labelled=20))
    assert dry.decision == "dry_run" and dry.metrics["data"]["n_production_val"] == 8


def test_one_retrain_per_model_at_a_time(tmp_path: Path) -> None:
    with model_lock(tmp_path, "m"):
        with pytest.raises(RetrainError, match="already running"), model_lock(tmp_path, "m"):
            pass
        with model_lock(tmp_path, "other"):
            pass
    with model_lock(tmp_path, "m"):
        pass


@pytest.mark.slow
def test_worker_process_trains_streams_logs_and_times_out(tmp_path: Path) -> None:
    src = make_tiny_bert(tmp_path / "m")
    cfg = TrainConfig(strategy="head", max_steps=10, log_every=5, eval_every=5, progress=False)
    job = TrainJob(str(src), sentences(32, seed=1), sentences(8, seed=2), ("neg", "pos"), cfg,
                   str(tmp_path / "out"))
    rows: list[dict[str, object]] = []
    res = run_in_worker(job, timeout_s=300, log_sink=rows.extend)
    assert res.steps == 10 and (tmp_path / "out" / "model.safetensors").is_file()
    assert [r["step"] for r in rows] == [0, 5, 10]
    with pytest.raises(RetrainError, match="timed out"):
        run_in_worker(job, timeout_s=0.2)


def test_cli_register_promote_rollback(tmp_path: Path) -> None:
    from monitor.cli import _register_all, app

    _register_all()
    runner = CliRunner()
    common = ["--db", str(tmp_path / "db.duckdb"), "--registry-dir", str(tmp_path / "reg")]
    a, b = make_tiny_bert(tmp_path / "a"), make_tiny_bert(tmp_path / "b", layers=1)
    res = runner.invoke(app, ["models", "register", str(a), "--model", "m", "--activate", *common])
    assert res.exit_code == 0
    assert runner.invoke(app, ["models", "register", str(b), "-m", "m", *common]).exit_code == 0
    res = runner.invoke(app, ["promote", "v2", "--model", "m", *common])
    assert res.exit_code == 0 and "v1 -> v2" in res.output
    res = runner.invoke(app, ["rollback", "--model", "m", "--reason", "bad", *common])
    assert res.exit_code == 0 and "v2 -> v1" in res.output
    res = runner.invoke(app, ["models", "list", "--json", *common])
    assert [(v["version"], v["status"]) for v in json.loads(res.output)] == [("v1", "active"),
                                                                            ("v2", "rejected")]
    assert read_active_pointer(tmp_path / "reg", "m") == "v1"


def _words(text: str) -> str:
    """Text without the box drawing and line wrapping of a rich error panel."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())


def test_cli_register_still_takes_the_deprecated_name_spelling(tmp_path: Path) -> None:
    from monitor.cli import _register_all, app

    _register_all()
    runner = CliRunner()
    common = ["--db", str(tmp_path / "db.duckdb"), "--registry-dir", str(tmp_path / "reg")]
    src = make_tiny_bert(tmp_path / "a")
    res = runner.invoke(app, ["models", "register", str(src), "--name", "m", "--activate", *common])
    assert res.exit_code == 0 and "registered m v1 (active)" in res.stdout
    assert res.stderr.splitlines() == ["warning: --name is deprecated; use --model"]
    res = runner.invoke(app, ["models", "register", str(src), "--model", "m", *common])
    assert res.exit_code == 0 and "registered m v2" in res.stdout and res.stderr == ""
    res = runner.invoke(app, ["models", "register", str(src), "--model", "m", "--name", "n", *common])
    assert res.exit_code == 2 and "give --model only" in _words(res.stderr)
    res = runner.invoke(app, ["models", "register", str(src), *common])
    assert res.exit_code == 2 and "'--model': missing" in _words(res.stderr)
    help_text = runner.invoke(app, ["models", "register", "--help"]).stdout
    assert "--model" in help_text and "--name" not in help_text


def _shadow_candidate(tmp_path: Path, *, min_rows: int = 50,
                      on_disk: bool = False) -> tuple[Store, Settings, Registry]:
    """v1 active, v2 a retrained candidate that passed the test, kept for shadow evaluation (alpha 0.1)."""
    store, settings, reg = retrain_world(tmp_path, on_disk=on_disk)
    out = retrain(store, settings, "m", reason="drift", config=_config(
        shadow=True, shadow_min_rows=min_rows, guard=Guard(alpha=0.1)))
    assert out.decision == "shadow", out.reasons
    assert reg.get("m", "v2").status == "candidate" and reg.active("m").version == "v1"  # type: ignore[union-attr]
    return store, settings, reg


def _log_live_traffic(store: Store, n: int, *, after: datetime, noise: float = 0.0) -> None:
    live = sentences(n, seed=9, domain="food", noise=noise)
    store.insert_predictions([
        {"event_id": f"live{i}", "ts": after + timedelta(seconds=i + 1), "model_name": "m",
         "model_version": "v1", "predicted_label": "neg", "confidence": 0.5, "text": t}
        for i, t in enumerate(live.texts)])
    store.insert_labels([{"event_id": f"live{i}", "label": y} for i, y in enumerate(live.labels)])


def test_shadow_candidate_is_judged_on_traffic_logged_after_it(tmp_path: Path) -> None:
    from monitor.persist.references import list_references
    from monitor.retrain.service import ShadowNotReady, check_pending_shadow, pending_shadow, shadow_evaluate

    store, settings, reg = _shadow_candidate(tmp_path)
    assert pending_shadow(store) == [("m", "v2")]
    runs_before = len(store.fetch_dicts("retrain_runs", {"model_name": "m"}))
    # The 160 labelled rows it was trained on were logged before it existed: they do not count.
    with pytest.raises(ShadowNotReady, match="needs 50 labelled rows"):
        shadow_evaluate(store, settings, "m", "v2")
    [waiting] = check_pending_shadow(store, settings)
    assert waiting.outcome is None and "found 0" in (waiting.waiting or "")
    # Waiting records nothing.
    assert len(store.fetch_dicts("retrain_runs", {"model_name": "m"})) == runs_before

    _log_live_traffic(store, 60, after=reg.get("m", "v2").created_at)  # type: ignore[arg-type]
    done = shadow_evaluate(store, settings, "m", "v2")  # the retrain's lenient guard is the one applied
    assert done.decision == "promoted" and done.metrics["n_live"] == 60
    assert done.promotion is not None and done.promotion.alpha == 0.1  # the retrain's guard
    assert done.promotion.outcome == "promote" and done.promotion.original is not None
    assert read_active_pointer(reg.root, "m") == "v2" and reg.active("m").version == "v2"  # type: ignore[union-attr]
    assert done.reference_name is not None
    refs = [r["name"] for r in list_references(store, "m") if r["model_version"] == "v2"]
    assert refs == [done.reference_name]
    runs = store.fetch_dicts("retrain_runs", {"model_name": "m"})
    assert len(runs) == runs_before + 1
    assert (runs[0]["status"], runs[0]["reason"]) == ("promoted", "shadow evaluation of v2")
    assert pending_shadow(store) == []


def test_shadow_rows_are_picked_by_ingestion_not_by_their_timestamps(tmp_path: Path) -> None:
    """Rows stamped after the candidate but ingested before it (a client clock ahead of the
    sidecar's, or the demo's simulated time) are rows the retrain could train on: not shadow rows."""
    from monitor.retrain.service import ShadowNotReady, shadow_evaluate

    store, settings, reg = retrain_world(tmp_path)
    ahead = datetime.now().astimezone() + timedelta(days=1)
    early = sentences(60, seed=9, domain="food")
    store.insert_predictions([
        {"event_id": f"early{i}", "ts": ahead + timedelta(seconds=i), "model_name": "m",
         "model_version": "v1", "predicted_label": "neg", "confidence": 0.5, "text": t}
        for i, t in enumerate(early.texts)])
    store.insert_labels([{"event_id": f"early{i}", "label": y} for i, y in enumerate(early.labels)])
    out = retrain(store, settings, "m", reason="drift", config=_config(
        shadow=True, shadow_min_rows=50, guard=Guard(alpha=0.1)))
    assert out.decision == "shadow", out.reasons
    cand = reg.get("m", "v2")
    assert cand.created_at is not None and cand.created_at < ahead  # stamped after it, ingested before
    with pytest.raises(ShadowNotReady, match="found 0"):
        shadow_evaluate(store, settings, "m", "v2")

    _log_live_traffic(store, 60, after=cand.created_at)
    done = shadow_evaluate(store, settings, "m", "v2")
    assert done.metrics["n_live"] == 60  # only the rows that arrived after it, not the 60 early ones


def test_scheduler_cycle_rejects_a_shadow_candidate_worse_on_live_traffic(tmp_path: Path) -> None:
    from monitor.scheduler import Scheduler

    store, settings, reg = _shadow_candidate(tmp_path, min_rows=30)
    cand = reg.get("m", "v2")
    sched = Scheduler(settings, store)
    assert sched.shadow_pending()
    [waiting] = sched.evaluate_shadow()
    assert waiting["decision"] == "waiting" and "needs 30" in waiting["waiting"]

    # live labels flipped: the candidate, right on the training distribution, is now mostly wrong
    _log_live_traffic(store, 40, after=cand.created_at, noise=1.0)  # type: ignore[arg-type]
    cycle = sched.run_cycle(reports=False)  # the sidecar's periodic cycle runs the shadow job
    [job] = [j for j in cycle.jobs if j.job == "shadow_evaluate"]
    assert job.ok, job.error
    [decided] = job.result
    assert decided["decision"] == "rejected"
    assert any("significantly worse on production" in r for r in decided["outcome"]["reasons"])
    assert reg.get("m", "v2").status == "rejected" and reg.active("m").version == "v1"  # type: ignore[union-attr]
    assert read_active_pointer(reg.root, "m") == "v1"
    assert not sched.shadow_pending()


def test_cli_models_shadow_waits_then_decides(tmp_path: Path) -> None:
    from monitor.cli import _register_all, app

    _register_all()
    store, settings, reg = _shadow_candidate(tmp_path, on_disk=True)
    created = reg.get("m", "v2").created_at
    store.close()
    runner = CliRunner()
    common = ["--db", str(settings.db_path), "--registry-dir", str(settings.registry_dir)]
    res = runner.invoke(app, ["models", "shadow", *common])
    assert res.exit_code == 0, res.output
    assert "m v2: waiting" in res.output and "needs 50 labelled rows" in res.output
    res = runner.invoke(app, ["models", "shadow", "v2", *common])
    assert res.exit_code == 2 and "needs --model" in res.output

    with Store(settings.db_path) as store:
        _log_live_traffic(store, 60, after=created)  # type: ignore[arg-type]
    res = runner.invoke(app, ["models", "shadow", "--model", "m", "--json", *common])
    assert res.exit_code == 0, res.output
    [check] = json.loads(res.stdout)
    assert (check["version"], check["decision"]) == ("v2", "promoted")
    assert read_active_pointer(settings.registry_dir, "m") == "v2"
    res = runner.invoke(app, ["models", "shadow", *common])
    assert res.exit_code == 0 and "no candidates waiting" in res.output


def test_retrain_config_from_policy_mapping_builds_nested_configs() -> None:
    from monitor.errors import ConfigError
    from monitor.retrain.evaluate import Guard
    from monitor.retrain.service import RetrainConfig
    from monitor.retrain.trainer import TrainConfig

    cfg = RetrainConfig.from_dict({"production_share": 0.5, "train": {"max_steps": 12, "lr": 3e-5},
                                   "guard": {"min_improvement": 0.02}})
    assert isinstance(cfg.train, TrainConfig) and cfg.train.max_steps == 12 and cfg.train.lr == 3e-5
    assert cfg.train.progress is False
    assert cfg.guard == Guard(min_improvement=0.02)
    assert cfg.production_share == 0.5
    with pytest.raises(ConfigError, match="shadow_min_rows"):
        RetrainConfig.from_dict({"shadow_min_rows": 0})
    with pytest.raises(ConfigError, match=r"train.*max_stepz"):
        RetrainConfig.from_dict({"train": {"max_stepz": 3}})
    with pytest.raises(ConfigError, match="unknown field"):
        RetrainConfig.from_dict({"share": 0.5})
