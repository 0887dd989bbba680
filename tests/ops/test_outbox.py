"""The notification outbox: dedupe, backoff, attempts, expiry, restart, cooldown from delivery,
event notifications (retrain, promotion, rollback) and the report URL."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.outbox import Backoff, Notification, deliver_due, enqueue, enqueue_event, run_report_url
from monitor.policy import Policy, load_policy, parse_policy
from monitor.scheduler import Scheduler
from monitor.settings import Settings
from monitor.store import Store
from tests.ops.conftest import T0, Receiver, make_records, seed_reference

SHIFTED: dict[str, Any] = {"shift": 0.8, "conf_a": 3.0, "conf_b": 3.0, "p_positive": 0.8}


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(db_path=tmp_path / "ops.duckdb", reports_dir=tmp_path / "reports",
                    export_dir=tmp_path / "export", registry_dir=tmp_path / "models",
                    spool_dir=tmp_path / "spool", **{"window_size": 300, **kw})


def note(url: str, key: str = "k1") -> Notification:
    return Notification(dedupe_key=key, kind="alert", url=url, body={"hello": key}, timeout_s=2.0)


def rows(store: Store, key: str) -> list[tuple[Any, ...]]:
    return store.fetchall_sql("SELECT attempt, status_code, error IS NOT NULL FROM outbox_attempts "
                              "WHERE dedupe_key = $k ORDER BY attempt", {"k": key})


def status(store: Store, key: str) -> str:
    return str(store.fetch_dicts("outbox_get", {"dedupe_key": key})[0]["status"])


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def test_dedupe_key_stores_one_row_and_is_sent_as_header_and_field(store: Store, receiver: Receiver) -> None:
    assert enqueue(store, note(receiver.url), now=T0, expire_after_s=60) is True
    assert enqueue(store, note(receiver.url), now=T0, expire_after_s=60) is False
    first = deliver_due(store, clock=lambda: T0)
    again = deliver_due(store, clock=lambda: T0 + timedelta(hours=1))
    assert first.delivered == ("k1",) and again.delivered == ()
    (req,) = receiver.requests  # a delivered row is never resent
    assert req["headers"]["Idempotency-Key"] == "k1" and req["json"] == {"hello": "k1"}
    assert rows(store, "k1") == [(1, 200, False)]


def test_failed_attempts_back_off_are_recorded_then_delivered(store: Store, receiver: Receiver) -> None:
    receiver.codes = [500, 503]
    enqueue(store, note(receiver.url), now=T0, expire_after_s=3600)
    backoff = Backoff(base_s=10.0, max_s=100.0, jitter=0.0)
    assert deliver_due(store, clock=lambda: T0, backoff=backoff).retrying == ("k1",)
    assert deliver_due(store, clock=lambda: T0 + timedelta(seconds=9), backoff=backoff).retrying == ()
    assert deliver_due(store, clock=lambda: T0 + timedelta(seconds=10), backoff=backoff).retrying == ("k1",)
    row = store.fetch_dicts("outbox_get", {"dedupe_key": "k1"})[0]
    assert row["next_attempt_at"] == T0 + timedelta(seconds=30)  # 10 s, then 20 s: exponential
    assert deliver_due(store, clock=lambda: T0 + timedelta(seconds=30), backoff=backoff).delivered == ("k1",)
    assert rows(store, "k1") == [(1, 500, True), (2, 503, True), (3, 200, False)]
    assert len(receiver.requests) == 3 and status(store, "k1") == "delivered"


def test_transport_errors_are_recorded_and_4xx_fails_for_good(store: Store, receiver: Receiver) -> None:
    enqueue(store, note(dead_url(), "down"), now=T0, expire_after_s=3600)
    assert deliver_due(store, clock=lambda: T0).retrying == ("down",)
    (attempt,) = store.fetch_dicts("outbox_attempts", {"dedupe_key": "down"})
    assert attempt["status_code"] is None and "ConnectError" in attempt["error"]
    receiver.codes = [404]
    enqueue(store, note(receiver.url, "gone"), now=T0, expire_after_s=3600)
    later = T0 + timedelta(minutes=30)
    report = deliver_due(store, clock=lambda: later)
    assert report.failed == ("gone",) and status(store, "gone") == "failed"
    assert deliver_due(store, clock=lambda: later + timedelta(minutes=10)).failed == ()
    assert len(receiver.requests) == 1


def test_undelivered_notifications_expire(store: Store) -> None:
    enqueue(store, note(dead_url()), now=T0, expire_after_s=120)
    deliver_due(store, clock=lambda: T0)
    report = deliver_due(store, clock=lambda: T0 + timedelta(seconds=121))
    assert report.expired == ("k1",) and report.retrying == ()
    assert status(store, "k1") == "expired" and len(rows(store, "k1")) == 1


def test_a_restart_picks_up_pending_notifications(tmp_path: Path, receiver: Receiver) -> None:
    path = tmp_path / "restart.duckdb"
    receiver.codes = [503]
    with Store(path) as first:
        enqueue(first, note(receiver.url), now=T0, expire_after_s=3600)
        assert deliver_due(first, clock=lambda: T0).retrying == ("k1",)
    with Store(path) as second:  # a new process on the same file
        assert deliver_due(second, clock=lambda: T0 + timedelta(minutes=5)).delivered == ("k1",)
        assert rows(second, "k1") == [(1, 503, True), (2, 200, False)]


def test_jitter_is_deterministic_and_bounded() -> None:
    b = Backoff(base_s=1.0, max_s=8.0, jitter=0.25)
    delays = [b.delay_s("key", k) for k in range(1, 7)]
    assert delays == [b.delay_s("key", k) for k in range(1, 7)]
    for k, d in enumerate(delays, start=1):
        full = min(2.0 ** (k - 1), 8.0)
        assert 0.75 * full < d <= full
    assert b.delay_s("other", 3) != b.delay_s("key", 3)


def _policy(receiver_url: str) -> Policy:
    return parse_policy(f"actions:\n  notify: {{url: '{receiver_url}'}}\nrules:\n  - name: emb\n"
                        "    when: {all: [{signal: embedding, drifted: true}]}\n    cooldown: 6h\n"
                        "    actions: [notify]\n")


def test_cooldown_counts_from_the_last_delivered_notification(store: Store, tmp_path: Path,
                                                              receiver: Receiver) -> None:
    seed_reference(store)
    clock = [T0 + timedelta(minutes=10)]
    sched = Scheduler(settings_for(tmp_path), store, policy=_policy(receiver.url), clock=lambda: clock[0])
    receiver.codes = [500]  # the receiver is down for the first alert's only attempt this cycle
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    first = sched.run_cycle(reports=False)
    assert [d.outcome for d in first.decisions] == ["fired"]
    assert store.fetchall_sql("SELECT status FROM outbox") == [("pending",)]
    # a failed send starts no cooldown: the next window fires again
    clock[0] = T0 + timedelta(hours=1, minutes=10)
    store.insert_predictions(make_records(300, seed=3, start=T0 + timedelta(hours=1), **SHIFTED))
    second = sched.run_cycle(reports=False)
    assert [d.outcome for d in second.decisions] == ["fired"]
    assert store.fetchall_sql("SELECT status, count(*) FROM outbox GROUP BY 1") == [("delivered", 2)]
    # both now delivered (the first on its retry): the third window is held back
    clock[0] = T0 + timedelta(hours=2, minutes=10)
    store.insert_predictions(make_records(300, seed=4, start=T0 + timedelta(hours=2), **SHIFTED))
    third = sched.run_cycle(reports=False)
    assert [d.outcome for d in third.decisions] == ["cooldown"]
    keys = [r["json"]["alert"]["dedupe_key"] for r in receiver.requests]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]  # refused (500), then each alert once


def test_a_promoted_version_gets_its_own_alerts(store: Store, tmp_path: Path, receiver: Receiver) -> None:
    seed_reference(store, version="v1")
    seed_reference(store, version="v2")
    sched = Scheduler(settings_for(tmp_path), store, policy=_policy(receiver.url), clock=lambda: T0)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    assert [d.outcome for d in sched.run_cycle(reports=False).decisions] == ["fired"]
    store.insert_predictions(make_records(300, seed=3, start=T0 + timedelta(hours=1), version="v2",
                                          **SHIFTED))
    (d,) = sched.run_cycle(reports=False).decisions
    assert (d.model_version, d.outcome) == ("v2", "fired")  # v1's cooldown does not carry over
    assert [r["json"]["alert"]["model_version"] for r in receiver.requests] == ["v1", "v2"]


def test_alert_payload_carries_the_report_url_and_evidence(store: Store, tmp_path: Path,
                                                          receiver: Receiver) -> None:
    from reports.render import run_file

    seed_reference(store)
    settings = settings_for(tmp_path, public_url="https://sw.example/")
    sched = Scheduler(settings, store, policy=_policy(receiver.url), clock=lambda: T0)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    (run_id,) = sched.run_cycle(reports=False).drift_runs
    alert = receiver.requests[0]["json"]["alert"]
    rel = run_file(settings.reports_dir, run_id).relative_to(settings.reports_dir).as_posix()
    assert alert["report_url"] == f"https://sw.example/reports/{rel}" == run_report_url(settings, run_id)
    assert alert["dedupe_key"] == f"alert|sentiment|v1|emb|{run_id}"
    assert alert["evidence"]["windows"][0]["run_id"] == run_id
    assert "embedding" in json.dumps(alert["evidence"]["windows"][0]["when"])
    assert receiver.requests[0]["headers"]["Idempotency-Key"] == alert["dedupe_key"]


def test_dry_run_queues_nothing(store: Store, tmp_path: Path, receiver: Receiver) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    Scheduler(settings_for(tmp_path, dry_run=True), store, policy=_policy(receiver.url),
              clock=lambda: T0).run_cycle(reports=False)
    assert store.fetchall_sql("SELECT count(*) FROM outbox") == [(0,)] and receiver.requests == []


def test_promotion_and_rollback_notify_through_the_outbox(store: Store, tmp_path: Path, tiny_bert_dir: Path,
                                                          receiver: Receiver) -> None:
    from monitor.registry import Registry

    settings = settings_for(tmp_path, webhook_url=receiver.url)
    registry = Registry(store, settings.registry_dir, settings=settings)
    registry.register("sentiment", tiny_bert_dir, version="v1", status="active")
    registry.register("sentiment", tiny_bert_dir, version="v2", parent="v1")
    registry.promote("sentiment", "v2", reason="better")
    registry.rollback("sentiment", reason="worse on live traffic")
    assert store.fetchall_sql("SELECT kind, status FROM outbox ORDER BY created_at, kind") == [
        ("promote", "pending"), ("promote", "pending"), ("rollback", "pending")]  # v1's activation too
    assert len(deliver_due(store).delivered) == 3
    events = sorted((r["json"]["event"] for r in receiver.requests if r["json"]["event"]["from_version"]),
                    key=lambda e: e["kind"])
    assert [(e["kind"], e["from_version"], e["to_version"]) for e in events] == [
        ("promote", "v1", "v2"), ("rollback", "v2", "v1")]
    assert all(r["json"]["status"] == "event" for r in receiver.requests)
    assert events[1]["reason"] == "worse on live traffic" and events[1]["dedupe_key"].startswith("registry|")


def test_a_policy_rollback_notifies_the_rollback(store: Store, tmp_path: Path, tiny_bert_dir: Path,
                                                 receiver: Receiver) -> None:
    from monitor.actions.runner import run_decision_actions
    from monitor.policy import ActionSpec, Decision
    from monitor.registry import Registry

    settings = settings_for(tmp_path, webhook_url=receiver.url, webhook_format="slack")
    registry = Registry(store, settings.registry_dir)  # no settings: the action's registry notifies
    registry.register("sentiment", tiny_bert_dir, version="v1", status="active")
    registry.register("sentiment", tiny_bert_dir, version="v2", parent="v1")
    registry.promote("sentiment", "v2", reason="better")
    d = Decision(decision_id="d1", rule="rb", model_name="sentiment", model_version="v2", run_id="r1",
                 severity="critical", outcome="fired", actions=(ActionSpec(kind="rollback"),),
                 evidence={}, decided_at=T0)
    from monitor.services import LocalModelServices

    (rec,) = run_decision_actions(store, settings, load_policy(None), d, dry_run=False, now=T0,
                                  services=LocalModelServices(store, settings))
    assert rec.status == "ok"
    deliver_due(store)
    (req,) = receiver.requests
    assert req["json"]["text"].startswith("shiftwatch: sentiment rollback v2 -&gt; v1")  # Slack-escaped


def test_retrain_outcomes_notify(tmp_path: Path, receiver: Receiver) -> None:
    from monitor.errors import RetrainError
    from monitor.registry import Preprocessing, Registry
    from monitor.retrain.service import RetrainConfig, retrain
    from tests.conftest import make_tiny_bert

    settings = settings_for(tmp_path, webhook_url=receiver.url, webhook_format="alertmanager")
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("\n".join(json.dumps({"text": f"text {i}", "label": ("neg", "pos")[i % 2]})
                                    for i in range(40)), encoding="utf-8")
    with Store(":memory:") as store:
        Registry(store, settings.registry_dir).register(
            "m", make_tiny_bert(tmp_path / "v1"), preprocessing=Preprocessing(32, labels=("neg", "pos")),
            status="active", train_file=train_file)
        with pytest.raises(RetrainError, match="labelled"):
            retrain(store, settings, "m", reason="drift", config=RetrainConfig(min_labelled=100,
                                                                               use_worker=False))
        (run,) = store.fetch_dicts("retrain_runs", {"model_name": "m"})
        assert deliver_due(store).delivered == (f"retrain|{run['run_id']}",)
    (req,) = receiver.requests
    assert req["path"] == "/hook/api/v2/alerts"
    (item,) = req["json"]
    assert item["labels"]["alertname"] == "shiftwatch_retrain" and item["labels"]["model_name"] == "m"
    assert "failed" in item["annotations"]["summary"]


def test_enqueue_event_without_a_webhook_is_a_no_op(store: Store, tmp_path: Path) -> None:
    assert enqueue_event(store, settings_for(tmp_path), "promote", {"model_name": "m"}) is None
    assert store.fetchall_sql("SELECT count(*) FROM outbox") == [(0,)]
    key = enqueue_event(store, settings_for(tmp_path, webhook_url="http://127.0.0.1:9/x",
                                            public_url="http://sw"), "retrain",
                        {"model_name": "m", "drift_run_id": "abc"}, dedupe_key="retrain|1", now=T0)
    body = json.loads(store.fetch_dicts("outbox_get", {"dedupe_key": key})[0]["body"])
    assert body["event"]["report_url"] == "http://sw/reports/runs/abc.html"
    assert body["event"]["created_at"] == T0.isoformat()


@pytest.mark.slow
def test_receiver_down_for_30s_then_up_gets_the_notification_exactly_once(tmp_path: Path) -> None:
    """Real time: the webhook receiver is down while the alert fires and for 30 s after; the
    sidecar's delivery job keeps retrying; once the receiver is back the alert arrives once."""
    import time

    from monitor.demo.receiver import WebhookReceiver

    probe = WebhookReceiver(path="/hook").start()
    url = probe.url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    probe.stop()  # down from here on
    down_at = time.monotonic()
    settings = settings_for(tmp_path, outbox_interval_s=1.0, outbox_backoff_s=1.0, outbox_max_backoff_s=4.0,
                            drift_interval_s=3600.0)
    with Store(settings.db_path) as store:
        seed_reference(store)
        store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
        sched = Scheduler(settings, store, policy=_policy(url), reports_interval_s=3600.0)
        (run_id,) = sched.run_cycle(reports=False).drift_runs  # fires; its first attempt is refused
        key = f"alert|sentiment|v1|emb|{run_id}"
        sched.start()
        try:
            time.sleep(max(0.0, 30.0 - (time.monotonic() - down_at)))
            refused = store.fetch_dicts("outbox_attempts", {"dedupe_key": key})
            assert status(store, key) == "pending" and len(refused) >= 5
            assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in refused)
            with WebhookReceiver(path="/hook", port=port) as receiver:
                deadline = time.monotonic() + 15.0
                while time.monotonic() < deadline and status(store, key) != "delivered":
                    time.sleep(0.2)
                time.sleep(3.0)  # three more delivery runs: nothing is sent again
                messages = receiver.messages()
        finally:
            sched.shutdown()
        assert status(store, key) == "delivered"
        attempts = store.fetch_dicts("outbox_attempts", {"dedupe_key": key})
    assert len(messages) == 1
    assert messages[0].body["alert"]["dedupe_key"] == key and messages[0].body["alert"]["run_id"] == run_id
    assert attempts[-1]["status_code"] == 200 and all(a["status_code"] is None for a in attempts[:-1])


def test_metrics_count_notifications_by_kind_and_status(store: Store, receiver: Receiver) -> None:
    from monitor.metrics import ServerMetrics

    enqueue(store, note(receiver.url, "a"), now=T0, expire_after_s=3600)
    deliver_due(store, clock=lambda: T0)
    enqueue(store, note(dead_url(), "b"), now=T0 + timedelta(seconds=5), expire_after_s=3600)
    text = ServerMetrics(lambda: store).render().decode()
    assert 'shiftwatch_notifications{kind="alert",status="delivered"} 1.0' in text
    assert 'shiftwatch_notifications{kind="alert",status="pending"} 1.0' in text
    (line,) = [x for x in text.splitlines()
               if x.startswith("shiftwatch_notifications_oldest_pending_timestamp_seconds ")]
    assert float(line.split()[1]) == (T0 + timedelta(seconds=5)).timestamp()
