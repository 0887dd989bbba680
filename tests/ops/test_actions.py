"""Actions against real local endpoints: webhook formats, retries, command, review, idempotency."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from collectors.schema import records_to_table
from monitor.actions import build_action
from monitor.actions.base import ActionContext
from monitor.actions.notify import build_payload
from monitor.actions.review import select_for_review
from monitor.actions.runner import alert_payload, record_decision, run_decision_actions
from monitor.errors import ActionError
from monitor.outbox import deliver_due
from monitor.policy import ActionSpec, Decision, parse_policy
from monitor.settings import Settings
from monitor.store import Store
from tests.ops.conftest import T0, Receiver, make_records

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
ALERT = {"alert_id": "a1", "rule": "embedding-drift", "severity": "warning", "model_name": "sentiment",
         "model_version": "v1", "run_id": "r1", "description": "inputs moved",
         "summary": "[WARNING] shiftwatch: embedding-drift on sentiment v1",
         "created_at": NOW.isoformat(), "evidence": {"windows": []}}


def ctx(store: Store, tmp_path: Path, **kw: Any) -> ActionContext:
    settings = Settings(db_path=tmp_path / "x.duckdb", registry_dir=tmp_path / "models",
                        webhook_url=kw.pop("webhook_url", None))
    return ActionContext(store=store, settings=settings, alert=kw.pop("alert", ALERT), now=NOW, **kw)


def _deliver(store: Store) -> None:
    deliver_due(store, clock=lambda: NOW)


@pytest.mark.parametrize("fmt", ["generic", "slack", "alertmanager"])
def test_notify_queues_each_format_and_delivery_posts_it(fmt: str, store: Store, tmp_path: Path,
                                                         receiver: Receiver) -> None:
    out = build_action("notify", {"url": receiver.url, "format": fmt}).run(ctx(store, tmp_path),
                                                                           dry_run=False)
    key = "alert|sentiment|v1|embedding-drift|r1"
    assert out.status == "ok" and out.detail["outbox"] == key
    assert receiver.requests == []  # queued, not posted: the delivery job posts
    _deliver(store)
    (req,) = receiver.requests
    body = req["json"]
    assert req["content_type"] == "application/json"
    if fmt == "generic":
        assert req["path"] == "/hook" and body["status"] == "firing"
        assert body["alert"] == {**ALERT, "dedupe_key": key, "report_url": None}
    elif fmt == "slack":
        assert body["text"] == ALERT["summary"]
        assert body["blocks"][0]["type"] == "header"
        assert "*rule:* embedding-drift" in [f["text"] for f in body["blocks"][2]["fields"]]
    else:
        assert req["path"] == "/hook/api/v2/alerts"
        (item,) = body
        assert item["labels"] == {"alertname": "embedding-drift", "severity": "warning",
                                  "model_name": "sentiment", "model_version": "v1", "service": "shiftwatch"}
        assert item["startsAt"] == NOW.isoformat()
        assert item["endsAt"] == (NOW + timedelta(hours=1)).isoformat()
        assert item["annotations"]["summary"] == ALERT["summary"]
        assert item["annotations"]["dedupe_key"] == key


def test_notify_uses_the_settings_url_and_skips_without_one(store: Store, tmp_path: Path,
                                                            receiver: Receiver) -> None:
    assert build_action("notify").run(ctx(store, tmp_path), dry_run=False).status == "skipped"
    out = build_action("notify").run(ctx(store, tmp_path, webhook_url=receiver.url), dry_run=False)
    _deliver(store)
    assert out.status == "ok" and len(receiver.requests) == 1


def test_dry_run_performs_nothing(store: Store, tmp_path: Path, receiver: Receiver) -> None:
    out = build_action("notify", {"url": receiver.url}).run(ctx(store, tmp_path), dry_run=True)
    assert out.status == "dry_run" and out.attempts == 0 and receiver.url in out.detail["would"]
    assert receiver.requests == []


def test_alertmanager_payload_without_end() -> None:
    (item,) = build_payload(ALERT, "alertmanager", resolve_after=None, generator_url="http://x/r")
    assert "endsAt" not in item and item["generatorURL"] == "http://x/r"


def test_command_gets_the_alert_on_stdin(store: Store, tmp_path: Path) -> None:
    out_file = tmp_path / "alert.json"
    script = f"import sys; open({str(out_file)!r}, 'w').write(sys.stdin.read()); print('done')"
    out = build_action("command", {"argv": [sys.executable, "-c", script]}).run(ctx(store, tmp_path),
                                                                                dry_run=False)
    assert out.status == "ok" and out.detail["returncode"] == 0 and out.detail["stdout"] == "done\n"
    assert json.loads(out_file.read_text()) == ALERT


def test_command_failures_timeouts_and_bad_params(store: Store, tmp_path: Path) -> None:
    fail = build_action("command", {"argv": [sys.executable, "-c", "import sys; sys.exit(3)"]})
    out = fail.run(ctx(store, tmp_path), dry_run=False)
    assert out.status == "failed" and out.detail["returncode"] == 3
    slow = build_action("command", {"argv": [sys.executable, "-c", "import time; time.sleep(5)"],
                                    "timeout_s": 0.3})
    out = slow.run(ctx(store, tmp_path), dry_run=False)
    assert out.status == "failed" and "timed out" in out.detail["error"]
    missing = build_action("command", {"argv": [str(tmp_path / "no-such-program")]})
    assert "could not start" in missing.run(ctx(store, tmp_path), dry_run=False).detail["error"]
    with pytest.raises(ActionError, match="parameter 'argv'"):
        build_action("command", {})
    with pytest.raises(ActionError, match="unknown action kind"):
        build_action("email")


def _table(records: list[dict[str, Any]]) -> pa.Table:
    table, _ = records_to_table(records)
    return table


def test_review_selection_known_answer() -> None:
    recs = make_records(12, seed=5, start=T0)
    confs = [0.99, 0.51, 0.95, 0.6, 0.97, 0.98, 0.55, 0.9, 0.93, 0.96, 0.94, 0.92]
    for r, c in zip(recs, confs, strict=True):
        r["confidence"] = c
        r["probs"] = [1 - c, c]
    recs[1]["label"] = "positive"  # already labelled: never queued
    picked, skipped = select_for_review(_table(recs), None, n=4, criteria=("low_confidence",))
    assert [p["event_id"] for p in picked] == [recs[i]["event_id"] for i in (6, 3, 7, 11)]
    assert skipped == {}
    # no reference: most_shifted cannot run; its share goes to the others
    picked, skipped = select_for_review(_table(recs), None, n=6)
    assert list(skipped) == ["most_shifted"] and len(picked) == 6
    assert len({p["event_id"] for p in picked}) == 6


def test_review_queues_most_shifted_rows(store: Store, tmp_path: Path) -> None:
    ref = _table(make_records(200, seed=1, start=T0 - timedelta(days=1)))
    recs = make_records(100, seed=2, start=T0)
    for r in recs[:10]:  # ten rows far from the reference
        r["embedding"] = [v + 4.0 for v in r["embedding"]]
    store.insert_predictions(recs)
    window = _table(recs)
    picked, _ = select_for_review(window, ref, n=10, criteria=("most_shifted",))
    hits = {p["event_id"] for p in picked} & {r["event_id"] for r in recs[:10]}
    assert len(hits) >= 9  # cross-fitted domain classifier; chance would find about one
    action = build_action("review", {"n": 30})
    out = action.run(ctx(store, tmp_path, window=lambda: window, reference=lambda: ref), dry_run=False)
    assert out.status == "ok" and out.detail["queued"] == 30
    assert out.detail["by_reason"] == {"low_confidence": 10, "high_entropy": 10, "most_shifted": 10}
    again = action.run(ctx(store, tmp_path, window=lambda: window, reference=lambda: ref), dry_run=False)
    assert again.detail["queued"] == 0  # idempotent per event id
    assert store.fetchall_sql("SELECT count(*) FROM review_queue")[0][0] == 30


def test_retrain_and_rollback_report_closed_loop_errors_as_failed(store: Store, tmp_path: Path) -> None:
    from monitor.services import LocalModelServices

    base = ctx(store, tmp_path)
    with_services = replace(base, services=LocalModelServices(store, base.settings))
    out = build_action("rollback").run(with_services, dry_run=False)
    assert out.status == "failed" and "RegistryError" in out.detail["error"]
    assert build_action("retrain").run(with_services, dry_run=True).status == "dry_run"
    # without services (actions know no registry) the action fails and says why
    bare = build_action("rollback").run(base, dry_run=False)
    assert bare.status == "failed" and "no model services" in bare.detail["error"]


def _decision(actions: list[str]) -> Decision:
    return Decision(decision_id="d1", rule="embedding-drift", model_name="sentiment", model_version="v1",
                    run_id="r1", severity="warning", outcome="fired",
                    actions=tuple(ActionSpec(kind=k) for k in actions),  # type: ignore[arg-type]
                    evidence={"description": "inputs moved"}, decided_at=NOW)


def test_runner_is_idempotent_per_rule_run_and_kind(store: Store, tmp_path: Path, receiver: Receiver) -> None:
    policy = parse_policy(f"actions:\n  notify: {{url: '{receiver.url}'}}\nrules:\n  - name: r\n"
                          "    when: {all: [{signal: embedding, drifted: true}]}\n")
    settings = Settings(db_path=tmp_path / "x.duckdb", registry_dir=tmp_path / "m")
    d = _decision(["notify", "notify", "rollback"])
    assert record_decision(store, d) is True
    first = run_decision_actions(store, settings, policy, d, dry_run=False, now=NOW)
    assert [(a.idempotency_key, a.status) for a in first] == [
        ("embedding-drift|r1|notify", "ok"), ("embedding-drift|r1|notify#2", "ok"),
        ("embedding-drift|r1|rollback", "failed")]
    assert record_decision(store, d) is False
    second = run_decision_actions(store, settings, policy, d, dry_run=False, now=NOW)
    assert [a.reused for a in second] == [True, True, False]  # the failed one is retried
    _deliver(store)
    _deliver(store)  # a delivered row is never sent again
    assert len(receiver.requests) == 2
    assert sorted(r["json"]["alert"]["dedupe_key"] for r in receiver.requests) == [
        "alert|sentiment|v1|embedding-drift|r1", "alert|sentiment|v1|embedding-drift|r1#2"]
    rows = store.fetchall_sql("SELECT idempotency_key, status, attempts FROM actions ORDER BY 1")
    assert rows == [("embedding-drift|r1|notify", "ok", 0), ("embedding-drift|r1|notify#2", "ok", 0),
                    ("embedding-drift|r1|rollback", "failed", 2)]
    assert store.fetchall_sql("SELECT count(*) FROM alerts")[0][0] == 1
    dry = run_decision_actions(store, settings, policy, d, dry_run=True, now=NOW)
    assert {a.status for a in dry} == {"dry_run"} and len(receiver.requests) == 2
    assert alert_payload(d)["alert_id"] == "d1"
