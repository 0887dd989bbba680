"""The scheduler: one seeded loop drift → policy → actions end to end; failures do not stop it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collectors.schema import records_to_table
from monitor.persist.references import create_reference
from monitor.policy import Policy, load_policy, parse_policy
from monitor.scheduler import Scheduler
from monitor.settings import Settings
from monitor.store import Store
from tests.ops.conftest import T0, Receiver, make_records, seed_reference

SHIFTED = {"shift": 0.8, "conf_a": 3.0, "conf_b": 3.0, "p_positive": 0.8}


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(db_path=tmp_path / "ops.duckdb", reports_dir=tmp_path / "reports",
                    export_dir=tmp_path / "export", registry_dir=tmp_path / "models",
                    spool_dir=tmp_path / "spool", **{"window_size": 300, **kw})


def default_with(receiver: Receiver) -> Policy:
    policy = load_policy(None)
    notify = {**policy.actions["notify"], "url": receiver.url}
    return policy.model_copy(update={"actions": {**policy.actions, "notify": notify}})


def one_window_with(receiver: Receiver) -> Policy:
    """A notify-only rule that fires on one window (the shipped policy needs two)."""
    policy = parse_policy("rules:\n  - name: embedding-drift\n    when: {all: [{signal: embedding, "
                          "corrected: true}]}\n    actions: [notify]\n")
    notify = {"url": receiver.url, "backoff_s": 0.0, "retries": 0}
    return policy.model_copy(update={"actions": {**policy.actions, "notify": notify}})


def count(store: Store, table: str) -> int:
    return int(store.fetchall_sql(f"SELECT count(*) FROM {table}")[0][0])


def test_seeded_loop_runs_drift_policy_and_actions_end_to_end(store: Store, tmp_path: Path,
                                                             receiver: Receiver) -> None:
    seed_reference(store)
    sched = Scheduler(settings_for(tmp_path), store, policy=default_with(receiver), clock=lambda: T0)

    # window 1: shifted embeddings, lower confidence, skewed classes
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    first = sched.run_cycle(reports=False)
    assert first.ok, first.to_dict()
    # nothing fired yet, so nothing waits in the outbox and no delivery run is needed
    assert [j.job for j in first.jobs] == ["drift_check:sentiment", "evaluate_policy:sentiment"]
    (run1,) = first.drift_runs
    drifted, n_current = store.fetchall_sql("SELECT drifted, n_current FROM drift_runs WHERE run_id = $r",
                                            {"r": run1})[0]
    assert drifted is True and n_current == 300
    # one window never alerts under the shipped policy: every rule needs two in a row
    assert first.decisions == () or list(first.decisions) == []
    assert list(first.actions) == [] and receiver.requests == []

    # window 2: the shift persists → correlated evidence for two consecutive windows
    store.insert_predictions(make_records(300, seed=3, start=T0 + timedelta(hours=1), **SHIFTED))
    second = sched.run_cycle(reports=False)
    (run2,) = second.drift_runs
    assert [j.job for j in second.jobs] == ["drift_check:sentiment", "evaluate_policy:sentiment",
                                            "deliver_notifications"]
    outcomes = {d.rule: d.outcome for d in second.decisions}
    assert outcomes == {"drift": "fired", "correlated-drift": "fired"}
    acts = {a.kind: a for a in second.actions}
    assert acts["notify"].status == "ok" and acts["review"].status == "ok"
    assert acts["retrain"].status == "failed"  # no registered model: recorded, not raised
    assert "no active version" in acts["retrain"].detail["error"]
    by_rule = {r["json"]["alert"]["rule"]: r["json"]["alert"] for r in receiver.requests}
    assert len(receiver.requests) == 2 and set(by_rule) == {"drift", "correlated-drift"}
    alert = by_rule["correlated-drift"]
    assert [w["run_id"] for w in alert["evidence"]["windows"]] == [run1, run2]
    assert alert["diagnosis"]["kind"] in ("covariate", "out_of_scope", "label_prior")

    queued = store.fetchall_sql(
        "SELECT reason, count(*), min(run_id) FROM review_queue GROUP BY 1 ORDER BY 1")
    assert queued == [("high_entropy", 20, run2), ("low_confidence", 20, run2), ("most_shifted", 20, run2)]
    window_ids = {r[0] for r in store.fetchall_sql(
        "SELECT event_id FROM predictions WHERE ts >= $s", {"s": T0 + timedelta(hours=1)})}
    assert {r[0] for r in store.fetchall_sql("SELECT event_id FROM review_queue")} <= window_ids

    assert count(store, "alerts") == 2
    assert store.fetchall_sql("SELECT rule, outcome, run_id = $r2 FROM policy_decisions ORDER BY ALL",
                              {"r2": run2}) == [("correlated-drift", "fired", True),
                                                ("drift", "fired", True)]
    assert store.fetchall_sql("SELECT DISTINCT status FROM job_runs") == [("ok",)]

    # no new data: nothing to check; re-judging the same window repeats nothing
    third = sched.run_cycle(reports=False)
    assert third.drift_runs == () and third.skipped == {"sentiment": "no complete new window"}
    decisions, records = sched.evaluate_run(run2)
    assert {d.rule for d in decisions} == {"drift", "correlated-drift"}
    assert all(r.reused for r in records if r.status == "ok")
    assert len(receiver.requests) == 2 and count(store, "alerts") == 2 and count(store, "review_queue") == 60
    assert count(store, "actions") == 4


def test_a_failing_job_is_recorded_and_the_next_ones_still_run(store: Store, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0, model="aaa-broken"))
    store.insert_predictions(make_records(300, seed=3, start=T0, **SHIFTED))
    sched = Scheduler(settings_for(tmp_path), store, clock=lambda: T0,
                      policy=parse_policy("rules:\n  - name: r\n    when: {all: [{signal: embedding, "
                                          "drifted: true}]}\n"))
    real = sched.check_windows

    def check(model_name: str, model_version: str) -> Any:
        if model_name == "aaa-broken":
            raise RuntimeError("disk on fire")
        return real(model_name, model_version)

    rendered: list[Path] = []
    monkeypatch.setattr(sched, "check_windows", check)
    monkeypatch.setattr(sched, "render_check", lambda wc: rendered.append(Path(wc.run_id)) or wc.run_id)
    monkeypatch.setattr(sched, "render_reports", lambda: rendered.append(Path("index.html")) or "index.html")
    result = sched.run_cycle(reports=True)
    assert [(j.job, j.status) for j in result.jobs] == [
        ("drift_check:aaa-broken", "failed"), ("drift_check:sentiment", "ok"),
        ("evaluate_policy:sentiment", "ok"), ("render_run:sentiment", "ok"), ("render_reports", "ok")]
    assert not result.ok and len(result.drift_runs) == 1 and rendered
    rows = store.fetch_dicts("ops_job_runs", {"prefix": "drift_check:aaa"})
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "RuntimeError: disk on fire"
    # the next cycle still runs the failing job (and records it again)
    again = sched.run_cycle(reports=False)
    assert [(j.job, j.status) for j in again.jobs] == [("drift_check:aaa-broken", "failed"),
                                                       ("drift_check:sentiment", "ok")]


def test_background_scheduler_survives_a_failing_run(store: Store, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=3, start=T0))
    sched = Scheduler(settings_for(tmp_path, drift_interval_s=0.2), store, clock=lambda: T0,
                      policy=parse_policy("rules:\n  - name: r\n    when: {all: [{signal: embedding, "
                                          "drifted: true}]}\n"))
    calls: list[int] = []
    real = sched.check_windows

    def flaky(model_name: str, model_version: str) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        return real(model_name, model_version)

    monkeypatch.setattr(sched, "check_windows", flaky)
    sched.start()
    try:
        assert set(sched.jobs()) == {"drift_check", "deliver_notifications", "render_reports", "retention"}
        deadline = time.monotonic() + 60
        statuses: list[str] = []
        while time.monotonic() < deadline:
            statuses = [r["status"] for r in store.fetch_dicts("ops_job_runs", {"prefix": "drift_check:"})]
            if len(statuses) >= 2 and statuses[1] != "running":
                break
            time.sleep(0.1)
    finally:
        sched.shutdown()
    assert statuses[:2] == ["failed", "ok"]
    assert count(store, "drift_runs") == 1 and not sched.running
    sched.shutdown()  # idempotent


def test_count_windows_tumble_and_backlog_is_capped(store: Store, tmp_path: Path) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(250, seed=4, start=T0))
    sched = Scheduler(settings_for(tmp_path, window_size=100), store, max_windows_per_check=2,
                      signals=["class_distribution"], clock=lambda: T0)
    windows = sched.pending_windows("sentiment", "v1")
    assert windows == [(T0, T0 + timedelta(seconds=100)), (T0 + timedelta(seconds=100),
                                                          T0 + timedelta(seconds=200))]
    runs, _ = sched.check_model("sentiment", "v1")
    assert [r[0] for r in store.fetchall_sql("SELECT n_current FROM drift_runs ORDER BY window_start")] == [
        100, 100]
    assert len(runs) == 2 and sched.pending_windows("sentiment", "v1") == []
    store.insert_predictions(make_records(550, seed=5, start=T0 + timedelta(hours=1)))
    pending = sched.pending_windows("sentiment", "v1")  # 600 new rows = 6 windows, newest 2 kept
    assert len(pending) == 2 and pending[-1][0] == T0 + timedelta(hours=1, seconds=450)


def test_time_windows_are_aligned_and_complete(store: Store, tmp_path: Path) -> None:
    seed_reference(store)
    for k in range(4):
        store.insert_predictions(make_records(60, seed=10 + k, start=T0 + timedelta(minutes=10 * k)))
    now = [T0 + timedelta(minutes=41)]
    sched = Scheduler(settings_for(tmp_path, window_minutes=10), store, max_windows_per_check=10,
                      signals=["class_distribution"], clock=lambda: now[0])
    assert sched.pending_windows("sentiment", "v1") == [
        (T0 + timedelta(minutes=10 * k), T0 + timedelta(minutes=10 * (k + 1))) for k in range(4)]
    sched.check_model("sentiment", "v1")
    assert sched.pending_windows("sentiment", "v1") == []
    store.insert_predictions(make_records(60, seed=20, start=T0 + timedelta(minutes=52)))
    now[0] = T0 + timedelta(minutes=59)
    assert sched.pending_windows("sentiment", "v1") == []  # [12:50, 13:00) is not complete yet
    now[0] = T0 + timedelta(minutes=61)
    assert sched.pending_windows("sentiment", "v1") == [
        (T0 + timedelta(minutes=50), T0 + timedelta(minutes=60))]


def test_dry_run_records_decisions_and_performs_nothing(store: Store, tmp_path: Path,
                                                        receiver: Receiver) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    sched = Scheduler(settings_for(tmp_path, dry_run=True), store, policy=one_window_with(receiver),
                      clock=lambda: T0)
    result = sched.run_cycle(reports=False)
    assert [(a.kind, a.status) for a in result.actions] == [("notify", "dry_run")]
    assert receiver.requests == [] and count(store, "alerts") == 1
    keys = store.fetchall_sql("SELECT idempotency_key LIKE '%|dry_run', dry_run FROM actions")
    assert keys == [(True, True)]


def test_health_metrics_feed_policy_conditions(store: Store, tmp_path: Path) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0))  # latency ~ Gamma(4, 5) ms
    policy = parse_policy("rules:\n  - name: slow\n    when: {all: [{metric: latency_p99_ms, gt: 5}]}\n"
                          "  - name: very-slow\n    when: {all: [{metric: latency_p99_ms, gt: 5000}]}\n")
    sched = Scheduler(settings_for(tmp_path), store, policy=policy, clock=lambda: T0)
    result = sched.run_cycle(reports=False)
    assert [d.rule for d in result.decisions] == ["slow"]
    p99 = result.decisions[0].evidence["windows"][0]["when"]["all"][0]["value"]
    assert 5 < p99 < 5000


def test_retention_exports_then_deletes_old_records(store: Store, tmp_path: Path) -> None:
    store.insert_predictions(make_records(40, seed=1, start=T0 - timedelta(days=40)))
    store.insert_predictions(make_records(30, seed=2, start=T0))
    sched = Scheduler(settings_for(tmp_path, retention_days=30), store, clock=lambda: T0)
    assert sched.apply_retention()["exported"] == 40
    assert count(store, "predictions") == 30
    files = list((tmp_path / "export").rglob("*.parquet"))
    assert files and all("model_name=sentiment" in str(f) for f in files)
    import pyarrow.parquet as pq

    assert sum(pq.read_metadata(f).num_rows for f in files) == 40
    assert sched.apply_retention()["exported"] == 0


def test_models_without_a_reference_are_skipped_not_failed(store: Store, tmp_path: Path) -> None:
    store.insert_predictions(make_records(300, seed=2, start=T0))
    result = Scheduler(settings_for(tmp_path), store, clock=lambda: T0).run_cycle(reports=False)
    assert result.ok and result.drift_runs == ()
    assert result.skipped == {"sentiment": "no reference set for version v1"}


def test_window_end_to_end_with_real_reports(store: Store, tmp_path: Path) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    sched = Scheduler(settings_for(tmp_path), store, clock=lambda: T0,
                      policy=parse_policy("rules:\n  - name: r\n    when: {all: [{signal: embedding, "
                                          "drifted: true}]}\n"))
    result = sched.run_cycle(reports=True)
    assert result.jobs[-1].job == "render_reports"
    assert result.jobs[-1].ok, result.jobs[-1].error
    assert Path(result.jobs[-1].result).exists()


def test_alert_timestamps_are_the_clock(store: Store, tmp_path: Path, receiver: Receiver) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    at = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    Scheduler(settings_for(tmp_path), store, policy=one_window_with(receiver),
              clock=lambda: at).run_cycle(reports=False)
    assert receiver.requests[0]["json"]["alert"]["created_at"] == at.isoformat()


def test_sidecar_lifespan_starts_and_stops_the_real_scheduler(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from monitor.server import create_app

    settings = settings_for(tmp_path, drift_interval_s=0.2, token="t")  # a sidecar needs a token
    with Store(settings.db_path) as store:
        seed_reference(store)
        store.insert_predictions(make_records(300, seed=2, start=T0))
        with TestClient(create_app(settings, store=store, start_scheduler=True, enrich=False)) as client:
            assert client.get("/healthz").status_code == 200
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and count(store, "drift_runs") == 0:
                time.sleep(0.1)
        assert count(store, "drift_runs") == 1  # the scheduled drift_check ran inside the sidecar
        jobs = store.fetch_dicts("ops_job_runs", {"prefix": "drift_check:"})
        assert jobs and jobs[0]["status"] == "ok"


def _promoted_world(store: Store, tmp_path: Path, tiny_bert_dir: Path, *, right: str, share: float,
                    text: bool = True) -> tuple[Any, datetime]:
    """v1 (a tiny classifier) active, then v2 = v1 with its head flipped, promoted over it; v2's
    labelled reference (its own predictions, 90 % right) and one window of 300 labelled rows after
    the promotion whose labels agree with version ``right`` on ``share`` of the rows (so v2 is
    right exactly where v1 is wrong). Returns the registry and the scheduler's clock."""
    from monitor.registry import Preprocessing, Registry
    from tests.retrain.helpers import flip_head, sentences

    registry = Registry(store, tmp_path / "models")
    pre = Preprocessing(32, labels=("negative", "positive"))
    v1 = registry.register("sentiment", tiny_bert_dir, version="v1", preprocessing=pre, status="active")
    registry.register("sentiment", flip_head(tiny_bert_dir, tmp_path / "v2"), version="v2", preprocessing=pre,
                      parent="v1")
    registry.promote("sentiment", "v2", reason="retrained on production labels")
    promoted_at = store.fetchall_sql(
        "SELECT max(created_at) FROM registry_events WHERE kind = 'promote'")[0][0]
    start = promoted_at + timedelta(seconds=1)  # live traffic of v2 after its promotion
    now = start + timedelta(hours=2)
    table, _ = records_to_table(make_records(300, seed=1, start=now - timedelta(days=3), version="v2",
                                             labelled=1.0))
    create_reference(store, "ref-v2", table, model_name="sentiment", model_version="v2", origin="test")
    texts = sentences(300, seed=4, labels=("negative", "positive")).texts
    probs = registry.load_encoder(v1, device="cpu").encode(texts).probs
    v1_pred = [("negative", "positive")[int(k)] for k in probs.argmax(axis=1)]  # type: ignore[union-attr]
    v2_pred = ["positive" if p == "negative" else "negative" for p in v1_pred]
    good = v1_pred if right == "v1" else v2_pred
    window = make_records(300, seed=2, start=start, version="v2")
    for i, r in enumerate(window):  # what v2 served, and the truth that arrived later
        r.update(text=texts[i] if text else None, predicted_label=v2_pred[i],
                 label=good[i] if (i % 100) < share * 100 else
                 ("positive" if good[i] == "negative" else "negative"))
    store.insert_predictions(window)
    return registry, now


