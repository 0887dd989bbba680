"""Retrains as background jobs of the sidecar: start, progress, cancel, retry when labels arrive.

:class:`RetrainJobs` runs :func:`monitor.retrain.service.retrain` in a thread of the sidecar
(the training itself in the service's spawned worker process), against the sidecar's own
:class:`~monitor.store.Store` — so training logs, the candidate's registration and the run
record are written through the process that owns the DuckDB file, while ingest, drift checks
and alerts keep their schedule. One retrain per model at a time: a second start raises
:class:`RetrainBusy` (HTTP 409).

Progress comes from the trainer's step callback (never from logs): steps done / total, phase,
elapsed time and an ETA from the mean step time so far (:class:`RetrainProgress`). A cancel
request sets a flag the trainer polls between steps; the run is recorded as ``cancelled``.

A retrain refused for too few labelled rows is recorded in ``retrain_refusals``;
:meth:`RetrainJobs.retry_refused` (run every ``interval_s`` by :meth:`RetrainJobs.start_retry_loop`,
recorded in ``job_runs`` as ``retrain_retry``) starts it again with its reason and config
once the model has as many labelled rows as it needed.

:func:`jobs_for` finds the jobs attached to a store, so the policy's ``retrain`` action hands
its run to the background instead of blocking the drift cycle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor.errors import RetrainCancelled, RetrainError, ShiftwatchError

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from monitor.retrain.service import RetrainConfig, RetrainOutcome
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["RetrainBusy", "RetrainJobs", "RetrainProgress", "jobs_for", "labelled_count", "merge_run",
           "register_metrics"]

log = logging.getLogger(__name__)

_attached: weakref.WeakKeyDictionary[Store, RetrainJobs] = weakref.WeakKeyDictionary()

#: states a run can be in; the last four are final
STATES = ("queued", "running", "cancelling", "promoted", "rejected", "shadow", "failed", "cancelled")


class RetrainBusy(RetrainError):
    """A retrain of this model is already running in the sidecar."""


@dataclass(slots=True)
class RetrainProgress:
    """The live state of one background retrain (``to_dict`` is the HTTP/JSON form)."""

    run_id: str
    model_name: str
    reason: str
    state: str = "queued"
    phase: int = 0
    phases: int = 0
    step: int = 0
    total_steps: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    train_started: float | None = None
    error: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def fraction(self) -> float:
        """Steps done over total (0 before the plan is known)."""
        return self.step / self.total_steps if self.total_steps else 0.0

    def elapsed_s(self) -> float:
        """Seconds since the run started (to its end once finished)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def eta_s(self) -> float | None:
        """Seconds of training left at the mean step time so far (None before the first step)."""
        if self.train_started is None or self.step == 0 or self.finished_at is not None:
            return None
        per_step = (time.monotonic() - self.train_started) / self.step
        return per_step * max(0, self.total_steps - self.step)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"run_id": self.run_id, "model_name": self.model_name, "reason": self.reason,
                "state": self.state, "phase": self.phase, "phases": self.phases, "step": self.step,
                "total_steps": self.total_steps, "fraction": self.fraction,
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "elapsed_s": self.elapsed_s(), "eta_s": self.eta_s(), "error": self.error,
                "outcome": self.outcome}


def labelled_count(store: Store, settings: Settings, model_name: str) -> int:
    """Labelled production rows with text whose label the active version knows (what a retrain counts)."""
    from monitor.registry import Registry
    from monitor.retrain.data import labelled_production

    active = Registry(store, settings.registry_dir).active(model_name)
    if active is None:
        return 0
    return len(labelled_production(store, model_name, list(active.preprocessing.labels)))


