"""Overhead of :func:`collectors.instrument_pipeline` on a real MiniLM text-classification pipeline.

    python benchmarks/bench_pipeline.py [--calls 200] [--batch 1] [--threads 1]

Two pipelines over the same weights (all-MiniLM-L6-v2 + a seeded classifier head): one bare,
one wrapped and logging to a :class:`~collectors.DuckDBSink` through a real
:class:`~collectors.Collector`. Calls alternate bare / wrapped on the same SST-2 sentences (so
machine load hits both alike); the first calls of each warm up and are not counted. Prints
p50/p99 per call of each, and the overhead (wrapped − bare) at p50 and p99 as milliseconds and
as a share of the bare pipeline's own time. Target: ≤ 5 %.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _pipeline(path: str) -> object:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging, pipeline

    logging.set_verbosity_error()  # the freshly initialised head is expected
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1})
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path),
                    device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="measured calls of each pipeline")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1, help="texts per call")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = ap.parse_args()

    import torch

    from collectors import Collector, DuckDBSink, instrument_pipeline
    from collectors.encoding import minilm_path
    from monitor.datasets import sst2
    from monitor.store import Store

    torch.set_num_threads(args.threads)
    texts = sst2("dev").texts
    path = str(minilm_path())
    bare, pipe = _pipeline(path), _pipeline(path)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        collector = Collector(DuckDBSink(store), flush_interval_s=1.0)
        wrapped = instrument_pipeline(pipe, collector, model_name="bench", model_version="v1")
        t_bare: list[float] = []
        t_wrapped: list[float] = []
        for i in range(args.warmup + args.calls):
            start = (i * args.batch) % max(len(texts) - args.batch, 1)
            chunk = texts[start:start + args.batch]
            inputs: object = chunk[0] if args.batch == 1 else chunk
            order = [("bare", bare), ("wrapped", wrapped)]
            if i % 2:
                order.reverse()
            outs = {}
            for name, fn in order:
                t0 = time.perf_counter()
                outs[name] = fn(inputs)  # type: ignore[operator]
                dt = (time.perf_counter() - t0) * 1000.0
                if i >= args.warmup:
                    (t_bare if name == "bare" else t_wrapped).append(dt)
            assert outs["bare"] == outs["wrapped"], "the wrapper changed a result"
        collector.close()
        stored = store.count_predictions()
        store.close()
    b, w = np.array(t_bare), np.array(t_wrapped)
    diff = w - b  # paired: the two calls of one iteration ran back to back on the same texts
    p50b, p99b = np.percentile(b, 50), np.percentile(b, 99)
    p50w, p99w = np.percentile(w, 50), np.percentile(w, 99)
    print(f"MiniLM text-classification pipeline, batch {args.batch}, {args.calls} calls each, "
          f"torch threads {args.threads}, load average {os.getloadavg()[0]:.2f}")
    print(f"  bare     p50 {p50b:8.3f} ms   p99 {p99b:8.3f} ms")
    print(f"  wrapped  p50 {p50w:8.3f} ms   p99 {p99w:8.3f} ms   ({stored} records stored)")
    print(f"  overhead p50 {p50w - p50b:+8.3f} ms ({(p50w - p50b) / p50b:+.1%})   "
          f"p99 {p99w - p99b:+8.3f} ms ({(p99w - p99b) / p99b:+.1%})")
    print(f"  paired difference per call: median {np.median(diff):+.3f} ms "
          f"({np.median(diff) / p50b:+.1%} of the bare p50)")


if __name__ == "__main__":
    main()
