"""A background-job base: subclasses write :meth:`Job.run_once`; the base does the rest.

Every run is recorded in ``job_runs`` (started, finished, duration, ``ok``/``failed`` and the
error), logged, and survives a failed iteration: an exception is caught, stored and logged,
and the next run happens as scheduled. A run that takes longer than ``expected_s`` logs an
overrun warning. :meth:`Job.run` runs ``loops=N`` iterations back to back (for tests and
``shiftwatch check``); :meth:`Job.__call__` runs one (what the scheduler calls).
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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
        """Run one iteration (the scheduler's entry point)."""
        return self.run(loops=1)[0]

    def run(self, *, loops: int = 1) -> list[JobRun]:
        """Run ``loops`` iterations back to back; failures are recorded, never raised."""
        return [self._one() for _ in range(loops)]

    def _one(self) -> JobRun:
        run_id = uuid.uuid4().hex
        started_at = self._clock()
        self._record("ops_job_start", {"run_id": run_id, "job": self.name, "started_at": started_at})
        t0 = time.perf_counter()
        status: Literal["ok", "failed"] = "ok"
        error: str | None = None
        result: Any = None
        try:
            result = self.run_once()
        except Exception as exc:  # the base survives any failure of one iteration
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed (run %s)", self.name, run_id)
        duration = time.perf_counter() - t0
        if self.expected_s is not None and duration > self.expected_s:
            log.warning("job %s overran: %.1fs > expected %.1fs", self.name, duration, self.expected_s)
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
