"""Overhead of :func:`collectors.instrument_pipeline` on a real MiniLM text-classification pipeline.

    python benchmarks/bench_pipeline.py [--batch 1 16] [--calls 500] [--sink duckdb|http|none]
                                        [--threads 1] [--timeline] [--quick]

Two pipelines over the same weights (all-MiniLM-L6-v2 + a seeded classifier head): one bare,
one wrapped and logging through a real :class:`~collectors.Collector` to

- ``duckdb``: a :class:`~collectors.DuckDBSink` in this process (embedded mode);
- ``http``: an :class:`~collectors.HttpSink` to a ``shiftwatch serve`` sidecar in another
  process (the production setup; its API only, no scheduler);
- ``none``: a sink that keeps nothing (the wrapper and the collector's queue alone).

Calls alternate bare / wrapped on the same SST-2 sentences (the order flips every iteration,
so machine load and the collector's background flush hit both alike); the first calls of each
warm up and are not counted. For each batch size this prints p50/p99 of each pipeline and the
overhead (wrapped − bare) at p50 and p99 and the paired per-iteration median, each with a 95 %
bootstrap interval (iterations resampled as pairs, seed 0), as milliseconds and as a share of the
bare pipeline's own time. Target: ≤ 5 %.

``--timeline`` also records when the collector's flush thread was delivering and when the
garbage collector ran, and prints which share of the slowest calls of each pipeline overlapped
them (the attribution that found the batch-16 tail, see docs/serving-stacks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOKEN = "bench-token"


def _pipeline(path: str) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging, pipeline

    logging.set_verbosity_error()  # the freshly initialised head is expected
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1})
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path),
                    device="cpu")


@dataclass
class Timeline:
    """Intervals (perf_counter seconds) when the flush thread delivered and when GC ran."""

    flushes: list[tuple[float, float]] = field(default_factory=list)
    gcs: list[tuple[float, float]] = field(default_factory=list)
    _gc_start: float = 0.0

    def install(self) -> None:
        from collectors import collector as collector_module

        original = collector_module.Collector._flush_once
        flushes = self.flushes

        def timed(self: Any) -> None:
            t0 = time.perf_counter()
            try:
                original(self)
            finally:
                flushes.append((t0, time.perf_counter()))

        collector_module.Collector._flush_once = timed  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gcs.append((self._gc_start, time.perf_counter()))

    @staticmethod
    def overlaps(spans: Sequence[tuple[float, float]],
                 intervals: Sequence[tuple[float, float]]) -> np.ndarray:
        """For each call span, whether any interval overlapped it."""
        return np.array([any(b0 < t1 and b1 > t0 for b0, b1 in intervals) for t0, t1 in spans])


class NullSink:
    """Keeps nothing (measures the wrapper and the collector alone)."""

    supports_heartbeat = False
    spooled = spool_dropped = rejected = auth_failures = delivery_failures = 0

    def send(self, records: Sequence[Any]) -> int:
        return len(records)

    def send_errors(self, errors: Sequence[Any]) -> None:
        return None

    def send_heartbeat(self, beat: Any) -> None:
        return None

    def tick(self) -> None:
        return None

    def spool_records(self, records: Sequence[Any]) -> int:
        return 0

    def close(self) -> None:
        return None


@contextlib.contextmanager
def _sidecar(tmp: Path) -> Iterator[str]:
    """``shiftwatch serve`` (API only) in a child process on a free port."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    code = "import sys; from monitor.cli import main; sys.argv[0] = 'shiftwatch'; main()"
    env = {**os.environ, "SHIFTWATCH_TOKEN": TOKEN, "SHIFTWATCH_REPORTS_DIR": str(tmp / "reports"),
           "SHIFTWATCH_REGISTRY_DIR": str(tmp / "models")}
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--db", str(tmp / "sidecar.duckdb"),
                             "--port", str(port), "--no-scheduler", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the sidecar did not start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                    break
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def summarize(bare: np.ndarray, wrapped: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """p50/p99 of each, overheads at p50 / p99 / paired median with 95 % bootstrap intervals.

    ``bare[i]`` and ``wrapped[i]`` ran back to back in iteration ``i``; the bootstrap resamples
    iterations (pairs kept together).
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(bare), size=(n_boot, len(bare)))
    b, w = bare[idx], wrapped[idx]
    stats = {
        "p50": (np.percentile(wrapped, 50) - np.percentile(bare, 50),
                np.percentile(w, 50, axis=1) - np.percentile(b, 50, axis=1), np.percentile(bare, 50)),
        "p99": (np.percentile(wrapped, 99) - np.percentile(bare, 99),
                np.percentile(w, 99, axis=1) - np.percentile(b, 99, axis=1), np.percentile(bare, 99)),
        "paired median": (np.median(wrapped - bare), np.median(w - b, axis=1), np.percentile(bare, 50)),
    }
    out: dict[str, Any] = {"bare_p50": float(np.percentile(bare, 50)),
                           "bare_p99": float(np.percentile(bare, 99)),
                           "wrapped_p50": float(np.percentile(wrapped, 50)),
                           "wrapped_p99": float(np.percentile(wrapped, 99))}
    for name, (point, boot, ref) in stats.items():
        lo, hi = _interval(boot)
        out[name] = {"ms": float(point), "ci_ms": (lo, hi), "share": float(point / ref),
                     "ci_share": (lo / float(ref), hi / float(ref))}
    return out


def run_batch(bare: Callable[[Any], Any], wrapped: Callable[[Any], Any], texts: Sequence[str], *,
              batch: int, calls: int, warmup: int, timeline: Timeline | None) -> None:
    """Interleave the two pipelines ``warmup + calls`` times and print the summary."""
    t_bare: list[float] = []
    t_wrapped: list[float] = []
    spans: dict[str, list[tuple[float, float]]] = {"bare": [], "wrapped": []}
    for i in range(warmup + calls):
        start = (i * batch) % max(len(texts) - batch, 1)
        chunk = list(texts[start:start + batch])
        inputs: object = chunk[0] if batch == 1 else chunk
        order = [("bare", bare), ("wrapped", wrapped)]
        if i % 2:
            order.reverse()
        outs = {}
        for name, fn in order:
            t0 = time.perf_counter()
            outs[name] = fn(inputs)
            t1 = time.perf_counter()
            if i >= warmup:
                (t_bare if name == "bare" else t_wrapped).append((t1 - t0) * 1000.0)
                spans[name].append((t0, t1))
        assert outs["bare"] == outs["wrapped"], "the wrapper changed a result"
    b, w = np.array(t_bare), np.array(t_wrapped)
    s = summarize(b, w)
    print(f"batch {batch}: {calls} calls of each, load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"  bare     p50 {s['bare_p50']:8.2f} ms   p99 {s['bare_p99']:8.2f} ms")
    print(f"  wrapped  p50 {s['wrapped_p50']:8.2f} ms   p99 {s['wrapped_p99']:8.2f} ms")
    for name in ("p50", "p99", "paired median"):
        o = s[name]
        print(f"  overhead {name:<13} {o['ms']:+7.2f} ms {o['share']:+6.1%}   "
              f"95% CI [{o['ci_share'][0]:+.1%}, {o['ci_share'][1]:+.1%}]")
    if timeline is not None:
        for name, times in (("bare", b), ("wrapped", w)):
            slow = times >= np.percentile(times, 95)
            flush = Timeline.overlaps(spans[name], timeline.flushes)
            during_gc = Timeline.overlaps(spans[name], timeline.gcs)
            print(f"  {name:<8} calls overlapping a flush: all {flush.mean():.0%}, slowest 5 % "
                  f"{flush[slow].mean():.0%}; a GC run: all {during_gc.mean():.0%}, slowest 5 % "
                  f"{during_gc[slow].mean():.0%}")
            print(f"  {name:<8} p50 of calls with / without a flush overlapping: "
                  f"{np.median(times[flush]) if flush.any() else float('nan'):.2f} / "
                  f"{np.median(times[~flush]) if (~flush).any() else float('nan'):.2f} ms")
        timeline.flushes.clear()
        timeline.gcs.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500, help="measured calls of each pipeline per batch size")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16], help="texts per call")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--sink", choices=["duckdb", "http", "none"], default="duckdb")
    ap.add_argument("--timeline", action="store_true", help="attribute the slowest calls (flush, GC)")
    ap.add_argument("--quick", action="store_true",
                    help="100 calls per batch size (a smoke run: a p99 of 100 calls is one call)")
    args = ap.parse_args()
    if args.quick:
        args.calls = min(args.calls, 100)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated run still stops its sidecar

    import torch

    from collectors import Collector, DuckDBSink, HttpSink, instrument_pipeline
    from collectors.encoding import minilm_path
    from monitor.datasets import sst2

    torch.set_num_threads(args.threads)
    texts = sst2("dev").texts
    path = str(minilm_path())
    bare, pipe = _pipeline(path), _pipeline(path)
    timeline = Timeline() if args.timeline else None
    if timeline is not None:
        timeline.install()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        store: Any = None
        sink: Any
        if args.sink == "duckdb":
            from monitor.store import Store

            store = Store(Path(tmp) / "bench.duckdb")
            sink = DuckDBSink(store)
        elif args.sink == "http":
            base = stack.enter_context(_sidecar(Path(tmp)))
            sink = HttpSink(base, token=TOKEN, spool_dir=Path(tmp) / "spool")
        else:
            sink = NullSink()
        collector = Collector(sink)  # the production defaults
        wrapped = instrument_pipeline(pipe, collector, model_name="bench", model_version="v1")
        print(f"MiniLM text-classification pipeline, sink {args.sink}, torch threads {args.threads}, "
              f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, torch {torch.__version__}")
        for batch in args.batch:
            run_batch(bare, wrapped, texts, batch=batch, calls=args.calls, warmup=args.warmup,
                      timeline=timeline)
        collector.close()
        st = collector.stats()
        print(f"collector: logged {st.logged}, sent {st.sent}, dropped {st.dropped}, rejected {st.rejected}"
              + (f"; stored {store.count_predictions()}" if store is not None else ""))
        if store is not None:
            store.close()


if __name__ == "__main__":
    main()
