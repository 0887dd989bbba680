"""The loop-service base: iterations guarded, failures survived and counted, overruns warned,
wake / stop / loops=N; and the three services built on it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from collectors.loops import LoopService, run_guarded

WAIT_S = 20.0
NEVER = 3600.0  # an interval no test waits for: iterations come from wake() or run_first


class Flaky(LoopService):
    """Fails on the given iterations (1-based); returns the iteration number otherwise."""

    def __init__(self, fail_on: set[int], **kwargs: float | bool) -> None:
        super().__init__("flaky", interval_s=kwargs.pop("interval_s", NEVER), **kwargs)  # type: ignore[arg-type]
        self.fail_on = fail_on
        self.calls = 0

    def run_once(self) -> int:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError(f"boom on call {self.calls}")
        return self.calls


def test_run_loops_survives_a_failed_iteration_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    svc = Flaky({2})
    with caplog.at_level(logging.ERROR, logger="shiftwatch.loops"):
        its = svc.run(loops=3)
    assert [it.ok for it in its] == [True, False, True]
    assert [it.result for it in its] == [1, None, 3]
    assert (svc.iterations, svc.failures, str(svc.last_error)) == (3, 1, "boom on call 2")
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None  # with its traceback
    assert not svc.running  # run() uses no thread


def test_the_thread_goes_on_after_a_failure_and_stops_when_asked() -> None:
    svc = Flaky({1, 3}, interval_s=0.01, error_backoff_s=0.01)
    svc.start()
    assert svc.wait_for(5, WAIT_S)
    assert svc.stop(WAIT_S) and not svc.running
    assert svc.failures == 2 and svc.calls >= 5
    done = svc.iterations
    assert not svc.wait_for(done + 1, 0.05)  # stopped: nothing more runs


def test_wake_cuts_the_wait_short_and_stop_runs_no_iteration() -> None:
    svc = Flaky(set())
    svc.start()
    assert svc.start() is svc  # a second start is a no-op while it runs
    assert svc.iterations == 0
    svc.wake()
    assert svc.wait_for(1, WAIT_S)
    svc.wake()
    assert svc.wait_for(2, WAIT_S)
    assert svc.stop(WAIT_S)
    assert svc.iterations == 2  # stop() woke the thread but ran nothing


def test_run_first_and_a_thread_that_ends_after_loops() -> None:
    svc = Flaky(set(), run_first=True)
    svc.start(loops=1)
    assert svc.wait_for(1, WAIT_S)
    assert svc.stop(WAIT_S) and svc.iterations == 1
    counted = Flaky(set(), interval_s=0.01)
    counted.start(loops=3)
    assert counted.wait_for(3, WAIT_S)
    assert counted._thread is not None
    counted._thread.join(WAIT_S)
    assert not counted.running and counted.iterations == 3  # it ended by itself


def test_an_overrun_is_warned_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    svc = LoopService("slow", interval_s=NEVER, target=lambda: release.wait(0.05), expected_s=0.0)
    with caplog.at_level(logging.WARNING, logger="shiftwatch.loops"):
        (it,) = svc.run(loops=1)
    assert it.ok and it.overran and svc.overruns == 1
    assert any("slow overran" in r.getMessage() for r in caplog.records)
    quick = LoopService("quick", interval_s=NEVER, target=lambda: None, expected_s=60.0)
    assert not quick.run()[0].overran and quick.overruns == 0


def test_run_guarded_returns_the_error_instead_of_raising() -> None:
    def boom() -> None:
        raise ValueError("no")

    it = run_guarded(boom, name="x")
    assert not it.ok and isinstance(it.error, ValueError) and it.duration_s >= 0
    assert run_guarded(lambda: 7, name="x").result == 7


def test_bad_arguments_and_a_base_without_work() -> None:
    with pytest.raises(ValueError):
        LoopService("zero", interval_s=0)
    (it,) = LoopService("empty", interval_s=1.0).run()
    assert isinstance(it.error, NotImplementedError)


def test_the_three_loops_run_on_the_base(tmp_path: Path) -> None:
    from collectors import Collector
    from monitor.enrich import Enricher
    from monitor.registry import PointerWatcher, write_active_pointer
    from monitor.store import Store
    from tests.collectors.test_collector import ListSink

    col = Collector(ListSink(), flush_interval_s=NEVER)
    assert isinstance(col._loop, LoopService) and col._loop.running
    col.log({"model_name": "m", "model_version": "1", "predicted_label": "a", "confidence": 0.5})
    col._loop.wake()
    assert col._loop.wait_for(1, WAIT_S) and col.stats().sent == 1
    col.close()
    assert not col._loop.running

    seen: list[str] = []
    watcher = PointerWatcher(tmp_path / "models", "m", seen.append, interval_s=NEVER)
    write_active_pointer(tmp_path / "models", "m", "v2")
    watcher.start()
    watcher.service.wake()
    assert watcher.service.wait_for(1, WAIT_S) and seen == ["v2"]
    watcher.stop()
    assert not watcher.service.running

    with Store(tmp_path / "e.duckdb") as store:
        enricher = Enricher(store, lambda name, version: (_ for _ in ()).throw(KeyError(name)))
        enricher.start()
        assert enricher.service.wait_for(1, WAIT_S)  # the first sweep runs at once
        enricher.stop()
        assert not enricher.service.running and enricher.service.failures == 0
