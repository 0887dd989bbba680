"""A recorded scheduler job: subclasses write :meth:`Job.run_once`; the base does the rest.

Every run is recorded in ``job_runs`` (started, finished, duration, ``ok``/``failed`` and the
error), logged, and survives a failed iteration: an exception is caught, stored and logged,
and the next run happens as scheduled. A run that takes longer than ``expected_s`` logs an
overrun warning. The guard (catch, log, time, warn) is the loop-service base's
(:func:`collectors.loops.run_guarded`); what a job adds is the record in the store, so it is
what the scheduler runs, while the threads that loop on their own (collector flush, enricher,
pointer watcher) are :class:`collectors.loops.LoopService` s. :meth:`Job.__call__` runs once.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from collectors.loops import run_guarded
from monitor.errors import StoreError
from monitor.store import Store

__all__ = ["FunctionJob", "Job", "JobRun"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobRun:
    """The record of one job run (also stored in ``job_runs``)."""

    run_id: str
    job: str
    started_at: datetime
    duration_s: float
    status: Literal["ok", "failed"]
    error: str | None = None
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Job(ABC):
    """One kind of background work, recorded in ``job_runs`` under :attr:`name`."""

    def __init__(self, store: Store, name: str, *, expected_s: float | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.name = name
        self.expected_s = expected_s
        self._clock = clock or (lambda: datetime.now(UTC))

    @abstractmethod
    def run_once(self) -> Any:
        """Do one iteration's work; the return value is kept in :attr:`JobRun.result`."""

    def __call__(self) -> JobRun:
        """Run one iteration (the scheduler's entry point); failures are recorded, never raised."""
        run_id = uuid.uuid4().hex
        started_at = self._clock()
        self._record("ops_job_start", {"run_id": run_id, "job": self.name, "started_at": started_at})
        it = run_guarded(self.run_once, name=f"job {self.name}", logger=log, expected_s=self.expected_s,
                         what=f"run {run_id}")
        status: Literal["ok", "failed"] = "ok" if it.ok else "failed"
        error = None if it.error is None else f"{type(it.error).__name__}: {it.error}"
        result, duration = it.result, it.duration_s
        self._record("ops_job_finish", {"run_id": run_id, "finished_at": self._clock(),
                                        "duration_s": duration, "status": status,
                                        "error": error[:2000] if error else None})
        if status == "ok":
            log.info("job %s ok in %.2fs", self.name, duration)
        return JobRun(run_id, self.name, started_at, duration, status, error, result)

    def _record(self, query: str, params: dict[str, Any]) -> None:
        try:
            self.store.execute(query, params)
        except StoreError:  # recording must not kill the job (e.g. the store is closing)
            log.exception("job %s: cannot record %s", self.name, query)


class FunctionJob(Job):
    """A :class:`Job` whose iteration is a plain function."""

    def __init__(self, store: Store, name: str, fn: Callable[[], Any], *, expected_s: float | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(store, name, expected_s=expected_s, clock=clock)
        self._fn = fn

    def run_once(self) -> Any:
        return self._fn()
