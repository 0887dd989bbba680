"""The background-job base: every run recorded, failures survived, overruns warned."""

from __future__ import annotations

import logging

import pytest

from monitor.jobs import FunctionJob, Job
from monitor.store import Store


class Flaky(Job):
    """Fails on the given iterations (1-based), returns the iteration number otherwise."""

    def __init__(self, store: Store, fail_on: set[int]) -> None:
        super().__init__(store, "flaky")
        self.fail_on = fail_on
        self.calls = 0

    def run_once(self) -> int:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError(f"boom on call {self.calls}")
        return self.calls


def test_a_failing_iteration_is_recorded_and_the_next_one_runs(store: Store) -> None:
    job = Flaky(store, fail_on={2})
    runs = [job() for _ in range(3)]
    assert [r.status for r in runs] == ["ok", "failed", "ok"]
    assert [r.result for r in runs] == [1, None, 3]
    assert runs[1].error == "RuntimeError: boom on call 2"
    rows = store.fetch_dicts("ops_job_runs", {"prefix": "flaky"})
    assert [(r["run_id"], r["status"], r["error"]) for r in rows] == [
        (runs[0].run_id, "ok", None), (runs[1].run_id, "failed", "RuntimeError: boom on call 2"),
        (runs[2].run_id, "ok", None)]
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 and r["finished_at"] for r in rows)


def test_call_runs_one_iteration_and_overrun_warns(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    job = FunctionJob(store, "slowish", lambda: sum(range(200_000)), expected_s=0.0)
    with caplog.at_level(logging.WARNING, logger="monitor.jobs"):
        run = job()
    assert run.ok and run.result == sum(range(200_000))
    assert any("overran" in r.getMessage() for r in caplog.records)


def test_recording_failures_do_not_kill_the_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "j.duckdb")
    job = FunctionJob(store, "after-close", lambda: 42)
    store.close()
    assert job().result == 42  # the store is gone; the job still ran and said so in the log