def test_a_promoted_version_worse_than_its_parent_on_the_same_rows_rolls_back(
        store: Store, tmp_path: Path, tiny_bert_dir: Path, receiver: Receiver) -> None:
    # a flipped-label promotion: the labels agree with v1 on 80 % of the rows, so v2 is right on 20 %
    registry, now = _promoted_world(store, tmp_path, tiny_bert_dir, right="v1", share=0.8)
    sched = Scheduler(settings_for(tmp_path), store, policy=default_with(receiver), clock=lambda: now)
    result = sched.run_cycle(reports=False)
    assert [j.job for j in result.jobs][:3] == ["drift_check:sentiment", "parent_check:sentiment",
                                                "evaluate_policy:sentiment"], result.to_dict()
    fired = [d for d in result.decisions if d.outcome == "fired"]
    assert [d.rule for d in fired] == ["rollback-after-promotion"], result.to_dict()
    metrics = fired[0].evidence["metrics"]
    assert metrics["n_paired_with_parent"] == 300 and metrics["parent_paired_p"] < 1e-10
    assert metrics["parent_accuracy_delta"] == pytest.approx(0.2 - 0.8)
    assert [(a.kind, a.status) for a in result.actions] == [("notify", "ok"), ("rollback", "ok")]
    assert result.actions[1].detail == {"from_version": "v2", "active_version": "v1"}
    active = registry.active("sentiment")
    assert active is not None and active.version == "v1"
    assert receiver.requests[0]["json"]["alert"]["rule"] == "rollback-after-promotion"
    (run_id,) = result.drift_runs
    (stored,) = store.fetch_dicts("parent_check", {"run_id": run_id})
    assert stored["parent_version"] == "v1"
    # re-judging the stored run reads the same evidence from parent_checks
    again = {d.rule: d.evidence["metrics"] for d in sched.evaluate_run(run_id)[0]}
    assert again["rollback-after-promotion"]["parent_paired_p"] == metrics["parent_paired_p"]


