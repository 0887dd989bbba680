"""The sidecar's background jobs on APScheduler 3.x: drift checks, policy, actions, reports, delivery.

The scheduler only picks windows and hands them on. One cycle (:meth:`Scheduler.run_cycle`,
also ``shiftwatch check``):

1. ``drift_check:<model>`` — for each model's newest version, every *pending* window is read
   once and tested against the version's reference set (read once per model and cycle).
   Windows tumble: by count (``settings.window_size`` rows after the previous run's window end)
   or by time (``settings.window_minutes``, aligned to multiples of the window length, only
   complete windows). So a window is tested once, and ``for: N`` in a policy means N distinct
   windows. A window whose text-only rows still wait for enrichment (:mod:`monitor.enrich`) is
   not checked yet: it is left for a later cycle and reported in ``CycleResult.enriching``
   (rows, rows pending) — not a failed job — until its rows are enriched; once it ended more
   than ``settings.enrich_max_wait_s`` ago it is checked without the rows that never were.
   Each checked window becomes one in-memory :class:`~monitor.windowcheck.WindowCheck`
   (records, reference, drift report, health summary).
2. ``evaluate_policy:<model>`` — per window check: the policy (:mod:`monitor.policy`) judges it
   with the version's previous windows and the cooldown marks (last *delivered* notification
   per model version and rule); every decision is stored with its notifications in the outbox
   in one transaction, and the actions of fired ones run once per window
   (:mod:`monitor.actions.runner`) with the check's records.
3. ``deliver_notifications`` — the outbox delivery run (:func:`monitor.outbox.deliver_due`); it
   also runs on its own every ``settings.outbox_interval_s`` so retries do not wait for the next
   drift cycle.
4. ``render_run:<model>`` — the report of each window check, from the same records (also in
   the scheduled cycles); then (``reports=True``, and on its own interval in the background)
   ``render_reports`` renders anything missing, the timelines and the index.
5. ``retention`` (when asked) — export records older than ``retention_days`` to Parquet, then
   delete them.

With ``settings.lake_path`` set, each cycle first runs ``lake_export``: the records ingested
since the previous export go into the fleet lake (:mod:`monitor.lake.export`).

Each job run is a :class:`monitor.jobs.Job` run: recorded in ``job_runs`` with its duration and
error, and a failure never stops the jobs after it. :meth:`Scheduler.start` schedules the same
work on a ``BackgroundScheduler`` with ``max_instances=1``, ``coalesce=True`` and a misfire
grace time; :meth:`Scheduler.shutdown` stops it and waits for running jobs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from monitor.actions import load_policy
from monitor.actions.runner import ActionRecord, decision_notifications, record_decision, run_decision_actions
from monitor.errors import PolicyError
from monitor.jobs import FunctionJob, JobRun
from monitor.policy import (
    Decision,
    History,
    PastDecision,
    Policy,
    SignalObservation,
    Window,
    evaluate,
)
from monitor.services import LocalModelServices
from monitor.settings import Settings
from monitor.store import Store
from monitor.windowcheck import EnrichingWindow, WindowCheck
from monitor.windowmetrics import WindowMetrics, finite

if TYPE_CHECKING:
    import pyarrow as pa

    from monitor.drift.suite import DriftReport
    from monitor.opshealth import HealthSummary

__all__ = ["CycleResult", "Scheduler", "window_from_run"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one cycle did: its job runs (in order), drift runs, decisions and actions."""

    jobs: tuple[JobRun, ...]
    drift_runs: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()
    actions: tuple[ActionRecord, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    enriching: dict[str, EnrichingWindow] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every job run of the cycle succeeded."""
        return all(j.ok for j in self.jobs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for ``shiftwatch check``)."""
        return {
            "ok": self.ok,
            "jobs": [{"job": j.job, "status": j.status, "duration_s": round(j.duration_s, 3),
                      "error": j.error} for j in self.jobs],
            "drift_runs": list(self.drift_runs),
            "decisions": [{"rule": d.rule, "model_name": d.model_name, "model_version": d.model_version,
                           "run_id": d.run_id, "severity": d.severity, "outcome": d.outcome}
                          for d in self.decisions],
            "actions": [{"kind": a.kind, "key": a.idempotency_key, "status": a.status,
                         "attempts": a.attempts, "reused": a.reused} for a in self.actions],
            "skipped": dict(self.skipped),
            "enriching": {m: e.to_dict() for m, e in self.enriching.items()},
        }


def window_from_run(run: Mapping[str, Any], *, report: DriftReport | None = None,
                    health: Mapping[str, Any] | None = None, version: Mapping[str, Any] | None = None,
                    now: datetime | None = None, parent: Mapping[str, Any] | None = None) -> Window:
    """The policy's view of one drift run (``ops_run`` / ``ops_run_history`` row).

    ``report`` is the run's :class:`~monitor.drift.suite.DriftReport` when the caller holds it
    (the cycle's window check); otherwise it is read from the row's ``result``
    (:func:`monitor.persist.runs.stored_report`). Metrics are
    :meth:`~monitor.windowmetrics.WindowMetrics.of` the report, the health window of the same
    run, the registry (time since the version was last promoted over another active
    version; ``version["promoted_at"]``) and the paired test against the version it replaced
    (``parent``: a ``parent_checks.evidence`` object).
    """
    from monitor.persist.runs import stored_report

    rep = report if report is not None else stored_report(run["result"])
    signals = {s.signal: SignalObservation(drifted=s.drifted, statistic=finite(s.statistic),
                                           p_value=finite(s.p_value), status=s.status,
                                           corrected=rep.corrected(s.signal))
               for s in rep.signals}
    end = run.get("window_end")
    metrics = WindowMetrics.of(rep, health=health, promoted_at=(version or {}).get("promoted_at"),
                               at=end or now, parent=(parent or {}).get("metrics"))
    diag = rep.diagnosis().to_dict()
    return Window(run_id=str(run["run_id"]), model_name=str(run["model_name"]),
                  model_version=str(run["model_version"]), n_current=int(run["n_current"]),
                  drifted=bool(run["drifted"]), signals=signals, metrics=metrics.as_dict(),
                  window_end=end, diagnosis=diag["kind"], diagnosis_detail=diag)


def _enriched_mask(table: pa.Table) -> pa.ChunkedArray:
    """True for rows not waiting for enrichment; a row waits when it has text but no embedding
    or no ``n_tokens`` (the predicate of ``server_pending_enrichment``)."""
    import pyarrow.compute as pc

    missing = pc.or_(pc.is_null(table["embedding"]), pc.is_null(table["n_tokens"]))
    return pc.invert(pc.and_(pc.is_valid(table["text"]), missing))


def _pending_enrichment(table: pa.Table) -> int:
    """Rows of a window still waiting for enrichment (see :func:`_enriched_mask`)."""
    import pyarrow.compute as pc

    n: int = table.num_rows
    if n == 0:
        return 0
    return n - int(pc.sum(pc.cast(_enriched_mask(table), "int64")).as_py() or 0)


class Scheduler:
    """Drift checks → policy → actions → reports (→ retention), once or on a schedule."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        policy: Policy | None = None,
        clock: Callable[[], datetime] | None = None,
        signals: Sequence[str] | None = None,
        max_windows_per_check: int = 4,
        reports_interval_s: float | None = None,
        retention_interval_s: float = 6 * 3600.0,
        misfire_grace_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.policy = policy if policy is not None else load_policy(settings.policy_file)
        self.services = LocalModelServices(store, settings)  # what retrain / rollback actions call
        self.signals = tuple(signals) if signals else None
        self.max_windows = max(1, max_windows_per_check)
        self.reports_interval_s = reports_interval_s or max(settings.drift_interval_s, 60.0)
        self.retention_interval_s = retention_interval_s
        self.misfire_grace_s = misfire_grace_s or max(30.0, settings.drift_interval_s / 2)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sched: Any = None
        self._cycle_lock = threading.Lock()

    # -- one cycle -------------------------------------------------------------------------
    def run_cycle(self, *, reports: bool = True, retention: bool = False,
                  window_reports: bool | None = None) -> CycleResult:
        """Check every model's pending windows and hand each check to policy, actions and its
        report; deliver due notifications; then the report index (and retention).

        ``window_reports`` (default: ``reports``) renders each new window's report from the
        check's records; ``reports`` also renders whatever is missing, the timelines and the index.
        """
        render_windows = reports if window_reports is None else window_reports
        with self._cycle_lock:
            jobs: list[JobRun] = []
            runs: list[str] = []
            decisions: list[Decision] = []
            actions: list[ActionRecord] = []
            skipped: dict[str, str] = {}
            enriching: dict[str, EnrichingWindow] = {}
            checks: list[WindowCheck] = []
            if self.settings.spool_dir.is_dir():
                # ParquetSink drop files first, so this cycle's windows include them.
                jobs.append(FunctionJob(self.store, "ingest_drops", self.ingest_drops)())
            if self.settings.lake_path:
                # new records into the fleet lake (DESIGN §9), before retention can delete them
                jobs.append(FunctionJob(self.store, "lake_export", self.export_lake)())
            for model_name, version in self.models():
                check = FunctionJob(self.store, f"drift_check:{model_name}",
                                    partial(self.check_windows, model_name, version),
                                    expected_s=self.settings.drift_interval_s)
                jr = check()
                jobs.append(jr)
                if not jr.ok:
                    continue
                new_checks, why, waiting = jr.result
                if why:
                    skipped[model_name] = why
                if waiting is not None:
                    enriching[model_name] = waiting
                if new_checks and self.parent_check_due(new_checks[-1]):
                    pr = FunctionJob(self.store, f"parent_check:{model_name}",
                                     partial(self.compare_with_parent, new_checks))()
                    jobs.append(pr)
                    if pr.ok:
                        new_checks = pr.result
                for wc in new_checks:
                    runs.append(wc.run_id)
                    checks.append(wc)
                    ev = FunctionJob(self.store, f"evaluate_policy:{model_name}",
                                     partial(self.evaluate_check, wc))
                    er = ev()
                    jobs.append(er)
                    if er.ok:
                        decisions.extend(er.result[0])
                        actions.extend(er.result[1])
            if self.notifications_pending():
                jobs.append(FunctionJob(self.store, "deliver_notifications", self.deliver_notifications)())
            if self.shadow_pending():
                jobs.append(FunctionJob(self.store, "shadow_evaluate", self.evaluate_shadow)())
            if render_windows:
                for wc in checks:
                    jobs.append(FunctionJob(self.store, f"render_run:{wc.model_name}",
                                            partial(self.render_check, wc))())
            if reports:
                jobs.append(FunctionJob(self.store, "render_reports", self.render_reports)())
            if retention:
                jobs.append(FunctionJob(self.store, "retention", self.apply_retention)())
            return CycleResult(tuple(jobs), tuple(runs), tuple(decisions), tuple(actions), skipped,
                               enriching)

    def models(self) -> list[tuple[str, str]]:
        """Each model with its newest version (by its newest record)."""
        return [(str(r["model_name"]), str(r["model_version"])) for r in self.store.fetch_dicts("ops_models")]

    # -- drift -----------------------------------------------------------------------------
    def pending_windows(self, model_name: str, model_version: str) -> list[tuple[datetime, datetime]]:
        """The complete windows of a model version not yet checked, oldest first (newest few kept)."""
        key = {"model_name": model_name, "model_version": model_version}
        last = self.store.fetch_dicts("ops_last_run", key)
        after = last[0]["window_end"] if last else None
        if self.settings.window_minutes is not None:
            return self._time_windows(key, after)
        n = self.settings.window_size
        rows = self.store.fetch_dicts("ops_count_boundaries", {**key, "after": after, "n": n})
        if not rows:
            return []
        total = int(rows[0]["total"])
        full = total // n
        bounds = [r["ts"] for r in rows]
        windows = []
        for k in range(full):
            start = after if (k == 0 and after is not None) else bounds[k]
            end = bounds[k + 1] if k + 1 < len(bounds) else rows[0]["last_ts"] + timedelta(microseconds=1)
            windows.append((start, end))
        return windows[-self.max_windows:]

    def _time_windows(self, key: dict[str, Any], after: datetime | None) -> list[tuple[datetime, datetime]]:
        assert self.settings.window_minutes is not None
        width = timedelta(minutes=self.settings.window_minutes)
        now = self._clock()
        aligned_end = _EPOCH + ((now - _EPOCH) // width) * width
        if after is None:
            first = self.store.fetch_dicts("ops_first_ts", {**key, "after": None})[0]["first_ts"]
            if first is None:
                return []
            after = _EPOCH + ((first - _EPOCH) // width) * width
        starts = []
        s = after
        while s + width <= aligned_end:
            starts.append(s)
            s += width
        windows = [(s, s + width) for s in starts[-self.max_windows * 4:]]
        nonempty = [w for w in windows
                    if self.store.execute("ops_count_range", {**key, "start": w[0], "end": w[1]})[0][0]]
        return nonempty[-self.max_windows:]

    def check_model(self, model_name: str, model_version: str) -> tuple[list[str], str | None]:
        """Test every pending window of the model version; return (run ids, why nothing ran)."""
        checks, why, _ = self.check_windows(model_name, model_version)
        return [c.run_id for c in checks], why

    def check_windows(self, model_name: str, model_version: str
                      ) -> tuple[list[WindowCheck], str | None, EnrichingWindow | None]:
        """Read and test each pending window of the model version once.

        Returns the window checks, why nothing ran (or ``None``), and the window left for a
        later cycle because it is still being enriched (or ``None``); windows after an enriching
        one wait with it, so windows are still checked in order.
        """
        from monitor.persist.references import load_reference, reference_for
        from monitor.persist.runs import check_records

        reference_name = reference_for(self.store, model_name, model_version)
        if reference_name is None:
            log.warning("drift_check %s %s: no reference set for this version; skipped",
                        model_name, model_version)
            return [], f"no reference set for version {model_version}", None
        windows = self.pending_windows(model_name, model_version)
        if not windows:
            return [], "no complete new window", None
        reference = load_reference(self.store, reference_name)
        checks: list[WindowCheck] = []
        for start, end in windows:
            table = self.store.read_window(model_name, model_version=model_version, start=start, end=end)
            pending = _pending_enrichment(table)
            if pending and self._clock() - end < timedelta(seconds=self.settings.enrich_max_wait_s):
                waiting = EnrichingWindow(model_name, model_version, start, end, table.num_rows, pending)
                log.info("drift_check %s %s: window [%s, %s) still enriching (%d of %d rows); "
                         "left for a later cycle", model_name, model_version, start, end, pending,
                         table.num_rows)
                why = None if checks else (f"window still enriching: {pending} of {table.num_rows} "
                                           "rows wait for embeddings/tokenizer stats")
                return checks, why, waiting
            if pending:
                log.warning("drift_check %s %s: window [%s, %s) checked without its %d of %d rows "
                            "never enriched (waited past enrich_max_wait_s)", model_name, model_version,
                            start, end, pending, table.num_rows)
                table = table.filter(_enriched_mask(table))
            run_id, report = check_records(self.store, table, reference, model_name=model_name,
                                           model_version=model_version, reference_name=reference_name,
                                           start=start, end=end, signals=self.signals)
            log.info("drift run %s for %s %s [%s, %s): drifted=%s", run_id, model_name, model_version,
                     start, end, report.drifted)
            health = self._save_health(model_name, model_version, start, end, run_id, table)
            checks.append(WindowCheck(run_id=run_id, model_name=model_name, model_version=model_version,
                                      reference_name=reference_name, start=start, end=end, window=table,
                                      reference=reference, report=report, health=health))
        return checks, None, None

    def _save_health(self, model_name: str, model_version: str, start: datetime, end: datetime,
                     run_id: str, records: pa.Table) -> HealthSummary | None:
        from monitor.opshealth import health_window, save_health

        try:
            summary = health_window(self.store, model_name=model_name, model_version=model_version,
                                    start=start, end=end, records=records)
            save_health(self.store, summary, run_id=run_id)
        except Exception:  # health is evidence, not a reason to lose the drift run
            log.exception("health window for run %s failed", run_id)
            return None
        return summary

    def parent_check_due(self, check: WindowCheck) -> bool:
        """Whether the policy reads the paired test against the parent for this window's version
        (promoted over another, within the rules' horizon): :func:`monitor.retrain.postpromotion.due`."""
        from monitor.retrain.postpromotion import due

        return due(self.store, self.policy, check.model_name, check.model_version, check.end)

    def compare_with_parent(self, checks: Sequence[WindowCheck]) -> list[WindowCheck]:
        """The window checks of one model version with their paired test against the version it
        replaced (:func:`monitor.retrain.postpromotion.attach`)."""
        from monitor.retrain.postpromotion import attach

        return attach(self.store, self.settings, self.policy, checks)

    # -- policy ----------------------------------------------------------------------------
    def history_for(self, run_id: str, *, current: WindowCheck | None = None) -> History:
        """The windows (oldest first) and cooldown marks the policy needs to judge ``run_id``.

        With ``current`` (the in-memory check of ``run_id``) its window comes from the check, not
        from the store; earlier windows of the version come from their stored drift runs. Cooldown
        marks are the version's fired decisions counted from their last delivered notification
        (``outbox_cooldown_marks``): a decision whose notifications all failed starts none.
        """
        if current is not None:
            model_name, version = current.model_name, current.model_version
        else:
            run = self.store.fetch_dicts("ops_run", {"run_id": run_id})
            if not run:
                raise PolicyError(f"cannot evaluate drift run {run_id!r}: no such run")
            model_name, version = run[0]["model_name"], run[0]["model_version"]
        rows = self.store.fetch_dicts("ops_run_history", {"model_name": model_name, "run_id": run_id,
                                                          "n": self.policy.max_for})
        now = self._clock()
        vinfo = self.store.fetch_dicts("ops_model_version", {"model_name": model_name,
                                                             "model_version": version})
        keep: list[Window] = []
        for row in rows:  # newest first; stop at a version change: consecutive windows of this version
            if row["model_version"] != version:
                break
            if current is not None and row["run_id"] == run_id:
                keep.append(window_from_run(current.run_row(), report=current.report,
                                            health=current.health_row(),
                                            version=vinfo[0] if vinfo else None, now=now,
                                            parent=current.parent_row()))
                continue
            health = self.store.fetch_dicts("ops_run_health", {"run_id": row["run_id"]})
            parent = self.store.fetch_dicts("parent_check", {"run_id": row["run_id"]})
            keep.append(window_from_run(row, health=health[0] if health else None,
                                        version=vinfo[0] if vinfo else None, now=now,
                                        parent=json.loads(parent[0]["evidence"]) if parent else None))
        keep.reverse()
        cooldown = max((r.cooldown for r in self.policy.rules), default=timedelta(0))
        fired = [PastDecision(rule=str(d["rule"]), model_name=model_name, model_version=str(version),
                              run_id=d["run_id"], created_at=d["counted_at"])
                 for d in self.store.fetch_dicts("outbox_cooldown_marks", {
                     "model_name": model_name, "model_version": version, "since": now - cooldown,
                     "run_id": run_id})]
        return History(windows=keep, fired=fired)

    def evaluate_check(self, check: WindowCheck) -> tuple[list[Decision], list[ActionRecord]]:
        """Judge one in-memory window check; store decisions (with their outbox rows), run actions."""
        return self._evaluate(check.run_id, self.history_for(check.run_id, current=check),
                              window=lambda: check.window, reference=lambda: check.reference)

    def evaluate_run(self, run_id: str) -> tuple[list[Decision], list[ActionRecord]]:
        """Judge one stored drift run again (reads its window from the store only if an action asks)."""
        from monitor.persist.references import load_reference

        history = self.history_for(run_id)
        run = self.store.fetch_dicts("ops_run", {"run_id": run_id})[0]
        store = self.store

        def window() -> pa.Table:
            return store.read_window(run["model_name"], model_version=run["model_version"],
                                     start=run["window_start"], end=run["window_end"])

        def reference() -> pa.Table:
            return load_reference(store, run["reference_name"])

        return self._evaluate(run_id, history, window=window,
                              reference=reference if run["reference_name"] else None)

    def _evaluate(self, run_id: str, history: History, *, window: Callable[[], pa.Table],
                  reference: Callable[[], pa.Table] | None) -> tuple[list[Decision], list[ActionRecord]]:
        now = self._clock()
        decisions = [d for d in evaluate(self.policy, history, now=now) if d.run_id == run_id]
        records: list[ActionRecord] = []
        for d in decisions:
            notes = decision_notifications(self.settings, self.policy, d, dry_run=self.settings.dry_run)
            record_decision(self.store, d, notifications=notes, expire_after_s=self.settings.outbox_expire_s)
            log.info("policy: rule %s %s for %s (run %s)", d.rule, d.outcome, d.model_name, run_id)
            records.extend(run_decision_actions(self.store, self.settings, self.policy, d,
                                                dry_run=self.settings.dry_run, now=now, window=window,
                                                reference=reference, services=self.services))
        return decisions, records

    # -- notifications ---------------------------------------------------------------------
    def notifications_pending(self) -> bool:
        """Whether the outbox holds pending notifications."""
        return bool(self.store.execute("outbox_any_pending"))

    def deliver_notifications(self) -> dict[str, list[str]]:
        """One outbox delivery run (:func:`monitor.outbox.deliver_due`) on the scheduler's clock."""
        from monitor.outbox import backoff_for, deliver_due

        return deliver_due(self.store, clock=self._clock, backoff=backoff_for(self.settings)).to_dict()

    def ingest_drops(self) -> dict[str, Any]:
        """Ingest the collectors' Parquet drop files from ``settings.spool_dir``."""
        from monitor.recordfile import ingest_drop_files

        result = ingest_drop_files(self.store, self.settings.spool_dir)
        return {"files": result.files, "accepted": result.accepted, "duplicates": result.duplicates,
                "skipped": result.skipped, "failed": list(result.failed)}

    def export_lake(self) -> dict[str, Any]:
        """Write records ingested since the last export into ``settings.lake_path`` as this
        replica's prediction files (replica id: ``settings.lake_replica``, else the host name)."""
        import socket

        from monitor.lake.export import export_to_lake

        replica = self.settings.lake_replica or socket.gethostname()
        return export_to_lake(self.store, str(self.settings.lake_path), replica, now=self._clock())

    # -- shadow candidates -----------------------------------------------------------------
    def shadow_pending(self) -> bool:
        """Whether a retrain left candidates waiting for shadow evaluation."""
        return bool(self.store.execute("retrain_shadow_pending"))

    def evaluate_shadow(self) -> list[dict[str, Any]]:
        """Promote or reject the shadow candidates whose traffic window is complete; the rest wait."""
        from monitor.retrain.service import check_pending_shadow

        checks = check_pending_shadow(self.store, self.settings)
        for c in checks:
            if c.outcome is not None:
                log.info("shadow evaluation of %s %s: %s", c.model_name, c.version, c.outcome.decision)
        return [c.to_dict() for c in checks]

    # -- reports and retention -------------------------------------------------------------
    def render_check(self, check: WindowCheck) -> str:
        """Render the report of one window check from its in-memory records; return its path."""
        from reports.render import render_run

        return str(render_run(self.store, check.run_id, self.settings.reports_dir, current=check.window,
                              reference=check.reference))

    def render_reports(self) -> str:
        """Render missing run reports, timelines and the index; return the index path."""
        from reports.render import render_all

        return str(render_all(self.store, self.settings.reports_dir))

    def apply_retention(self) -> dict[str, Any]:
        """Export records older than ``retention_days`` to Parquet, then delete them."""
        cutoff = self._clock() - timedelta(days=self.settings.retention_days)
        exported = self.store.archive_before(self.settings.export_dir, cutoff)
        log.info("retention: exported and deleted %d records older than %s", exported, cutoff)
        return {"exported": exported, "cutoff": cutoff.isoformat()}

    # -- background scheduling -------------------------------------------------------------
    def _scheduled_delivery(self) -> None:
        try:
            if self.notifications_pending():
                FunctionJob(self.store, "deliver_notifications", self.deliver_notifications)()
        except Exception:  # the store is closing; the next tick tries again
            log.exception("notification delivery failed")

    def _scheduled_cycle(self) -> None:
        try:
            # each new window's report in the same pass; index and timelines on their own job
            result = self.run_cycle(reports=False, window_reports=True)
            log.info("drift cycle: %d runs, %d decisions", len(result.drift_runs), len(result.decisions))
        except Exception:  # listing models failed (store closing?); the next tick tries again
            log.exception("drift cycle failed")

    def start(self) -> None:
        """Start the background jobs (idempotent)."""
        if self._sched is not None:
            return
        from apscheduler.schedulers.background import BackgroundScheduler

        sched = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": int(self.misfire_grace_s)})
        now = datetime.now(UTC)
        sched.add_job(self._scheduled_cycle, "interval", seconds=self.settings.drift_interval_s,
                      id="drift_check", name="drift_check", next_run_time=now + timedelta(seconds=1))
        sched.add_job(self._scheduled_delivery, "interval", seconds=self.settings.outbox_interval_s,
                      id="deliver_notifications", name="deliver_notifications",
                      next_run_time=now + timedelta(seconds=0.5))  # a restart picks up pending rows
        sched.add_job(FunctionJob(self.store, "render_reports", self.render_reports), "interval",
                      seconds=self.reports_interval_s, id="render_reports", name="render_reports",
                      next_run_time=now + timedelta(seconds=min(30.0, self.reports_interval_s)))
        sched.add_job(FunctionJob(self.store, "retention", self.apply_retention), "interval",
                      seconds=self.retention_interval_s, id="retention", name="retention",
                      next_run_time=now + timedelta(seconds=60))
        sched.start()
        self._sched = sched
        log.info("scheduler started: drift every %.0fs, reports every %.0fs, retention every %.0fs",
                 self.settings.drift_interval_s, self.reports_interval_s, self.retention_interval_s)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the background jobs; with ``wait``, let running ones finish (idempotent)."""
        sched, self._sched = self._sched, None
        if sched is not None:
            sched.shutdown(wait=wait)
            log.info("scheduler stopped")

    @property
    def running(self) -> bool:
        """Whether the background scheduler is running."""
        return self._sched is not None

    def jobs(self) -> list[str]:
        """Ids of the scheduled jobs."""
        return [j.id for j in self._sched.get_jobs()] if self._sched is not None else []
