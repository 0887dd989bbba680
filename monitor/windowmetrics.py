"""The per-window metrics a policy's ``{metric: NAME}`` conditions test, defined once.

:class:`WindowMetrics` is one frozen dataclass whose fields *are* the metric names; each field
carries its meaning, so the policy's validation (:data:`METRICS`), the metrics the scheduler
hands the policy (:meth:`WindowMetrics.of`) and the docs read the same list. It is pure: it
reads a :class:`~monitor.drift.suite.DriftReport`, the window's operational health (a
``ops_run_health`` row or :meth:`monitor.opshealth.HealthSummary.to_dict`) and the version's
promotion time; no I/O.

The labelled-row count is ``n_labelled``, as the performance signal spells it in its details.
Policy files written for the old metric name ``n_labeled`` keep working: the policy reads it as
``n_labelled`` and logs a deprecation warning once (:data:`DEPRECATED_METRICS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.drift.names import Signal

if TYPE_CHECKING:
    from monitor.drift.suite import DriftReport

__all__ = ["DEPRECATED_METRICS", "HEALTH_METRICS", "METRICS", "PARENT_METRICS", "WindowMetrics", "finite"]


def _metric(doc: str, *, health: bool = False, parent: bool = False) -> Any:
    return field(default=None, metadata={"doc": doc, "health": health, "parent": parent})


def finite(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, not a number, or not finite (the
    JSON a stored run was written as holds no NaN either)."""
    try:
        x = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """One window's metrics; ``None`` where the window does not know the value (a condition on
    an unknown metric never holds)."""

    n_current: float | None = _metric("rows in the window")
    confidence_mean_delta: float | None = _metric(
        "mean max-probability of the window minus that of the reference")
    estimated_accuracy_drop: float | None = _metric(
        "reference minus window mean confidence (CBPE-style estimate, valid for a calibrated model)")
    n_labelled: float | None = _metric("window rows with ground truth")
    realized_accuracy: float | None = _metric("accuracy of the window's labelled rows")
    realized_macro_f1: float | None = _metric("macro-F1 of the window's labelled rows")
    realized_accuracy_drop: float | None = _metric("reference accuracy minus window accuracy")
    realized_macro_f1_drop: float | None = _metric("reference macro-F1 minus window macro-F1")
    hours_since_promotion: float | None = _metric(
        "hours since the window's model version was promoted over an active one")
    parent_paired_p: float | None = _metric(
        "anytime-valid p-value that the version is worse than the version it was promoted over, both "
        "scored on the same labelled rows with text logged since the promotion "
        "(monitor.retrain.postpromotion)", parent=True)
    parent_accuracy_delta: float | None = _metric(
        "accuracy of the version minus that of the version it was promoted over, on those same rows",
        parent=True)
    n_paired_with_parent: float | None = _metric(
        "labelled rows with text (label in the label set) both versions were scored on", parent=True)
    n_labelled_since_promotion: float | None = _metric(
        "rows with ground truth logged since the promotion, with text or not", parent=True)
    latency_p50_ms: float | None = _metric("operational health: latency median", health=True)
    latency_p95_ms: float | None = _metric("operational health: latency 95th percentile", health=True)
    latency_p99_ms: float | None = _metric("operational health: latency 99th percentile", health=True)
    throughput_per_s: float | None = _metric("operational health: records per second", health=True)
    error_rate: float | None = _metric("operational health: serving errors / (records + errors)",
                                       health=True)
    n_errors: float | None = _metric("operational health: serving errors reported by collectors",
                                     health=True)
    n_tokenizer_failures: float | None = _metric("operational health: tokenizer failures", health=True)
    queue_depth_max: float | None = _metric("operational health: largest collector queue depth",
                                            health=True)
    dropped: float | None = _metric("operational health: records the collectors dropped", health=True)
    sink_failures: float | None = _metric("operational health: collector sink failures", health=True)

    @classmethod
    def of(cls, report: DriftReport, *, health: Mapping[str, Any] | None = None,
           promoted_at: datetime | None = None, at: datetime | None = None,
           parent: Mapping[str, Any] | None = None) -> WindowMetrics:
        """The metrics of one window: from its drift report's signal details (confidence means,
        realized or CBPE-estimated performance), its health window, the time ``at`` (the
        window's end) since its version was promoted over another active one (``promoted_at``),
        and the paired test against the version it replaced (``parent``: the ``metrics`` of a
        :class:`monitor.retrain.postpromotion.ParentCheck`)."""
        values: dict[str, float | None] = {"n_current": float(report.n_current)}
        conf = report.signal(Signal.CONFIDENCE)
        mean_drop = finite(conf.details.get("mean_drop")) if conf is not None else None
        if mean_drop is not None:
            values["confidence_mean_delta"] = -mean_drop
        perf_result = report.signal(Signal.PERFORMANCE)
        perf: Mapping[str, Any] = perf_result.details if perf_result is not None else {}
        values["n_labelled"] = finite(perf.get("n_labelled"))
        ref_acc = finite(perf.get("reference_accuracy"))
        est = finite(perf.get("estimated_accuracy"))
        if est is not None and ref_acc is not None:
            values["estimated_accuracy_drop"] = ref_acc - est
        cur_acc = finite(perf.get("current_accuracy"))
        if cur_acc is not None:
            values["realized_accuracy"] = cur_acc
            if ref_acc is not None:
                values["realized_accuracy_drop"] = ref_acc - cur_acc
        cur_f1 = finite(perf.get("current_macro_f1"))
        if cur_f1 is not None:
            values["realized_macro_f1"] = cur_f1
            ref_f1 = finite(perf.get("reference_macro_f1"))
            if ref_f1 is not None:
                values["realized_macro_f1_drop"] = ref_f1 - cur_f1
        if health:
            values.update({name: finite(health.get(name)) for name in HEALTH_METRICS})
        if parent:
            values.update({name: finite(parent.get(name)) for name in PARENT_METRICS})
        if promoted_at is not None and at is not None and at >= promoted_at:
            values["hours_since_promotion"] = (at - promoted_at).total_seconds() / 3600.0
        return cls(**values)

    def as_dict(self) -> dict[str, float | None]:
        """``{metric name: value}`` for every metric, in :data:`METRICS` order."""
        return asdict(self)


#: Every metric a ``{metric: NAME}`` condition may test, with its meaning.
METRICS: dict[str, str] = {f.name: str(f.metadata["doc"]) for f in fields(WindowMetrics)}
#: The metrics that come from the window's operational health (:mod:`monitor.opshealth`).
HEALTH_METRICS: tuple[str, ...] = tuple(f.name for f in fields(WindowMetrics) if f.metadata["health"])
#: The metrics of the paired test against the version a promoted one replaced.
PARENT_METRICS: tuple[str, ...] = tuple(f.name for f in fields(WindowMetrics) if f.metadata["parent"])
#: Old metric names still accepted in policy files (deprecated) → the name they mean.
DEPRECATED_METRICS: dict[str, str] = {"n_labeled": "n_labelled"}