def test_a_better_promoted_version_on_a_hard_new_window_does_not_roll_back(
        store: Store, tmp_path: Path, tiny_bert_dir: Path, receiver: Receiver) -> None:
    # a hard window for both: v2 is right on 70 % (its reference: 90 %), v1 on 30 % of the same rows
    registry, now = _promoted_world(store, tmp_path, tiny_bert_dir, right="v2", share=0.7)
    sched = Scheduler(settings_for(tmp_path), store, policy=default_with(receiver), clock=lambda: now)
    result = sched.run_cycle(reports=False)
    assert result.ok, result.to_dict()
    assert [d.rule for d in result.decisions if d.outcome == "fired"] == []
    (run_id,) = result.drift_runs
    window = sched.history_for(run_id).windows[-1]
    # the old rule (realized drop against the version's own reference, significant) would have fired
    assert window.metrics["realized_macro_f1_drop"] > 0.05 and window.signals["performance"].drifted
    assert window.metrics["parent_accuracy_delta"] == pytest.approx(0.7 - 0.3)
    assert window.metrics["parent_paired_p"] > 0.5 and window.metrics["n_paired_with_parent"] == 300
    active = registry.active("sentiment")
    assert active is not None and active.version == "v2" and receiver.requests == []


def test_without_text_the_paired_test_cannot_run_and_only_a_human_is_told(
        store: Store, tmp_path: Path, tiny_bert_dir: Path, receiver: Receiver) -> None:
    registry, now = _promoted_world(store, tmp_path, tiny_bert_dir, right="v1", share=0.8, text=False)
    sched = Scheduler(settings_for(tmp_path), store, policy=default_with(receiver), clock=lambda: now)
    result = sched.run_cycle(reports=False)
    fired = [d for d in result.decisions if d.outcome == "fired"]
    assert [d.rule for d in fired] == ["promotion-unverified"], result.to_dict()
    metrics = fired[0].evidence["metrics"]
    assert metrics["n_paired_with_parent"] == 0 and metrics["n_labelled_since_promotion"] == 300
    assert metrics["parent_paired_p"] is None
    assert [(a.kind, a.status) for a in result.actions] == [("notify", "ok")]
    active = registry.active("sentiment")
    assert active is not None and active.version == "v2"


def test_evaluating_an_unknown_run_is_a_policy_error(store: Store, tmp_path: Path) -> None:
    from monitor.errors import PolicyError

    with pytest.raises(PolicyError, match="no such run"):
        Scheduler(settings_for(tmp_path), store).evaluate_run("nope")


def test_cycle_ingests_parquet_drop_files_first(store: Store, tmp_path: Path) -> None:
    from collectors.sinks import ParquetSink

    settings = settings_for(tmp_path)
    sink = ParquetSink(settings.spool_dir)
    sink.send(make_records(25, seed=3, start=T0))
    result = Scheduler(settings, store, clock=lambda: T0).run_cycle(reports=False)
    drops = next(j for j in result.jobs if j.job == "ingest_drops")
    assert drops.ok and drops.result["accepted"] == 25
    assert count(store, "predictions") == 25
    assert not list(settings.spool_dir.glob("*.parquet"))
