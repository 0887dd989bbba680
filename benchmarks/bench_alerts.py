"""Alert fatigue: false alerts per model per 30 days, and the delay from a real shift to its alert.

    python benchmarks/bench_alerts.py [--windows 720] [--rows 200] [--out FILE.json]

Real text (MiniLM embeddings and a logistic-regression head, benchmarks/scenarios.py) goes as
prediction records through the **full scheduler** (``Scheduler.run_cycle``: drift check per
window, weighted-Holm verdict, diagnosis, the **shipped default policy**, recorded decisions and
dry-run actions) on a DuckDB file, one window of ``--rows`` rows per simulated hour:

* **stationary**: two models (a sentiment model on SST-2 test sentences and an intent model on
  in-scope BANKING77 queries), ``--windows`` hourly windows each (720 = 30 days), every window
  a fresh draw without replacement from the model's pool rows outside its reference. A window
  drawn from a finite pool shares that pool's own sampling deviation from the reference, which
  can only add false alarms, never hide them;
* **shifted**: one model per shift kind; two stationary windows, then shifted windows from
  hour 3 on; the delay is the number of shifted windows up to and including the first that
  fires a rule (1 = the shift's first window).

Counts every fired decision (all rules) as an alert: that is what reaches a human.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scenarios import load_pools  # noqa: E402
from monitor.drift.frame import DriftFrame  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=UTC)
N_REF = 600


def records(frame: DriftFrame, model: str, start: datetime, seed: int) -> list[dict[str, Any]]:
    """Prediction records (DESIGN §3) of a window's rows; text is not logged (the default)."""
    assert frame.probs is not None and frame.embedding is not None
    rng = np.random.default_rng([seed, zlib.crc32(model.encode())])  # event ids unique per model
    out = []
    for i in range(frame.n):
        rec: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) * 2**32 + i)),
            "ts": start + timedelta(seconds=10 * i), "model_name": model, "model_version": "v1",
            "predicted_label": str(frame.predicted_label[i]), "confidence": float(frame.confidence[i]),
            "probs": frame.probs[i].astype(float).tolist(),
            "embedding": frame.embedding[i].astype(float).tolist(),
        }
        for col in ("n_tokens", "n_unk", "n_chars"):
            v = getattr(frame, col)
            if v is not None:
                rec[col] = int(v[i])
        if frame.truncated is not None:
            rec["truncated"] = bool(frame.truncated[i])
        out.append(rec)
    return out


class Stream:
    """A model's reference and its per-hour windows."""

    def __init__(self, model: str, reference: DriftFrame, windows: list[DriftFrame], shift_at: int | None):
        self.model, self.reference, self.windows, self.shift_at = model, reference, windows, shift_at


def _draw(f: DriftFrame, idx: np.ndarray, n: int, rng: np.random.Generator) -> DriftFrame:
    return f.take(rng.choice(idx, n, replace=False))


def build_streams(n_windows: int, rows: int, seed: int,
                  stationary: tuple[str, ...] = ("sentiment", "intent")) -> list[Stream]:
    from benchmarks.scenarios import concat

    p = load_pools()
    rng = np.random.default_rng(seed)
    streams = []
    for model, pool in (("sentiment-stationary", "sst2"), ("intent-stationary", "banking_in")):
        if model.split("-")[0] not in stationary:
            continue
        perm = rng.permutation(p[pool].n)
        ref, rest = p[pool].take(perm[:N_REF]), perm[N_REF:]
        streams.append(Stream(model, ref, [_draw(p[pool], rest, rows, rng) for _ in range(n_windows)], None))
    sst = p["sst2"]
    late = rng.permutation(np.arange(800, sst.n))  # bug copies exist for rows 0..799
    ref_s, rest_s = sst.take(late[:N_REF]), late[N_REF:]
    early = np.arange(800)
    assert sst.label is not None
    pos, neg = early[sst.label[early] == "1"], early[sst.label[early] != "1"]

    def prior80() -> DriftFrame:
        k = round(0.8 * rows)
        return sst.take(np.concatenate([rng.choice(pos, k, replace=False),
                                        rng.choice(neg, rows - k, replace=False)]))

    shifts = {"shift-covariate-imdb": lambda: p["imdb"].take(rng.choice(p["imdb"].n, rows, replace=False)),
              "shift-label-prior-80": prior80,
              "shift-markup-bug": lambda: p["sst2_markup"].take(rng.choice(800, rows, replace=False)),
              "shift-max-length-16": lambda: p["sst2_maxlen16"].take(rng.choice(800, rows, replace=False))}
    for model, make in shifts.items():
        pre = [_draw(sst, rest_s, rows, rng) for _ in range(2)]
        streams.append(Stream(model, ref_s, pre + [make() for _ in range(4)], 2))
    b_in, b_out = p["banking_in"], p["banking_out"]
    perm = rng.permutation(b_in.n)
    ref_b, rest_b = b_in.take(perm[:N_REF]), perm[N_REF:]
    k = round(0.3 * rows)
    oos = [concat(_draw(b_in, rest_b, rows - k, rng), b_out.take(rng.choice(b_out.n, k, replace=False)))
           for _ in range(4)]
    streams.append(Stream("shift-out-of-scope-30", ref_b,
                          [_draw(b_in, rest_b, rows, rng) for _ in range(2)] + oos, 2))
    return streams


