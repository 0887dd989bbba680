"""Run a training job in a separate process, with a timeout, one retrain per model at a time.

The worker is started with the ``spawn`` method (a clean interpreter: no
forked DuckDB connection, no inherited threads, CUDA-safe). It never opens
the DuckDB file — the parent owns it — so training log rows travel back over
a queue and the parent hands them to its log sink. On timeout the worker is
terminated (then killed) and :class:`RetrainError` is raised.

Progress (``on_step``) travels over the same queue; a cancel request (``cancel()``
turning true) is passed to the child through a multiprocessing event, which the
trainer polls between steps (:class:`~monitor.errors.RetrainCancelled`).

:func:`model_lock` is an exclusive, non-blocking lock per model: an
``flock`` on ``<registry root>/<model>/.retrain.lock`` (across processes) plus
an in-process set (across threads, since ``flock`` locks are per process).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import RetrainCancelled, RetrainError
from monitor.retrain.trainer import Examples, LogSink, StepCallback, TrainConfig, TrainResult, train

__all__ = ["TrainJob", "model_lock", "run_in_worker", "run_inline"]

log = logging.getLogger(__name__)
_held: set[str] = set()
_held_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class TrainJob:
    """Everything a worker needs (picklable)."""

    model_dir: str
    train: Examples
    val: Examples
    labels: tuple[str, ...]
    config: TrainConfig
    out_dir: str


def run_inline(job: TrainJob, *, log_sink: LogSink | None = None, on_step: StepCallback | None = None,
               cancel: Callable[[], bool] | None = None) -> TrainResult:
    """Run the job in this process (tests, benchmarks, notebooks)."""
    return train(job.model_dir, job.train, job.val, labels=job.labels, config=job.config,
                 out_dir=job.out_dir, log_sink=log_sink, on_step=on_step, should_stop=cancel)


def _worker_main(job: TrainJob, out: Any, stop: Any = None) -> None:
    """Child-process entry point: train, streaming log rows and progress, then the result or the error."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        result = run_inline(job, log_sink=lambda rows: out.put(("log", rows)),
                            on_step=lambda *p: out.put(("progress", p)),
                            cancel=stop.is_set if stop is not None else None)
    except RetrainCancelled as exc:
        out.put(("cancelled", str(exc)))
        return
    except BaseException as exc:  # everything must reach the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    out.put(("result", result))


def run_in_worker(job: TrainJob, *, timeout_s: float, log_sink: LogSink | None = None,
                  on_step: StepCallback | None = None,
                  cancel: Callable[[], bool] | None = None) -> TrainResult:
    """Run the job in a spawned process; raise :class:`RetrainError` on failure or timeout
    (:class:`RetrainCancelled` once ``cancel()`` turned true and the child stopped)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_worker_main, args=(job, out, stop), name="shiftwatch-train", daemon=True)
    proc.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if cancel is not None and not stop.is_set() and cancel():
                stop.set()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetrainError(f"training timed out after {timeout_s:g} s; the worker was stopped")
            try:
                kind, payload = out.get(timeout=min(0.5, remaining))
            except queue.Empty:
                if not proc.is_alive():
                    raise RetrainError(
                        f"training worker exited with code {proc.exitcode} without a result") from None
                continue
            if kind == "log":
                if log_sink is not None:
                    log_sink(payload)
            elif kind == "progress":
                if on_step is not None:
                    on_step(*payload)
            elif kind == "cancelled":
                raise RetrainCancelled(payload)
            elif kind == "result":
                return payload  # type: ignore[no-any-return]
            else:
                raise RetrainError(f"training failed: {payload}")
    finally:
        if proc.is_alive():
            proc.join(timeout=5.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5.0)
        if proc.is_alive():  # pragma: no cover - terminate is normally enough
            proc.kill()
            proc.join()
        out.close()
        out.join_thread()


@contextlib.contextmanager
def model_lock(root: str | Path, model_name: str) -> Iterator[None]:
    """Hold the retrain lock of a model; :class:`RetrainError` if a retrain already holds it."""
    import fcntl

    path = Path(root) / model_name / ".retrain.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    with _held_lock:
        if key in _held:
            raise RetrainError(f"a retrain of model {model_name!r} is already running")
        _held.add(key)
    try:
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RetrainError(
                    f"a retrain of model {model_name!r} is already running (another process)") from exc
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        with _held_lock:
            _held.discard(key)
