"""Read what the pages need from the store (the I/O side of the reports package).

Drift runs (each with its :class:`~monitor.drift.suite.DriftReport` under ``report``, read
through :func:`monitor.persist.runs.stored_report`) and their per-signal rows, alerts, version
changes (registry history, ``model_versions.activated_at``, promote / rollback actions) and,
when the table exists, operational health windows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.errors import NotFoundError, StoreError
from monitor.persist.runs import stored_report
from monitor.store import Store

__all__ = ["Event", "History", "SignalPoint", "load_history", "load_run", "load_runs"]

log = logging.getLogger(__name__)


def _json_object(text: Any) -> dict[str, Any]:
    """An action's ``detail`` JSON (text or already a mapping); ``{}`` when it holds no object."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError) as exc:
        raise StoreError(f"action detail is not valid JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


def load_run(store: Store, run_id: str) -> dict[str, Any]:
    """One drift run row with its ``report`` (the ``result`` JSON read back as a
    :class:`~monitor.drift.suite.DriftReport`); :class:`StoreError` if unknown or unreadable."""
    rows = store.fetch_dicts("reports_run", {"run_id": run_id})
    if not rows:
        raise NotFoundError(f"no drift run '{run_id}'")
    row = rows[0]
    row["report"] = stored_report(row.pop("result"))
    return row


def load_runs(store: Store, model_name: str | None = None) -> list[dict[str, Any]]:
    """Drift runs grouped by model, newest first, each with its ``report`` (``None``, logged,
    when its stored result cannot be read) and ``statuses`` (the status of every signal)."""
    runs = store.fetch_dicts("reports_runs", {"model_name": model_name})
    statuses: dict[str, list[str]] = {}
    for row in store.fetch_dicts("reports_run_statuses", {"model_name": model_name}):
        statuses.setdefault(row["run_id"], []).append(str(row["status"]))
    for run in runs:
        try:
            run["report"] = stored_report(run.pop("result"))
        except StoreError as exc:
            log.warning("drift run %s: %s", run["run_id"], exc)
            run["report"] = None
        run["statuses"] = statuses.get(run["run_id"], [])
    return runs


@dataclass(frozen=True, slots=True)
class SignalPoint:
    """One signal's result in one run."""

    at: datetime
    run_id: str
    model_version: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool
    status: str


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at a time: an alert or a version change."""

    at: datetime
    kind: str
    label: str


@dataclass(slots=True)
class History:
    """Everything the timeline of one model shows."""

    model_name: str
    signals: dict[str, list[SignalPoint]] = field(default_factory=dict)
    alerts: list[Event] = field(default_factory=list)
    versions: list[Event] = field(default_factory=list)
    health: list[dict[str, Any]] | None = None


def _optional(store: Store, name: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Rows of a query on a table another component owns; None when the table is absent."""
    try:
        return store.fetch_dicts(name, params)
    except StoreError as exc:
        log.debug("%s unavailable: %s", name, exc)
        return None


def load_history(store: Store, model_name: str) -> History:
    """Signals over time, alerts, version changes and health windows of one model."""
    params = {"model_name": model_name}
    hist = History(model_name)
    for row in store.fetch_dicts("reports_signal_history", params):
        hist.signals.setdefault(str(row["signal"]), []).append(SignalPoint(
            at=row["event_at"], run_id=row["run_id"], model_version=row["model_version"],
            method=row["method"], statistic=row["statistic"], p_value=row["p_value"],
            threshold=row["threshold"], drifted=bool(row["drifted"]), status=str(row["status"])))
    for row in store.fetch_dicts("reports_alerts", params):
        hist.alerts.append(Event(row["event_at"], "alert", f"{row['severity']}: {row['rule']}"))

    seen: set[tuple[str, int]] = set()

    def add_version(at: datetime | None, label: str) -> None:
        if at is None:
            return
        key = (label.split(" ")[-1], int(at.timestamp()) // 60)
        if key not in seen:
            seen.add(key)
            hist.versions.append(Event(at, "version", label))

    for row in _optional(store, "reports_registry_events", params) or []:
        add_version(row["event_at"], f"{row['kind']} → {row['to_version']}")
    for row in store.fetch_dicts("reports_version_activations", params):
        add_version(row["event_at"], f"active → {row['version']}")
    for row in _optional(store, "reports_version_actions", params) or []:
        detail = _json_object(row.get("detail"))
        to = detail.get("to_version") or detail.get("version") or ""
        add_version(row["event_at"], f"{row['kind']} → {to}".rstrip(" →"))
    hist.versions.sort(key=lambda e: e.at)
    hist.health = _optional(store, "reports_health", params)
    return hist
