"""Store ingest throughput and Collector.log() latency, against baselines measured in the same run.

    .venv/bin/python benchmarks/bench_ingest.py [--quick] [--files-only]

0. ``shiftwatch ingest FILE.parquet`` (read, codec checks, insert) of 200k records, plain and
   with 384-d embeddings, against a raw DuckDB load of the same file into the same schema
   (``INSERT INTO predictions SELECT ... FROM read_parquet(...)``, measured first); prints the
   ratio. The files are cached under ``.bench/``.
1. ``Store.insert_predictions`` (Arrow batches: validation, in-batch and
   cross-batch event_id dedupe, one transaction per batch) in records/s, with
   and without 384-d embeddings, against a row-by-row ``executemany`` INSERT
   into the same table.
2. ``Collector.log()`` p50/p99 in µs (records carrying a 384-d numpy
   embedding, as :class:`collectors.InstrumentedClassifier` logs them) against
   one MiniLM forward pass (tokenize + encode) of a batch of 32 texts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collectors import Collector, Sink
from collectors.schema import ARROW_SCHEMA
from monitor.store import Store

DIM = 384
_COLUMNS = [f.name for f in ARROW_SCHEMA]


def make_batch(n: int, *, offset: int, dim: int | None, rng: np.random.Generator) -> pa.Table:
    """``n`` valid records with increasing ts starting at record number ``offset``."""
    ts = np.datetime64("2026-03-01T00:00:00", "us") + (np.arange(offset, offset + n) * 10_000).astype(
        "timedelta64[us]")
    probs = rng.dirichlet([1.0, 1.0], n).astype(np.float32)
    cols: dict[str, Any] = {
        "event_id": [str(uuid.UUID(int=int(x))) for x in rng.integers(1, 2**62, n)],
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "model_name": ["bench"] * n, "model_version": ["v1"] * n,
        "predicted_label": np.where(probs[:, 1] > 0.5, "pos", "neg").tolist(),
        "confidence": probs.max(axis=1).astype(np.float64),
        "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), 2).cast(pa.list_(pa.float32())),
        "n_tokens": rng.integers(5, 200, n).astype(np.int32), "n_unk": np.zeros(n, np.int32),
        "truncated": rng.random(n) < 0.05, "n_chars": rng.integers(10, 900, n).astype(np.int32),
        "latency_ms": rng.random(n) * 10, "source": ["web"] * n,
    }
    if dim:
        emb = rng.standard_normal((n, dim)).astype(np.float32)
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim).cast(
            pa.list_(pa.float32()))
    return pa.table(cols)


def bench_store(n: int, batch: int, dim: int | None, db: Path | str) -> float:
    rng = np.random.default_rng(0)
    batches = [make_batch(min(batch, n - i), offset=i, dim=dim, rng=rng) for i in range(0, n, batch)]
    with Store(db) as store:
        t0 = time.perf_counter()
        total = sum(store.insert_predictions(b).accepted for b in batches)
        elapsed = time.perf_counter() - t0
        assert total == n and store.count_predictions() == n
    return n / elapsed


def bench_executemany(n: int, dim: int | None, db: Path) -> float:
    """The baseline: one parameterised INSERT per row (duckdb executemany)."""
    rng = np.random.default_rng(1)
    table = make_batch(n, offset=0, dim=dim, rng=rng)
    present = [c for c in _COLUMNS if c in table.column_names]
    rows = [[r[c] for c in present] for r in table.to_pylist()]
    sql = (f"INSERT INTO predictions ({', '.join(present)}) "  # fixed column list, values bound
           f"VALUES ({', '.join('?' for _ in present)})")
    with Store(db) as store:
        t0 = time.perf_counter()
        with store.transaction():
            store.executemany_sql(sql, rows)
        elapsed = time.perf_counter() - t0
        assert store.count_predictions() == n
    return n / elapsed


def parquet_file(n: int, dim: int | None) -> Path:
    """A cached Parquet file of ``n`` valid records (``.bench/``, git-ignored)."""
    import pyarrow.parquet as pq

    path = Path(__file__).resolve().parents[1] / ".bench" / f"ingest-{n}-{dim or 0}.parquet"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        rng = np.random.default_rng(3)
        tmp = path.with_name(path.name + ".tmp")
        with pq.ParquetWriter(tmp, make_batch(1, offset=0, dim=dim, rng=rng).schema) as writer:
            for i in range(0, n, 50_000):
                writer.write_table(make_batch(min(50_000, n - i), offset=i, dim=dim, rng=rng))
        tmp.replace(path)
    return path


def bench_raw_load(path: Path, db: Path) -> float:
    """The baseline: DuckDB loads the Parquet file straight into ``predictions``.

    Timed like the command below: open the (already migrated) file, load, commit, close
    (the checkpoint that writes the rows out is part of both).
    """
    import pyarrow.parquet as pq

    cols = ", ".join(c for c in _COLUMNS if c in pq.read_schema(path).names)
    sql = f"INSERT INTO predictions ({cols}) SELECT {cols} FROM read_parquet($path)"  # fixed columns
    Store(db).close()  # schema applied outside the timing, as for the command
    t0 = time.perf_counter()
    with Store(db) as store, store.transaction():
        store.fetchall_sql(sql, {"path": str(path)})
    elapsed = time.perf_counter() - t0
    with Store(db) as store:
        n = store.count_predictions()
    return n / elapsed


def bench_cli_ingest(path: Path, db: Path) -> float:
    """``shiftwatch ingest FILE --db DB`` (the command's own function, in this process) into an
    already migrated file: open, read, check, insert, close."""
    import contextlib
    import io

    from monitor.cli.data import ingest

    Store(db).close()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        ingest(path, db, skip_bad=False)
    elapsed = time.perf_counter() - t0
    with Store(db) as store:
        n = store.count_predictions()
    return n / elapsed


def bench_files(n: int, d: Path) -> None:
    for label, dim in (("plain", None), ("384-d embedding", DIM)):
        path = parquet_file(n, dim)
        raw = bench_raw_load(path, d / f"raw-{dim}.duckdb")
        ours = bench_cli_ingest(path, d / f"cli-{dim}.duckdb")
        print(f"shiftwatch ingest, {label:15s}, {n:,} records from Parquet: {ours:>9,.0f} rec/s | "
              f"raw DuckDB read_parquet load: {raw:>9,.0f} rec/s | ratio {ours / raw:.2f}")


class NullSink(Sink):
    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        return len(records)


def bench_log(n: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(2)
    embs = rng.standard_normal((256, DIM)).astype(np.float32)
    recs = [{"model_name": "bench", "model_version": "v1", "predicted_label": "pos", "confidence": 0.9,
             "probs": np.array([0.1, 0.9], np.float32), "embedding": embs[i % 256], "n_tokens": 12,
             "n_unk": 0, "truncated": False, "n_chars": 60, "latency_ms": 3.0,
             "text_sha256": "0" * 64} for i in range(n)]
    col = Collector(NullSink(), max_queue=n + 1, flush_size=500, flush_interval_s=0.05)
    times = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    log = col.log
    for i, rec in enumerate(recs):
        t0 = clock()
        log(rec)
        times[i] = clock() - t0
    col.close()
    assert col.stats().dropped == 0
    us = times / 1000.0
    return float(np.percentile(us, 50)), float(np.percentile(us, 99)), float(us.mean())


def bench_forward(repeats: int) -> float:
    from collectors.encoding import TextEncoder, minilm_path

    try:
        from monitor.datasets import sst2

        texts = list(sst2("dev").texts[:32])
    except Exception:  # shared data missing: fixed synthetic sentences
        texts = [f"the product number {i} was not what i expected at all" for i in range(32)]
    enc = TextEncoder.from_pretrained(minilm_path(), max_length=128, device="cpu", batch_size=32)
    enc.encode(texts)  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        enc.encode(texts)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    ap.add_argument("--files-only", action="store_true", help="only part 0 (shiftwatch ingest vs raw)")
    args = ap.parse_args(argv)
    q = args.quick
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_files(40_000 if q else 200_000, Path(tmp))
    if args.files_only:
        return
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"cpus={os.cpu_count()} torch_threads={torch.get_num_threads()} quick={q}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cases = (("no embedding", None, 60_000 if q else 300_000, 50_000, 5_000 if q else 20_000),
                 ("384-d embedding", DIM, 12_000 if q else 60_000, 20_000, 1_000 if q else 4_000))
        for label, dim, n, batch, base_n in cases:
            base = bench_executemany(base_n, dim, d / f"b-{dim}.duckdb")
            for bsize, where in ((batch, "file"), (500, "file"), (batch, "memory")):
                m = n if bsize == batch else n // 10
                db = d / f"s-{dim}-{bsize}.duckdb" if where == "file" else ":memory:"
                ours = bench_store(m, bsize, dim, db)
                print(f"store ingest, {label:15s}, batches of {bsize:>6,}, {where:6s}: {ours:>9,.0f} rec/s "
                      f"({m:,} records) | row-by-row executemany (file): {base:>7,.0f} rec/s | "
                      f"ratio {ours / base:,.1f}x")
    p50, p99, mean = bench_log(20_000 if q else 200_000)
    fwd = bench_forward(3 if q else 10)
    print(f"Collector.log(): p50 {p50:.2f} µs, p99 {p99:.2f} µs, mean {mean:.2f} µs")
    print(f"MiniLM forward, batch of 32 (tokenize + encode, median): {fwd / 1000:.1f} ms")
    print(f"log() p99 / forward pass = {p99 / fwd * 100:.5f} %   (one log() per text: 32 x p50 = "
          f"{32 * p50 / fwd * 100:.4f} % of the batch)")


if __name__ == "__main__":
    main()
