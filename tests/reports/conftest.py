"""Fixtures of the report tests: a store with a reference set and a few real drift runs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.store import Store
from tests.reports.synthetic import MODEL, T0, records


def build_store(path: Path, *, text: bool = True, n_ref: int = 400, n_cur: int = 300,
                shifts: tuple[float, ...] = (0.0, 0.6, 0.9), artifact_dir: Path | None = None) -> Store:
    """A store with reference set ``ref-v1`` and one drift run per entry of ``shifts``
    (hourly windows), an alert on the last run and version v1 activated before the first."""
    from monitor.persist.references import create_reference
    from monitor.persist.runs import check_window

    store = Store(path)
    ref = records(n_ref, start=T0 - timedelta(days=1), text=text, seed=1)
    create_reference(store, "ref-v1", ref, model_name=MODEL, model_version="v1", origin="test")
    store.fetchall_sql(
        "INSERT INTO model_versions (model_name, version, status, artifact_dir, activated_at) "
        "VALUES ($m, 'v1', 'active', $a, $t)",
        {"m": MODEL, "a": str(Path(path).parent / "no-artifacts" if artifact_dir is None else artifact_dir),
         "t": T0 - timedelta(minutes=30)})
    run_ids = []
    for i, shift in enumerate(shifts):
        start = T0 + timedelta(hours=i)
        store.insert_predictions(records(n_cur, start=start, shift=shift, text=text, seed=10 + i))
        run_id, _ = check_window(store, model_name=MODEL, model_version="v1", reference_name="ref-v1",
                                 start=start, end=start + timedelta(hours=1))
        run_ids.append(run_id)
    store.fetchall_sql(
        "INSERT INTO alerts (alert_id, model_name, rule, severity, run_id, created_at) "
        "VALUES ('a1', $m, 'embedding-and-confidence', 'critical', $r, $t)",
        {"m": MODEL, "r": run_ids[-1], "t": T0 + timedelta(hours=len(shifts))})
    return store


@pytest.fixture()
def report_store(tmp_path: Path) -> Any:
    """A store with three drift runs (no drift, drift, strong drift) and logged text."""
    store = build_store(tmp_path / "db.duckdb")
    yield store
    store.close()
