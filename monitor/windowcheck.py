"""One window checked in memory: what drift, policy, actions and the report renderer share.

The scheduler reads each pending window once per cycle and builds a :class:`WindowCheck`:
the window's records, its reference set, the saved :class:`~monitor.drift.suite.DriftReport`,
the operational :class:`~monitor.opshealth.HealthSummary` of the same rows and, for a version
promoted over another, the paired test against that parent as of the window's end
(:class:`~monitor.retrain.postpromotion.ParentCheck`). The policy's
view of it (:meth:`WindowCheck.run_row`), the actions' window/reference loaders and the run
report are all built from this one object, so nothing downstream reads the window again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from monitor.drift.suite import DriftReport
    from monitor.opshealth import HealthSummary
    from monitor.retrain.postpromotion import ParentCheck

__all__ = ["EnrichingWindow", "WindowCheck"]


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """A drift run of one window with everything it was computed from."""

    run_id: str
    model_name: str
    model_version: str
    reference_name: str
    start: datetime
    end: datetime
    window: pa.Table
    reference: pa.Table
    report: DriftReport
    health: HealthSummary | None = None
    parent: ParentCheck | None = None

    def run_row(self) -> dict[str, Any]:
        """The run as an ``ops_run`` row, less its ``result`` JSON: the report itself is
        :attr:`report` (what :func:`monitor.scheduler.window_from_run` is given with the row)."""
        return {"run_id": self.run_id, "model_name": self.model_name, "model_version": self.model_version,
                "reference_name": self.reference_name, "window_start": self.start, "window_end": self.end,
                "n_reference": self.report.n_reference, "n_current": self.report.n_current,
                "drifted": self.report.drifted}

    def health_row(self) -> dict[str, Any] | None:
        """The health summary as an ``ops_run_health`` row (``None`` when none was computed)."""
        if self.health is None:
            return None
        return self.health.to_dict()

    def parent_row(self) -> dict[str, Any] | None:
        """The paired test against the parent as a ``parent_checks.evidence`` object (``None``: none ran)."""
        return None if self.parent is None else self.parent.to_dict()


@dataclass(frozen=True, slots=True)
class EnrichingWindow:
    """A window left for a later cycle because some of its text-only rows still lack their
    embedding or tokenizer statistics (zero-instrumentation enrichment is still running)."""

    model_name: str
    model_version: str
    start: datetime
    end: datetime
    n_rows: int
    n_pending: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"model_version": self.model_version, "window_start": self.start.isoformat(),
                "window_end": self.end.isoformat(), "rows": self.n_rows, "pending_enrichment": self.n_pending}
