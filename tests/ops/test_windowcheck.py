"""One pass per window: each window is read once per cycle; enriching windows wait, not fail."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from monitor.enrich import _ENRICHED_SCHEMA
from monitor.policy import parse_policy
from monitor.scheduler import Scheduler
from monitor.settings import Settings
from monitor.store import Store
from tests.ops.conftest import T0, Receiver, make_records, seed_reference

SHIFTED: dict[str, Any] = {"shift": 0.8, "conf_a": 3.0, "conf_b": 3.0, "p_positive": 0.8}


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(db_path=tmp_path / "ops.duckdb", reports_dir=tmp_path / "reports",
                    export_dir=tmp_path / "export", registry_dir=tmp_path / "models",
                    spool_dir=tmp_path / "spool", **{"window_size": 300, **kw})


def text_only(records: list[dict[str, Any]], every: int) -> list[dict[str, Any]]:
    """Strip the embedding and tokenizer stats of every ``every``-th record (zero instrumentation)."""
    out = []
    for i, r in enumerate(records):
        if i % every == 0:
            r = {k: v for k, v in r.items() if k not in ("embedding", "n_tokens", "n_unk", "truncated")}
        out.append(r)
    return out


def enrich_from(store: Store, originals: list[dict[str, Any]]) -> None:
    """Write the stripped values back through the enricher's own UPDATE."""
    table = pa.table({"event_id": [r["event_id"] for r in originals],
                      "embedding": [r["embedding"] for r in originals],
                      "n_tokens": [r["n_tokens"] for r in originals],
                      "n_unk": [r["n_unk"] for r in originals],
                      "truncated": [r["truncated"] for r in originals],
                      "n_chars": [r["n_chars"] for r in originals]}, schema=_ENRICHED_SCHEMA)
    with store.transaction(), store.registered("_enriched", table):
        store.execute("server_apply_enrichment")


def test_an_enriching_window_is_skipped_then_checked(store: Store, tmp_path: Path) -> None:
    seed_reference(store)
    originals = make_records(300, seed=2, start=T0)
    store.insert_predictions(text_only(originals, every=5))  # 60 of 300 rows wait for enrichment
    clock = [T0 + timedelta(minutes=10)]
    sched = Scheduler(settings_for(tmp_path), store, clock=lambda: clock[0],
                      policy=parse_policy("rules:\n  - name: r\n    when: {all: [{signal: embedding, "
                                          "drifted: true}]}\n"))
    first = sched.run_cycle(reports=False)
    assert first.ok and first.drift_runs == ()  # not a failed job
    waiting = first.enriching["sentiment"]
    assert (waiting.n_rows, waiting.n_pending) == (300, 60)
    assert first.to_dict()["enriching"]["sentiment"]["pending_enrichment"] == 60
    assert "60 of 300 rows" in first.skipped["sentiment"]
    assert store.fetchall_sql("SELECT DISTINCT status FROM job_runs") == [("ok",)]
    enrich_from(store, originals[::5])
    second = sched.run_cycle(reports=False)
    (run_id,) = second.drift_runs
    assert second.enriching == {}
    assert store.fetchall_sql("SELECT n_current FROM drift_runs WHERE run_id = $r", {"r": run_id}) == [(300,)]


def test_a_window_never_enriched_is_checked_after_the_wait(store: Store, tmp_path: Path) -> None:
    seed_reference(store)
    store.insert_predictions(text_only(make_records(300, seed=2, start=T0), every=5))
    sched = Scheduler(settings_for(tmp_path, enrich_max_wait_s=600), store,
                      clock=lambda: T0 + timedelta(minutes=20),
                      policy=parse_policy("rules:\n  - name: r\n    when: {all: [{signal: embedding, "
                                          "drifted: true}]}\n"))
    result = sched.run_cycle(reports=False)
    (run_id,) = result.drift_runs  # checked without the 60 rows that never got an embedding
    assert result.ok and result.enriching == {}
    assert store.fetchall_sql("SELECT n_current FROM drift_runs WHERE run_id = $r", {"r": run_id}) == [(240,)]


def test_each_window_is_read_once_per_cycle(store: Store, tmp_path: Path, receiver: Receiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seed_reference(store)
    store.insert_predictions(make_records(300, seed=2, start=T0, **SHIFTED))
    store.insert_predictions(make_records(300, seed=3, start=T0 + timedelta(hours=1), **SHIFTED))
    policy = parse_policy(f"actions:\n  notify: {{url: '{receiver.url}'}}\nrules:\n  - name: r\n"
                          "    when: {all: [{signal: embedding, drifted: true}]}\n"
                          "    actions: [notify, {review: {n: 10}}]\n")
    sched = Scheduler(settings_for(tmp_path), store, policy=policy, clock=lambda: T0 + timedelta(hours=3))
    reads: Counter[str] = Counter()
    real_arrow, real_dicts = store.fetch_arrow, store.fetch_dicts

    def arrow(name: str, params: Any = None) -> pa.Table:
        reads[name] += 1
        return real_arrow(name, params)

    def dicts(name: str, params: Any = None) -> list[dict[str, Any]]:
        reads[name] += 1
        return real_dicts(name, params)

    monkeypatch.setattr(store, "fetch_arrow", arrow)
    monkeypatch.setattr(store, "fetch_dicts", dicts)
    result = sched.run_cycle(reports=True)
    assert result.ok, result.to_dict()
    assert len(result.drift_runs) == 2
    assert {a.kind: a.status for a in result.actions} == {"notify": "ok", "review": "ok"}
    assert len(receiver.requests) == 2
    assert all((tmp_path / "reports" / "runs" / f"{r}.html").exists() for r in result.drift_runs)
    # two windows, each read once (drift, health, policy, review, report share it); the
    # reference once for the model; no second pass over the window's rows for health
    assert reads["read_window"] + reads["read_last_n"] == 2
    assert reads["drift_reference_rows"] == 1
    assert reads["server_health_predictions"] == 0
    assert reads["ops_run"] == 0  # the policy judges the in-memory check, not the stored run
