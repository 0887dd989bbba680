"""Record policy decisions and run their actions exactly once per window.

For each :class:`~monitor.policy.Decision`: a ``policy_decisions`` row (fired or cooldown,
with its evidence), an ``alerts`` row when it fired and — in the same transaction — the
outbox rows of its ``notify`` actions (:func:`decision_notifications`), then each action under the idempotency
key ``rule|run_id|kind`` (``#2``, ``#3`` … for a repeated kind; ``|dry_run`` in dry-run mode,
so a dry run never blocks the real one). The key is claimed with a ``pending`` row in
``actions`` before the action runs; a key whose action already ended ``ok``, ``skipped`` or
``dry_run`` is not run again, a ``failed`` (or interrupted ``pending``) one is retried.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.actions import build_action
from monitor.actions.base import ActionContext, ActionOutcome, ModelServices
from monitor.errors import ActionError
from monitor.outbox import Notification, enqueue
from monitor.policy import Decision, Policy

if TYPE_CHECKING:
    import pyarrow as pa

    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["ActionRecord", "alert_payload", "decision_notifications", "idempotency_key", "record_decision",
           "run_decision_actions"]

log = logging.getLogger(__name__)

_DONE = ("ok", "skipped", "dry_run")


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One action of one decision: what happened now, or what had happened before (``reused``)."""

    kind: str
    idempotency_key: str
    status: str
    attempts: int
    detail: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


def idempotency_key(rule: str, run_id: str, kind: str, *, occurrence: int = 1, dry_run: bool = False) -> str:
    """``rule|run_id|kind`` (+ ``#n`` for the n-th action of the same kind, + ``|dry_run``)."""
    key = f"{rule}|{run_id}|{kind}"
    if occurrence > 1:
        key += f"#{occurrence}"
    return key + ("|dry_run" if dry_run else "")


def alert_payload(decision: Decision) -> dict[str, Any]:
    """The JSON-ready alert an action receives (and a webhook posts)."""
    ev = decision.evidence
    return {
        "alert_id": decision.decision_id,
        "rule": decision.rule,
        "severity": decision.severity,
        "model_name": decision.model_name,
        "model_version": decision.model_version,
        "run_id": decision.run_id,
        "description": ev.get("description") or decision.rule,
        "summary": (f"[{decision.severity.upper()}] shiftwatch: {decision.rule} on "
                    f"{decision.model_name} {decision.model_version}"),
        "created_at": decision.decided_at.isoformat(),
        "evidence": ev,
    }


def decision_notifications(settings: Settings, policy: Policy, decision: Decision, *,
                           dry_run: bool) -> list[Notification]:
    """The outbox rows of a fired decision's ``notify`` actions (none in dry-run mode)."""
    from monitor.actions.notify import NotifyAction

    if not decision.fired or dry_run:
        return []
    alert = alert_payload(decision)
    out: list[Notification] = []
    n = 0
    for spec in decision.actions:
        if spec.kind != "notify":
            continue
        n += 1
        try:
            action = build_action("notify", policy.action_params(spec))
        except ActionError:  # reported by the action run itself
            continue
        assert isinstance(action, NotifyAction)
        note = action.notification(alert, settings, occurrence=n)
        if note is not None:
            out.append(note)
    return out


def record_decision(store: Store, decision: Decision, *, notifications: Sequence[Notification] = (),
                    expire_after_s: float = 24 * 3600.0) -> bool:
    """Store the decision (and its alert when fired) and enqueue ``notifications`` in one
    transaction; False when this window's decision was stored before."""
    evidence = json.dumps(decision.evidence, default=str)
    before = store.execute("ops_decision_exists", {"decision_id": decision.decision_id})
    with store.transaction():
        store.execute("ops_insert_decision", {
            "decision_id": decision.decision_id, "run_id": decision.run_id,
            "model_name": decision.model_name, "model_version": decision.model_version,
            "rule": decision.rule, "severity": decision.severity, "outcome": decision.outcome,
            "alert_id": decision.decision_id if decision.fired else None, "evidence": evidence,
            "created_at": decision.decided_at,
        })
        if decision.fired:
            store.execute("ops_insert_alert", {
                "alert_id": decision.decision_id, "model_name": decision.model_name,
                "rule": decision.rule, "severity": decision.severity, "run_id": decision.run_id,
                "evidence": evidence, "created_at": decision.decided_at,
            })
        for note in notifications:
            enqueue(store, note, now=decision.decided_at, expire_after_s=expire_after_s)
    return int(before[0][0]) == 0


def run_decision_actions(
    store: Store,
    settings: Settings,
    policy: Policy,
    decision: Decision,
    *,
    dry_run: bool,
    now: datetime,
    window: Callable[[], pa.Table] | None = None,
    reference: Callable[[], pa.Table] | None = None,
    services: ModelServices | None = None,
) -> list[ActionRecord]:
    """Run the actions of a fired decision once each (see module docstring); ``services`` are
    what the retrain and rollback actions call."""
    if not decision.fired:
        return []
    alert = alert_payload(decision)
    base = ActionContext(store=store, settings=settings, alert=alert, now=now, window=window,
                         reference=reference, services=services)
    seen: dict[str, int] = {}
    records: list[ActionRecord] = []
    for spec in decision.actions:
        seen[spec.kind] = seen.get(spec.kind, 0) + 1
        context = replace(base, occurrence=seen[spec.kind])
        key = idempotency_key(decision.rule, decision.run_id, spec.kind, occurrence=seen[spec.kind],
                              dry_run=dry_run)
        existing = store.fetch_dicts("ops_get_action", {"key": key})
        if existing and existing[0]["status"] in _DONE:
            row = existing[0]
            records.append(ActionRecord(spec.kind, key, str(row["status"]), int(row["attempts"]),
                                        _loads(row["detail"]), reused=True))
            continue
        if not existing:
            store.execute("ops_insert_action", {"action_id": uuid.uuid4().hex, "alert_id": alert["alert_id"],
                                                "kind": spec.kind, "key": key, "dry_run": dry_run})
        try:
            outcome = build_action(spec.kind, policy.action_params(spec)).run(context, dry_run=dry_run)
        except ActionError as exc:  # bad parameters: the action could not even be built
            outcome = ActionOutcome("failed", attempts=0, detail={"error": str(exc)})
        except Exception as exc:  # an action bug must not stop the decision's other actions
            log.exception("action %s crashed", spec.kind)
            outcome = ActionOutcome("failed", detail={"error": f"{type(exc).__name__}: {exc}"})
        store.execute("ops_finish_action", {"key": key, "status": outcome.status,
                                            "attempts": outcome.attempts,
                                            "detail": json.dumps(outcome.detail, default=str),
                                            "finished_at": now})
        log.info("action %s for %s/%s: %s", spec.kind, decision.rule, decision.run_id, outcome.status)
        records.append(ActionRecord(spec.kind, key, outcome.status, outcome.attempts, outcome.detail))
    return records


def _loads(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text) if isinstance(text, str) else text
    return dict(value) if isinstance(value, Mapping) else {"value": value}
