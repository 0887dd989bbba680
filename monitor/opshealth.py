"""Operational health per window: the third monitoring layer beside prediction behaviour and
representation drift.

For one model (optionally one version) and a time window ``[start, end)``:

- throughput (records per second) and the latency quantiles p50/p95/p99 of ``latency_ms``
  (from ``predictions``);
- serving errors and tokenizer failures reported by collectors (``serving_errors``);
- collector queue depth, capacity, drops and sink failures (``collector_heartbeats``; drops
  and failures are cumulative counters, so the window's share is the last value inside the
  window minus the last value before it).

:func:`health_window` computes a :class:`HealthSummary`; :func:`save_health` stores it in
``health_windows`` (the scheduler calls both once per drift window, with the drift run id,
so re-running a window replaces its row). A value that cannot be known — no latency logged,
or the collector tables missing — is ``None``, never a reassuring zero.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from monitor.errors import StoreError
from monitor.store import Store

__all__ = ["HealthSummary", "health_history", "health_window", "save_health"]

log = logging.getLogger(__name__)

_HEALTH_SCHEMA = pa.schema(
    [
        ("health_id", pa.string()),
        ("run_id", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("n_records", pa.int64()),
        ("duration_s", pa.float64()),
        ("throughput_per_s", pa.float64()),
        ("latency_p50_ms", pa.float64()),
        ("latency_p95_ms", pa.float64()),
        ("latency_p99_ms", pa.float64()),
        ("n_errors", pa.int64()),
        ("n_tokenizer_failures", pa.int64()),
        ("error_rate", pa.float64()),
        ("queue_depth_max", pa.int64()),
        ("queue_capacity", pa.int64()),
        ("dropped", pa.int64()),
        ("sink_failures", pa.int64()),
    ]
)


@dataclass(frozen=True, slots=True)
class HealthSummary:
    """Operational health of one model (version) in one window.

    ``error_rate`` is serving errors / (records + serving errors). ``duration_s`` is
    ``end - start`` when both are given, else the span of the records' timestamps.
    """

    model_name: str
    model_version: str | None
    window_start: datetime | None
    window_end: datetime | None
    n_records: int
    duration_s: float | None
    throughput_per_s: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    n_errors: int
    n_tokenizer_failures: int
    error_rate: float | None
    queue_depth_max: int | None
    queue_capacity: int | None
    dropped: int | None
    sink_failures: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (timestamps as ISO 8601)."""
        out = asdict(self)
        for key in ("window_start", "window_end"):
            value = out[key]
            out[key] = value.isoformat() if isinstance(value, datetime) else None
        return out


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _prediction_stats(records: pa.Table) -> dict[str, Any]:
    """What ``server_health_predictions`` computes, from records in memory (``quantile_cont``
    is numpy's linear interpolation)."""
    import numpy as np
    import pyarrow.compute as pc

    n = records.num_rows
    span = pc.min_max(records["ts"]).as_py() if n else {"min": None, "max": None}
    lat = records["latency_ms"].drop_null().to_numpy() if "latency_ms" in records.column_names else None
    has = lat is not None and lat.size > 0
    q = np.quantile(lat, [0.5, 0.95, 0.99]) if has and lat is not None else [None, None, None]
    return {"n": n, "first_ts": span["min"], "last_ts": span["max"], "p50": q[0], "p95": q[1],
            "p99": q[2], "n_latency": int(lat.size) if lat is not None else 0}


def health_window(
    store: Store,
    *,
    model_name: str,
    model_version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    records: pa.Table | None = None,
) -> HealthSummary:
    """Compute the operational health of ``model_name`` (optionally one version) in ``[start, end)``.

    ``records``: the window's prediction records when the caller has them in memory already
    (the scheduler's one read per window); count, time span and latency quantiles then come
    from them instead of a second query of ``predictions``.
    """
    params = {"model_name": model_name, "model_version": model_version, "start": start, "end": end}
    pred = (_prediction_stats(records) if records is not None
            else store.fetch_dicts("server_health_predictions", params)[0])
    n = int(pred["n"] or 0)
    if start is not None and end is not None:
        duration: float | None = max((end - start).total_seconds(), 0.0)
    elif pred["first_ts"] is not None and pred["last_ts"] is not None:
        duration = (pred["last_ts"] - pred["first_ts"]).total_seconds()
    else:
        duration = None
    throughput = n / duration if duration else None
    has_latency = int(pred["n_latency"] or 0) > 0

    n_errors, n_tok = 0, 0
    errors_known = True
    try:
        err = store.fetch_dicts("server_health_errors", params)[0]
        n_errors, n_tok = int(err["n"] or 0), int(err["n_tokenizer"] or 0)
    except StoreError as exc:  # the collector tables are another migration's; tolerate absence
        log.warning("serving errors unavailable for health window: %s", exc)
        errors_known = False
    depth = cap = dropped = failures = None
    try:
        hb = store.fetch_dicts("server_health_heartbeats", params)[0]
        if int(hb["n_collectors"] or 0) > 0:
            depth, cap = _opt_int(hb["queue_depth_max"]), _opt_int(hb["queue_capacity"])
            dropped, failures = _opt_int(hb["dropped"]), _opt_int(hb["sink_failures"])
    except StoreError as exc:
        log.warning("collector heartbeats unavailable for health window: %s", exc)
    total = n + n_errors
    return HealthSummary(
        model_name=model_name,
        model_version=model_version,
        window_start=start,
        window_end=end,
        n_records=n,
        duration_s=duration,
        throughput_per_s=throughput,
        latency_p50_ms=_opt_float(pred["p50"]) if has_latency else None,
        latency_p95_ms=_opt_float(pred["p95"]) if has_latency else None,
        latency_p99_ms=_opt_float(pred["p99"]) if has_latency else None,
        n_errors=n_errors,
        n_tokenizer_failures=n_tok,
        error_rate=(n_errors / total) if (errors_known and total) else None,
        queue_depth_max=depth,
        queue_capacity=cap,
        dropped=dropped,
        sink_failures=failures,
    )


def save_health(store: Store, summary: HealthSummary, *, run_id: str | None = None) -> str:
    """Store ``summary`` in ``health_windows``; return its id.

    With a ``run_id`` (the drift run of the same window) the id is the run id, so saving the
    same window again replaces the row instead of adding one.
    """
    health_id = run_id or str(uuid.uuid4())
    row = {k: v for k, v in asdict(summary).items()}
    row.update(health_id=health_id, run_id=run_id)
    table = pa.Table.from_pylist([row], schema=_HEALTH_SCHEMA)
    with store.transaction(), store.registered("_health", table):
        store.execute("server_save_health")
    return health_id


def health_history(store: Store, model_name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """Stored health windows of ``model_name``, newest first (for timelines and policy conditions)."""
    return store.fetch_dicts("server_health_history", {"model_name": model_name, "n": int(limit)})
