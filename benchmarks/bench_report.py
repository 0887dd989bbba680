"""Report render benchmark: one per-window HTML report of a 10,000-row window against a
10,000-row reference, next to two baselines measured in the same run:

- reading the two windows from DuckDB (``Store.read_window`` + ``load_reference``);
- the bare Evidently 0.7 data-drift report (run + HTML) over the same scalar columns.

    .venv/bin/python benchmarks/bench_report.py [--quick] [--rows 10000] [--dim 384] [--repeat 3]

Prints seconds (median of ``--repeat``) and ratios, the one-time Evidently import cost of a
fresh process (paid once by the sidecar), and whether the render meets the 5 s target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGET_S = 5.0


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of ``fn`` (CPU time does not grow with machine load)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="2,000 rows, one repeat")
    ap.add_argument("--rows", type=int, default=10_000, help="rows per window (reference and current)")
    ap.add_argument("--dim", type=int, default=384, help="embedding width (MiniLM: 384)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows, repeat = (2_000, 1) if args.quick else (args.rows, args.repeat)

    t = time.perf_counter()
    import evidently  # noqa: F401  - the one-time import cost of a fresh process

    import_s = time.perf_counter() - t

    from monitor.persist.references import create_reference, load_reference
    from monitor.persist.runs import check_window
    from monitor.store import Store
    from reports.evidently_section import evidently_html
    from reports.render import render_run
    from reports.window import scalar_columns
    from tests.reports.synthetic import MODEL, T0, records

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        ref = records(rows, start=T0 - timedelta(days=1), dim=args.dim, seed=1)
        create_reference(store, "ref", ref, model_name=MODEL, model_version="v1", origin="bench")
        store.insert_predictions(records(rows, start=T0, dim=args.dim, shift=0.5, seed=2))
        end = T0 + timedelta(seconds=rows)
        run_id, _ = check_window(store, model_name=MODEL, model_version="v1", reference_name="ref",
                                 start=T0, end=end)

        def read() -> tuple[object, object]:
            return (store.read_window(MODEL, model_version="v1", start=T0, end=end),
                    load_reference(store, "ref"))

        read_s, read_cpu = timed(read, repeat)
        cur_t, ref_t = read()
        ref_cols, cur_cols = scalar_columns(ref_t), scalar_columns(cur_t)  # type: ignore[arg-type]
        evidently_s, evidently_cpu = timed(lambda: evidently_html(ref_cols, cur_cols), repeat)
        out = Path(tmp) / "out"
        render_s, render_cpu = timed(lambda: render_run(store, run_id, out), repeat)
        size_mb = (out / "runs" / f"{run_id}.html").stat().st_size / 1e6
        store.close()

    load = os.getloadavg()[0]
    print(f"window: {rows:,} current rows vs {rows:,} reference rows, embedding dim {args.dim}; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"evidently import (fresh process, once) : {import_s:7.2f} s wall")
    print(f"read both windows (baseline)           : {read_s:7.2f} s wall {read_cpu:7.2f} s CPU")
    print(f"bare Evidently report + HTML (baseline): {evidently_s:7.2f} s wall {evidently_cpu:7.2f} s CPU")
    print(f"render_run (full report, {size_mb:.1f} MB)      : {render_s:7.2f} s wall {render_cpu:7.2f} s CPU")
    print(f"ratio render / read                    : {render_s / read_s:7.1f}x wall")
    print(f"ratio render / bare Evidently          : {render_s / evidently_s:7.2f}x wall "
          f"{render_cpu / evidently_cpu:7.2f}x CPU")
    verdict = "meets" if render_s <= TARGET_S else "MISSES"
    print(f"target <= {TARGET_S:.0f} s per window: {verdict} ({render_s:.2f} s wall, {render_cpu:.2f} s CPU)")


if __name__ == "__main__":
    main()