class RetrainJobs:
    """The sidecar's background retrains (one per model at a time)."""

    def __init__(self, store: Store, settings: Settings, *, keep_finished: int = 50) -> None:
        self.store = store
        self.settings = settings
        self._keep = keep_finished
        self._lock = threading.Lock()
        self._runs: dict[str, RetrainProgress] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._retry_thread: threading.Thread | None = None

    # -- attach to a store (for the policy's retrain action) -------------------------------
    def attach(self) -> RetrainJobs:
        """Make :func:`jobs_for` return these jobs for :attr:`store`."""
        _attached[self.store] = self
        return self

    # -- start / cancel / status ------------------------------------------------------------
    def start(self, model_name: str, *, reason: str, config: RetrainConfig | None = None,
              run_id: str | None = None) -> RetrainProgress:
        """Start a retrain of ``model_name`` in a background thread; :class:`RetrainBusy` if one runs."""
        run_id = run_id or uuid.uuid4().hex
        with self._lock:
            busy = [p for p in self._runs.values()
                    if p.model_name == model_name and p.state in ("queued", "running", "cancelling")]
            if busy:
                raise RetrainBusy(f"a retrain of model {model_name!r} is already running "
                                  f"(run {busy[0].run_id}); cancel it or wait")
            progress = RetrainProgress(run_id, model_name, reason, started_at=datetime.now(UTC))
            self._runs[run_id] = progress
            self._cancel[run_id] = threading.Event()
            self._prune()
            thread = threading.Thread(target=self._run, args=(progress, config), daemon=True,
                                      name=f"shiftwatch-retrain-{model_name}")
            self._threads[run_id] = thread
        thread.start()
        return progress

    def cancel(self, run_id: str) -> RetrainProgress:
        """Ask a running retrain to stop between two steps; :class:`RetrainError` if it is not running."""
        with self._lock:
            progress = self._runs.get(run_id)
            if progress is None:
                raise RetrainError(f"no retrain {run_id!r} is running in this sidecar")
            if progress.state not in ("queued", "running", "cancelling"):
                raise RetrainError(f"retrain {run_id} already finished ({progress.state})")
            progress.state = "cancelling"
            self._cancel[run_id].set()
        return progress

    def get(self, run_id: str) -> dict[str, Any]:
        """The live progress of ``run_id`` merged with its ``retrain_runs`` record.

        Runs this sidecar did not start (or has forgotten) come from the record alone.
        :class:`RetrainError` when neither knows the id.
        """
        with self._lock:
            progress = self._runs.get(run_id)
            live = progress.to_dict() if progress is not None else None
        rows = self.store.fetch_dicts("retrain_jobs_run", {"run_id": run_id})
        if live is None and not rows:
            raise RetrainError(f"no retrain run {run_id!r}")
        return merge_run(live, rows[0] if rows else None)

    def runs(self, model_name: str | None = None) -> list[dict[str, Any]]:
        """Runs of the ``retrain_runs`` table (newest first), live progress merged in."""
        with self._lock:
            live = {k: p.to_dict() for k, p in self._runs.items()}
        rows = self.store.fetch_dicts("retrain_runs", {"model_name": model_name})
        out = [merge_run(live.pop(str(r["run_id"]), None), r) for r in rows]
        out[:0] = [merge_run(p, None) for p in live.values()
                   if model_name is None or p["model_name"] == model_name]
        return out

    def wait(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait for ``run_id``'s thread to end; True when it has."""
        thread = self._threads.get(run_id)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def progress(self) -> Iterator[RetrainProgress]:
        """A snapshot of every known run's progress."""
        with self._lock:
            runs = [replace(p) for p in self._runs.values()]
        yield from runs

    # -- the worker thread ------------------------------------------------------------------
    def _run(self, progress: RetrainProgress, config: RetrainConfig | None) -> None:
        from monitor.retrain.service import retrain

        flag = self._cancel[progress.run_id]

        def on_step(step: int, total: int, phase: int, phases: int) -> None:
            with self._lock:
                if progress.train_started is None:
                    progress.train_started = time.monotonic()
                progress.step, progress.total_steps = step, total
                progress.phase, progress.phases = phase, phases

        with self._lock:
            if progress.state == "queued":
                progress.state = "running"
        outcome: RetrainOutcome | None = None
        state, error = "failed", None
        try:
            outcome = retrain(self.store, self.settings, progress.model_name, reason=progress.reason,
                              config=config, run_id=progress.run_id, on_step=on_step, cancel=flag.is_set)
            state = outcome.decision
        except RetrainCancelled as exc:
            state, error = "cancelled", str(exc)
        except ShiftwatchError as exc:
            error = str(exc)
        except Exception as exc:  # a background thread must record, not vanish
            log.exception("background retrain %s failed", progress.run_id)
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            progress.state = state
            progress.error = error
            progress.outcome = outcome.to_dict() if outcome is not None else None
            progress.finished_at = datetime.now(UTC)
        log.info("background retrain %s of %s: %s%s", progress.run_id, progress.model_name, state,
                 f" ({error})" if error else "")

    def _prune(self) -> None:
        done = [k for k, p in self._runs.items() if p.finished_at is not None]
        for k in done[: max(0, len(done) - self._keep)]:
            self._runs.pop(k, None)
            self._cancel.pop(k, None)
            self._threads.pop(k, None)

    # -- retry refused runs -----------------------------------------------------------------
    def retry_refused(self) -> list[dict[str, Any]]:
        """Start again every refused retrain whose model now has the labelled rows it needed.

        One start per model (its newest refusal's reason and config); all of the model's open
        refusals are closed with the new run id. Models still short stay open; a model with a
        retrain running is left for the next pass.
        """
        from monitor.retrain.service import RetrainConfig

        out: list[dict[str, Any]] = []
        for r in self.store.fetch_dicts("retrain_jobs_open_refusals"):
            name, needed = str(r["model_name"]), int(r["needed"])
            found = labelled_count(self.store, self.settings, name)
            item: dict[str, Any] = {"model_name": name, "refused_run_id": r["run_id"], "needed": needed,
                                    "found": found, "started_run_id": None}
            if found >= needed:
                raw = json.loads(r["config"]) if r["config"] else None
                config = RetrainConfig.from_dict(raw) if raw else None
                try:
                    started = self.start(name, reason=f"retry of {r['run_id']} ({found} labelled rows now, "
                                                      f"{needed} needed): {r['reason'] or ''}".rstrip(": "),
                                         config=config)
                except RetrainBusy:
                    item["busy"] = True
                else:
                    self.store.execute("retrain_jobs_mark_retried",
                                       {"model_name": name, "retried_run_id": started.run_id})
                    item["started_run_id"] = started.run_id
                    log.info("retrain of %s refused in %s started again as %s (%d/%d labelled rows)",
                             name, r["run_id"], started.run_id, found, needed)
            out.append(item)
        return out

    def start_retry_loop(self, interval_s: float) -> None:
        """Run :meth:`retry_refused` every ``interval_s`` as the ``retrain_retry`` job (idempotent)."""
        if self._retry_thread is not None:
            return
        from monitor.jobs import FunctionJob

        job = FunctionJob(self.store, "retrain_retry", self.retry_refused)

        def loop() -> None:
            while not self._stop.wait(interval_s):
                if self.store.fetch_dicts("retrain_jobs_open_refusals"):
                    job()

        self._retry_thread = threading.Thread(target=loop, daemon=True, name="shiftwatch-retrain-retry")
        self._retry_thread.start()

    def shutdown(self, *, timeout: float = 60.0) -> None:
        """Stop the retry loop, cancel running retrains and wait for their threads."""
        self._stop.set()
        with self._lock:
            running = [k for k, p in self._runs.items() if p.finished_at is None]
            for k in running:
                self._cancel[k].set()
                self._runs[k].state = "cancelling"
            threads = [self._threads[k] for k in running if k in self._threads]
        for t in threads:
            t.join(timeout)
        if self._retry_thread is not None:
            self._retry_thread.join(timeout)
            self._retry_thread = None
        if _attached.get(self.store) is self:
            del _attached[self.store]

    # -- Prometheus ---------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """``shiftwatch_retrain_progress{model,run_id}`` (fraction of steps done), ``..._steps_done``,
        ``..._eta_seconds`` and ``shiftwatch_retrain_state{model,run_id,state}``."""
        from prometheus_client.metrics_core import GaugeMetricFamily

        frac = GaugeMetricFamily("shiftwatch_retrain_progress",
                                 "Fraction of training steps done of a background retrain",
                                 labels=["model", "run_id"])
        steps = GaugeMetricFamily("shiftwatch_retrain_steps_done",
                                  "Training steps done of a background retrain",
                                  labels=["model", "run_id"])
        state = GaugeMetricFamily("shiftwatch_retrain_state",
                                  "1 for the current state of a background retrain",
                                  labels=["model", "run_id", "state"])
        eta = GaugeMetricFamily("shiftwatch_retrain_eta_seconds", "Estimated seconds of training left",
                                labels=["model", "run_id"])
        for p in self.progress():
            key = [p.model_name, p.run_id]
            frac.add_metric(key, p.fraction)
            steps.add_metric(key, float(p.step))
            state.add_metric([*key, p.state], 1.0)
            left = p.eta_s()
            if left is not None:
                eta.add_metric(key, left)
        yield from (frac, steps, state, eta)


def merge_run(live: dict[str, Any] | None, row: dict[str, Any] | None) -> dict[str, Any]:
    """One JSON-ready run: the record's fields, with the live progress (when running here) on top."""
    out: dict[str, Any] = {}
    if row is not None:
        for k, v in row.items():
            if k in ("reasons", "metrics") and isinstance(v, str):
                with contextlib.suppress(ValueError):
                    v = json.loads(v)
            out[k] = v.isoformat() if isinstance(v, datetime) else v
        out["state"] = row["status"]
    if live is not None:
        record_state = out.get("state")
        out.update({k: v for k, v in live.items() if k != "state" or record_state in (None, "running")})
        if record_state not in (None, "running"):
            out["state"] = record_state
    return out


def jobs_for(store: Store) -> RetrainJobs | None:
    """The background retrain jobs attached to ``store`` (the sidecar's), if any."""
    return _attached.get(store)



def register_metrics(jobs: RetrainJobs, registry: CollectorRegistry) -> None:
    """Export ``jobs``' progress gauges (:meth:`RetrainJobs.collect`) from ``registry`` at scrape time."""
    from prometheus_client.registry import Collector

    class _RetrainCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            return jobs.collect()

    registry.register(_RetrainCollector())