def run(n_windows: int, rows: int, seed: int,
        stationary: tuple[str, ...] = ("sentiment", "intent")) -> dict[str, Any]:
    from collectors.schema import records_to_table
    from monitor.persist.references import create_reference
    from monitor.scheduler import Scheduler
    from monitor.settings import Settings
    from monitor.store import Store

    streams = build_streams(n_windows, rows, seed, stationary)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        settings = Settings(db_path=d / "bench.duckdb", reports_dir=d / "reports", export_dir=d / "export",
                            registry_dir=d / "models", spool_dir=d / "spool", window_size=rows,
                            dry_run=True)
        store = Store(settings.db_path)
        for s in streams:
            table, _ = records_to_table(records(s.reference, s.model, T0 - timedelta(days=3), seed))
            create_reference(store, f"ref-{s.model}", table, model_name=s.model, model_version="v1",
                             origin="bench")
        hours = max(len(s.windows) for s in streams)
        now = [T0]
        sched = Scheduler(settings, store, clock=lambda: now[0])  # the shipped default policy
        fired: dict[str, list[tuple[int, str, str | None]]] = {s.model: [] for s in streams}
        windows_checked: dict[str, int] = {s.model: 0 for s in streams}
        t = time.perf_counter()
        for h in range(hours):
            start = T0 + timedelta(hours=h)
            for s in streams:
                if h < len(s.windows):
                    store.insert_predictions(records(s.windows[h], s.model, start, seed * 100_003 + h))
            now[0] = start + timedelta(hours=1)
            result = sched.run_cycle(reports=False)
            for run_id in result.drift_runs:
                model = str(store.fetchall_sql("SELECT model_name FROM drift_runs WHERE run_id = $r",
                                               {"r": run_id})[0][0])
                windows_checked[model] += 1
            for dec in result.decisions:
                if dec.fired:
                    kind = (dec.evidence.get("diagnosis") or {}).get("kind")
                    fired[dec.model_name].append((h, dec.rule, kind))
            if h % 48 == 0:
                print(f"  hour {h:4d}: {sum(len(v) for v in fired.values())} alerts so far "
                      f"({time.perf_counter() - t:.0f} s)", flush=True)
        elapsed = time.perf_counter() - t
        store.close()
    out: dict[str, Any] = {"windows": n_windows, "rows_per_window": rows, "seed": seed,
                           "seconds": elapsed, "models": {}}
    for s in streams:
        alerts = fired[s.model]
        entry: dict[str, Any] = {"windows_checked": windows_checked[s.model], "alerts": alerts}
        if s.shift_at is None:
            entry["false_alerts"] = len(alerts)
            entry["false_alerts_per_30_days"] = len(alerts) * 720 / max(windows_checked[s.model], 1)
        else:
            assert s.shift_at is not None
            early = [a for a in alerts if a[0] < s.shift_at]
            late = [a for a in alerts if a[0] >= s.shift_at]
            entry["alerts_before_shift"] = len(early)
            entry["delay_windows"] = (late[0][0] - s.shift_at + 1) if late else None
            entry["first_alert_diagnosis"] = late[0][2] if late else None
        out["models"][s.model] = entry
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [f"{res['windows']} hourly windows of {res['rows_per_window']} rows through the scheduler "
             "and the shipped default policy (dry run).", "",
             "| model | windows | false alerts | per 30 days |", "|---|---|---|---|"]
    for m, e in res["models"].items():
        if "false_alerts" in e:
            lines.append(f"| {m} | {e['windows_checked']} | {e['false_alerts']} | "
                         f"{e['false_alerts_per_30_days']:.2f} |")
    lines += ["", "| shift | alerts before it | delay to first alert (windows) | diagnosis in the alert |",
              "|---|---|---|---|"]
    for m, e in res["models"].items():
        if "delay_windows" in e:
            delay = e["delay_windows"] if e["delay_windows"] is not None else "none in 4"
            lines.append(f"| {m} | {e['alerts_before_shift']} | {delay} | {e['first_alert_diagnosis']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=720, help="stationary windows per model")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stationary", nargs="*", default=["sentiment", "intent"],
                        choices=["sentiment", "intent"], help="stationary models to run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        res = run(args.windows, args.rows, args.seed, tuple(args.stationary))
    print(markdown(res))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
