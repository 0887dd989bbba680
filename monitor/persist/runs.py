"""Drift runs: check a stored window against a reference set, record the outcome, read it back.

:func:`check_window` is what the scheduler and ``shiftwatch drift --db`` call;
:func:`save_run` writes one ``drift_runs`` row (the report JSON) and one
``drift_results`` row per signal, atomically. :func:`stored_report` is the one way back from
``drift_runs.result`` to a :class:`~monitor.drift.suite.DriftReport` (through
:meth:`~monitor.drift.suite.DriftReport.from_dict`): the policy, the reports and the API read
stored runs with it, so JSON exists only in the store and on the wire.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from monitor.drift.frame import DriftFrame
from monitor.drift.suite import DriftReport, DriftSuite
from monitor.errors import ConfigError, StoreError
from monitor.persist.references import load_reference, reference_for

if TYPE_CHECKING:  # pragma: no cover
    from monitor.store import Store

__all__ = ["check_records", "check_window", "save_run", "stored_report"]


def stored_report(value: str | bytes | Mapping[str, Any] | None) -> DriftReport:
    """The :class:`DriftReport` of a ``drift_runs.result`` value (JSON text, or the mapping a
    caller already holds); :class:`StoreError` when it is not a stored drift report."""
    try:
        data = json.loads(value) if isinstance(value, str | bytes) else value
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        return DriftReport.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"drift run result is not a drift report: {type(exc).__name__}: {exc}") from exc


def save_run(
    store: Store,
    report: DriftReport,
    *,
    model_name: str,
    model_version: str,
    reference_name: str | None,
    window_start: datetime | None,
    window_end: datetime | None,
) -> str:
    """Record a drift report; return its ``run_id``."""
    run_id = uuid.uuid4().hex
    rows = [s.to_dict() for s in report.signals]
    results = pa.table({
        "run_id": pa.array([run_id] * len(rows), pa.string()),
        "signal": pa.array([r["signal"] for r in rows], pa.string()),
        "method": pa.array([r["method"] for r in rows], pa.string()),
        "statistic": pa.array([r["statistic"] for r in rows], pa.float64()),
        "p_value": pa.array([r["p_value"] for r in rows], pa.float64()),
        "threshold": pa.array([r["threshold"] for r in rows], pa.float64()),
        "drifted": pa.array([r["drifted"] for r in rows], pa.bool_()),
        "status": pa.array([r["status"] for r in rows], pa.string()),
        "details": pa.array([json.dumps(r["details"]) for r in rows], pa.string()),
    })
    with store.transaction():
        store.execute("drift_insert_run", {
            "run_id": run_id, "model_name": model_name, "model_version": model_version,
            "reference_name": reference_name, "window_start": window_start,
            "window_end": window_end, "n_reference": report.n_reference,
            "n_current": report.n_current, "drifted": report.drifted,
            "result": json.dumps(report.to_dict()),
        })
        if rows:
            with store.registered("_drift_results", results):
                store.execute("drift_insert_results")
    return run_id


def _window_version(table: pa.Table) -> str | None:
    """The model version of the window's newest row."""
    if table.num_rows == 0:
        return None
    return str(table["model_version"][table.num_rows - 1].as_py())


def check_window(
    store: Store,
    *,
    model_name: str,
    model_version: str | None = None,
    reference_name: str | None = None,
    last_n: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    signals: Sequence[str] | None = None,
    alpha: float = 0.01,
    options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
) -> tuple[str, DriftReport]:
    """Read a window (``last_n`` rows or ``[start, end)``), test it against a
    reference set (named, or the newest of the model version) and save the run.

    Raises :class:`ConfigError` when no reference set can be found.
    """
    window = store.read_window(model_name, model_version=model_version, start=start, end=end,
                               last_n=last_n)
    version = model_version
    if version is None:
        version = _window_version(window)
        if version is None:
            rows = store.execute("drift_latest_version", {"model_name": model_name})
            version = str(rows[0][0]) if rows else None
    if reference_name is None:
        reference_name = reference_for(store, model_name, version) if version else None
        if reference_name is None:
            raise ConfigError(f"no reference set for model '{model_name}' version '{version}'; "
                              "create one with `shiftwatch reference create`")
    reference = load_reference(store, reference_name)
    return check_records(store, window, reference, model_name=model_name,
                         model_version=version or "unknown", reference_name=reference_name,
                         start=start, end=end, signals=signals, alpha=alpha, options=options, seed=seed)


def check_records(
    store: Store,
    window: pa.Table,
    reference: pa.Table,
    *,
    model_name: str,
    model_version: str,
    reference_name: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
    signals: Sequence[str] | None = None,
    alpha: float = 0.01,
    options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
) -> tuple[str, DriftReport]:
    """Test records already in memory (``window`` against ``reference``) and save the run.

    What :func:`check_window` does after reading; the scheduler calls it with the one copy of
    each window it reads per cycle. Missing ``start``/``end`` come from the window's timestamps.
    """
    suite = DriftSuite(signals, alpha=alpha, options=options, seed=seed)
    report = suite.fit(DriftFrame.from_arrow(reference)).compute(DriftFrame.from_arrow(window))
    w_start, w_end = start, end
    if window.num_rows and (w_start is None or w_end is None):
        ts = window["ts"]
        w_start = w_start or pc.min(ts).as_py()
        w_end = w_end or pc.max(ts).as_py()
    run_id = save_run(store, report, model_name=model_name, model_version=model_version,
                      reference_name=reference_name, window_start=w_start, window_end=w_end)
    return run_id, report
