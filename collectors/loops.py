"""One loop-service base for every background thread of shiftwatch.

    LoopService      a daemon thread calling run_once() every interval_s (or at wake())
                     until stop(); survives a failed iteration (logged, counted), warns when
                     an iteration overruns expected_s; run(loops=N) and wait_for(n) for tests
    run_guarded()    one guarded call: the failure caught and logged, the overrun warned
                     (also what :class:`monitor.jobs.Job` runs each scheduled job through)

Used by the collector's flush thread (:class:`collectors.Collector`), the sidecar's enricher
(:class:`monitor.enrich.Enricher`) and the registry's pointer watcher
(:class:`monitor.registry.PointerWatcher`). Standard library only: the serving process
imports it (collectors), and so does the sidecar (monitor).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Iteration", "LoopService", "run_guarded"]

log = logging.getLogger("shiftwatch.loops")


@dataclass(frozen=True, slots=True)
class Iteration:
    """What one guarded call did."""

    duration_s: float
    result: Any = None
    error: BaseException | None = None
    overran: bool = False

    @property
    def ok(self) -> bool:
        """Whether the call returned without raising."""
        return self.error is None


def run_guarded(fn: Callable[[], Any], *, name: str, logger: logging.Logger = log,
                expected_s: float | None = None, what: str = "iteration") -> Iteration:
    """Call ``fn`` once: an exception is logged (with its traceback) and returned, never raised;
    a call longer than ``expected_s`` logs an overrun WARNING (``"<name> overran: ..."``)."""
    t0 = time.perf_counter()
    result: Any = None
    error: BaseException | None = None
    try:
        result = fn()
    except Exception as exc:  # the loop survives any failure of one iteration
        error = exc
        logger.exception("%s: %s failed", name, what)
    duration = time.perf_counter() - t0
    overran = expected_s is not None and duration > expected_s
    if overran:
        logger.warning("%s overran: %.1fs > expected %.1fs", name, duration, expected_s)
    return Iteration(duration, result, error, overran)


class LoopService:
    """A background thread that runs :meth:`run_once` until :meth:`stop`.

    Subclass and write :meth:`run_once`, or pass ``target``. The thread waits ``interval_s``
    (cut short by :meth:`wake`) and then runs one iteration — or runs first and then waits,
    with ``run_first=True``. An iteration that raises is logged and counted in
    :attr:`failures`, and the next one follows after ``error_backoff_s`` (default
    ``interval_s``); one that takes longer than ``expected_s`` logs an overrun warning and is
    counted in :attr:`overruns`. :meth:`stop` never runs an iteration of its own: a service
    that must finish work at shutdown does it after :meth:`stop` returns.

    For tests: :meth:`run` runs ``loops`` iterations on the caller's thread (same guard, no
    thread, no waiting); :meth:`wait_for` blocks until the thread has completed ``n``
    iterations; ``start(loops=N)`` lets the thread stop by itself after N iterations.
    """

    def __init__(self, name: str, *, interval_s: float, target: Callable[[], Any] | None = None,
                 expected_s: float | None = None, error_backoff_s: float | None = None,
                 run_first: bool = False, logger: logging.Logger | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.name = name
        self.interval_s = interval_s
        self.expected_s = expected_s
        self.error_backoff_s = interval_s if error_backoff_s is None else error_backoff_s
        self.run_first = run_first
        self.logger = logger or log
        self._target = target
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        self.iterations = 0
        self.failures = 0
        self.overruns = 0
        self.last_error: BaseException | None = None

    # -- the work ---------------------------------------------------------------------
    def run_once(self) -> Any:
        """One iteration's work (calls ``target`` unless a subclass overrides this)."""
        if self._target is None:
            raise NotImplementedError(f"{type(self).__name__} has no target and no run_once()")
        return self._target()

    def step(self) -> Iteration:
        """Run one guarded iteration on the caller's thread and count it."""
        it = run_guarded(self.run_once, name=self.name, logger=self.logger, expected_s=self.expected_s)
        with self._done:
            self.iterations += 1
            if not it.ok:
                self.failures += 1
                self.last_error = it.error
            if it.overran:
                self.overruns += 1
            self._done.notify_all()
        return it

    def run(self, *, loops: int = 1) -> list[Iteration]:
        """Run ``loops`` iterations back to back on the caller's thread (tests, one-shot use)."""
        return [self.step() for _ in range(loops)]

    # -- the thread -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (long iterations may check it to end early)."""
        return self._stop.is_set()

    def start(self, *, loops: int | None = None) -> LoopService:
        """Start the daemon thread (a no-op while it runs); with ``loops``, it ends after that
        many iterations."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(loops,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Cut the current wait short: the next iteration runs now."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Ask the thread to end after its current iteration and wait up to ``timeout_s``
        (``None``: as long as it takes). True when it has ended."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        ended = thread is None or not thread.is_alive()
        if ended:
            self._thread = None
        return ended

    def wait_for(self, n: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``n`` iterations have completed (tests); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._done:
            while self.iterations < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` or until woken; True when the loop should go on."""
        self._wake.wait(seconds)
        self._wake.clear()
        return not self._stop.is_set()

    def _loop(self, loops: int | None) -> None:
        done = 0
        wait = 0.0 if self.run_first else self.interval_s
        while loops is None or done < loops:
            if wait > 0 and not self._pause(wait):
                break
            if self._stop.is_set():
                break
            it = self.step()
            done += 1
            wait = self.interval_s if it.ok else self.error_backoff_s
