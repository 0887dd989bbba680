"""Scheduler overhead: a full cycle (drift → health → policy → actions) against the drift check alone.

Baseline, measured in the same run: ``check_window`` on the same windows with the same reference
(the drift engine's cost). The cycle adds window bookkeeping, the health window, policy
evaluation, decision/alert storage and the actions (notify to a local webhook, review with
most-shifted scoring). Also times :func:`monitor.policy.evaluate` alone per window.

    .venv/bin/python benchmarks/bench_ops.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, smaller windows")
    args = parser.parse_args()
    n_windows, size = (3, 300) if args.quick else (6, 1000)

    from monitor.actions import load_policy
    from monitor.demo.receiver import WebhookReceiver
    from monitor.persist.runs import check_window
    from monitor.policy import History, evaluate
    from monitor.scheduler import Scheduler, window_from_run
    from monitor.settings import Settings
    from monitor.store import Store
    from tests.ops.conftest import T0, make_records, seed_reference

    receiver = WebhookReceiver().start()
    url = receiver.url
    with tempfile.TemporaryDirectory() as tmp:
        shifted = {"shift": 0.8, "conf_a": 3.0, "conf_b": 3.0, "p_positive": 0.8}
        # baseline: drift checks alone
        base_store = Store(Path(tmp) / "base.duckdb")
        seed_reference(base_store, n=size)
        for k in range(n_windows):
            base_store.insert_predictions(make_records(size, seed=100 + k, start=T0 + timedelta(hours=k),
                                                      **shifted))
        check_window(base_store, model_name="sentiment", model_version="v1", reference_name="ref-v1",
                     last_n=size)  # warm-up (imports)
        base = []
        for k in range(n_windows):
            t = time.perf_counter()
            check_window(base_store, model_name="sentiment", model_version="v1", reference_name="ref-v1",
                         start=T0 + timedelta(hours=k), end=T0 + timedelta(hours=k + 1))
            base.append(time.perf_counter() - t)
        base_store.close()

        # the full cycle, one new window per cycle
        store = Store(Path(tmp) / "cycle.duckdb")
        seed_reference(store, n=size)
        settings = Settings(db_path=Path(tmp) / "cycle.duckdb", window_size=size, webhook_url=url,
                            reports_dir=Path(tmp) / "r", export_dir=Path(tmp) / "e",
                            registry_dir=Path(tmp) / "m")
        policy = load_policy(None)
        # the shipped policy minus retrain (no registered model in a benchmark)
        rules = tuple(r.model_copy(update={"actions": tuple(a for a in r.actions if a.kind != "retrain")})
                      for r in policy.rules)
        policy = policy.model_copy(update={"rules": rules})
        sched = Scheduler(settings, store, policy=policy, clock=lambda: T0)
        cycles, actions = [], 0
        for k in range(n_windows):
            store.insert_predictions(make_records(size, seed=100 + k, start=T0 + timedelta(hours=k),
                                                  **shifted))
            t = time.perf_counter()
            res = sched.run_cycle(reports=False)
            cycles.append(time.perf_counter() - t)
            assert res.ok and len(res.drift_runs) == 1, res.to_dict()
            actions += len(res.actions)

        runs = store.fetch_dicts("ops_run_history", {"model_name": "sentiment",
                                                     "run_id": res.drift_runs[0], "n": 100})
        windows = [window_from_run(r) for r in reversed(runs)]
        reps = 2000 if not args.quick else 300
        t = time.perf_counter()
        for i in range(reps):
            evaluate(policy, History(windows[: 2 + i % (len(windows) - 1)]), now=T0)
        per_eval = (time.perf_counter() - t) / reps
        store.close()
    receiver.stop()

    b, c = statistics.median(base), statistics.median(cycles)
    print(f"windows: {n_windows} x {size} rows, 16-dim synthetic embeddings, all five signals")
    print(f"drift check alone (baseline): median {b * 1000:8.1f} ms / window")
    print(f"full cycle (drift+health+policy+actions): median {c * 1000:8.1f} ms / window "
          f"({actions} actions)")
    print(f"cycle / baseline ratio: {c / b:.2f}x  (overhead {max(c - b, 0) * 1000:.1f} ms / window)")
    print(f"policy evaluate(): {per_eval * 1e6:.1f} us per call "
          f"({per_eval / b * 100:.3f}% of a drift check)")


if __name__ == "__main__":
    main()
