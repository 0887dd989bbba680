"""Sidecar ingest benchmark: sustained rate and per-request latency of ``POST /v1/predictions``
against a real ``shiftwatch serve`` process, next to a direct ``Store.insert_predictions``
baseline measured in the same run on the same records.

    .venv/bin/python benchmarks/bench_server.py [--quick] [--clients 4] [--batch 250] [--dim 384]

Prints records/s for the HTTP path and two in-process baselines (records through the
record list handed to the store; records converted by the codec first, as the sidecar does), the ratios, and
p50/p99 ingest latency per batch (client side: request sent -> 202 received, which includes
the commit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

TOKEN = "bench-token"


def make_record(k: int, i: int, dim: int, rng: np.random.Generator) -> dict[str, Any]:
    p = float(rng.uniform(0.5, 1.0))
    rec: dict[str, Any] = {
        "event_id": f"b{k}-{i:09d}",
        "ts": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=i)).isoformat(),
        "model_name": "bench", "model_version": "v1",
        "predicted_label": "pos" if p > 0.7 else "neg", "confidence": p, "probs": [1 - p, p],
        "n_tokens": int(rng.integers(5, 120)), "n_unk": 0, "truncated": False, "n_chars": 80,
        "latency_ms": float(rng.uniform(2, 20)),
    }
    if dim:
        rec["embedding"] = rng.standard_normal(dim).astype(np.float32).round(5).tolist()
    return rec


def batches(k: int, n_batches: int, size: int, dim: int) -> list[list[dict[str, Any]]]:
    rng = np.random.default_rng(k)
    return [[make_record(k, b * size + i, dim, rng) for i in range(size)] for b in range(n_batches)]


def direct_baseline(data: list[list[dict[str, Any]]], tmp: Path, *, fast: bool) -> float:
    """records/s of Store.insert_predictions in this process, one batch per call; ``fast``
    converts each batch with the record codec first (as the sidecar does, outside the lock)."""
    from collectors.codec import records_to_table
    from monitor.store import Store

    with Store(tmp / f"direct-{fast}.duckdb") as store:
        t0 = time.perf_counter()
        for batch in data:
            store.insert_predictions(records_to_table(batch)[0] if fast else batch)
        elapsed = time.perf_counter() - t0
    return sum(len(b) for b in data) / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sidecar(db: Path, tmp: Path) -> Any:
    port = free_port()
    code = "import sys; from monitor.cli import main; sys.argv[0] = 'shiftwatch'; main()"
    env = dict(os.environ, SHIFTWATCH_TOKEN=TOKEN, SHIFTWATCH_REPORTS_DIR=str(tmp / "reports"),
               SHIFTWATCH_REGISTRY_DIR=str(tmp / "models"), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--db", str(db), "--port", str(port),
                             "--no-scheduler", "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("sidecar did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def server_run(data: list[list[list[dict[str, Any]]]], base: str) -> tuple[float, list[float], int]:
    """Post every client's batches as fast as answers come back; return (records/s, latencies, n)."""
    import json

    latencies: list[list[float]] = [[] for _ in data]
    errors: list[str] = []
    bodies = [[json.dumps({"records": b}).encode() for b in client] for client in data]

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}",
                                   "content-type": "application/json"}) as c:
            for body in bodies[k]:
                t0 = time.perf_counter()
                r = c.post("/v1/predictions", content=body)
                latencies[k].append(time.perf_counter() - t0)
                if r.status_code != 202:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(data))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(errors[0])
    n = sum(len(b) for client in data for b in client)
    return n / elapsed, [x for part in latencies for x in part], n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a few seconds instead of ~30 s of load")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--dim", type=int, default=384, help="embedding dimension (0: no embeddings)")
    ap.add_argument("--batches", type=int, default=None, help="batches per client")
    args = ap.parse_args()
    n_batches = args.batches or (6 if args.quick else 40)
    data = [batches(k, n_batches, args.batch, args.dim) for k in range(args.clients)]
    n = args.clients * n_batches * args.batch
    print(f"{args.clients} clients x {n_batches} batches x {args.batch} records, embedding dim {args.dim}"
          f" ({n} records)")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        flat = [b for client in data for b in client]
        direct = direct_baseline(flat, tmp, fast=False)
        direct_fast = direct_baseline(flat, tmp, fast=True)
        with sidecar(tmp / "server.duckdb", tmp) as base:
            rate, lat, stored = server_run(data, base)
        from monitor.store import Store

        with Store(tmp / "server.duckdb") as store:
            assert store.count_predictions() == stored == n, "every accepted record must be stored"
    ms = np.array(lat) * 1000.0
    print(f"direct Store.insert_predictions(records)      : {direct:10.0f} records/s")
    print(f"direct Store.insert_predictions(codec table)  : {direct_fast:10.0f} records/s")
    print(f"HTTP sidecar, 4 clients, 202 after commit     : {rate:10.0f} records/s  "
          f"(ratio to direct: {rate / direct:.2f}; to direct fast path: {rate / direct_fast:.2f})")
    print(f"ingest latency per {args.batch}-record batch: p50 {np.percentile(ms, 50):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms  ({len(ms)} requests, {args.clients} concurrent)")


if __name__ == "__main__":
    main()
