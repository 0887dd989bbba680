"""Drift engine benchmark: speed vs Evidently 0.7, and a detection table on real shifts.

    python benchmarks/bench_drift.py [--quick] [--skip-speed] [--only NAME ...] [--out FILE.json]

1. **Speed** — all five signals (``DriftSuite`` defaults) on 10,000 reference ×
   10,000 current rows with 384-d embeddings, against Evidently's
   ``EmbeddingsDrift`` on the same frames: its full report (drift method +
   t-SNE visualisation) and each bare drift method (``model``, ``distance``,
   ``ratio``; ``mmd`` only with ``--evidently-mmd``, since it builds a dense
   20,000² float64 kernel, ~6 GB).
2. **Detection** — real MiniLM embeddings of the shared data sets (benchmarks/scenarios.py:
   covariate, label-prior, out-of-scope and input-format scenarios plus three no-shift
   pools); for each scenario and n in {20, 30, 50, 100, 200, 500}, the share of resamples
   flagged by our default verdict (weighted Holm over all signals, alpha = 0.01, current
   windows without labels), by the "Failing Loudly" yardsticks (Rabanser et al. 2019: MMD on
   the embeddings and BBSD on the softmax, alpha = 0.05) and by each Evidently embedding method
   with its defaults (as ``EmbeddingsDrift`` picks them: ``model`` bootstraps only while the
   reference has < 1,000 rows). n90 per method, the worst no-shift false-positive rate, and
   the diagnosis of every window our verdict flagged (accuracy at n = 200).

Everything is measured in this run; embeddings are cached under ``.bench/``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.drift.frame import DriftFrame  # noqa: E402
from monitor.drift.suite import DEFAULT_SIGNALS, DriftSuite  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Evidently (imported lazily, telemetry off)
# ---------------------------------------------------------------------------------------------
def _evidently_methods() -> dict[str, Callable[[int], Any]]:
    """Each embedding drift method with its defaults, as EmbeddingsDrift would configure it."""
    os.environ["DO_NOT_TRACK"] = "1"
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import distance, mmd, model, ratio

    return {
        "ev_model": lambda n_ref: model(bootstrap=n_ref < 1000),  # EmbeddingsDrift's default
        "ev_distance": lambda n_ref: distance(),
        "ev_ratio": lambda n_ref: ratio(),
        "ev_mmd": lambda n_ref: mmd(),
    }


def _ev_call(method: Any, ref: np.ndarray, cur: np.ndarray) -> bool:
    import pandas as pd

    cols = [f"e{i}" for i in range(ref.shape[1])]
    _, drifted, _ = method(pd.DataFrame(cur, columns=cols), pd.DataFrame(ref, columns=cols))
    return bool(drifted)


def _ev_full_report(ref: np.ndarray, cur: np.ndarray) -> float:
    """Seconds for Evidently's full EmbeddingsDrift report (default method + t-SNE)."""
    os.environ["DO_NOT_TRACK"] = "1"
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    cols = [f"e{i}" for i in range(ref.shape[1])]
    definition = DataDefinition(numerical_columns=cols, embeddings={"emb": cols})
    rds = Dataset.from_pandas(pd.DataFrame(ref, columns=cols), data_definition=definition)
    cds = Dataset.from_pandas(pd.DataFrame(cur, columns=cols), data_definition=definition)
    t = time.perf_counter()
    Report([EmbeddingsDrift(embeddings_name="emb")]).run(cds, rds)
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------------------------
def _synthetic(n: int, rng: np.random.Generator, d: int = 384, k: int = 3) -> DriftFrame:
    classes = np.array([f"c{i}" for i in range(k)], dtype=object)
    logits = rng.normal(size=(n, k)) * 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    n_tok = rng.poisson(24, n) + 2
    return DriftFrame(
        predicted_label=classes[probs.argmax(axis=1)], confidence=probs.max(axis=1).astype(np.float64),
        probs=probs.astype(np.float32), embedding=rng.normal(size=(n, d)).astype(np.float32),
        n_tokens=n_tok.astype(np.float64), n_unk=rng.binomial(n_tok, 0.003).astype(np.float64),
        truncated=(n_tok > 36).astype(np.float64), n_chars=(n_tok * 4.4).round(),
        label=np.where(rng.random(n) < 0.85, classes[probs.argmax(axis=1)], "c0").astype(object))


def bench_speed(n: int, repeats: int, evidently_mmd: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    ref, cur = _synthetic(n, rng), _synthetic(n, rng)
    DriftSuite(seed=0).fit(ref.take(np.arange(500))).compute(cur.take(np.arange(500)))  # warm imports
    ours = []
    per_signal: dict[str, list[float]] = {}
    for r in range(repeats):
        t = time.perf_counter()
        DriftSuite(seed=r).fit(ref).compute(cur)
        ours.append(time.perf_counter() - t)
    # A shifted window: the MMD cannot stop its permutations early, so this is the worst case.
    assert cur.embedding is not None
    moved = cur.take(np.arange(cur.n))
    assert moved.embedding is not None
    moved.embedding[:, :8] += 0.25
    shifted = []
    for r in range(repeats):
        t = time.perf_counter()
        report = DriftSuite(seed=r).fit(ref).compute(moved)
        shifted.append(time.perf_counter() - t)
    assert report.drifted
    for sig in DEFAULT_SIGNALS:
        t = time.perf_counter()
        DriftSuite([sig], seed=0).fit(ref).compute(cur)
        per_signal[sig] = [time.perf_counter() - t]
    assert ref.embedding is not None and cur.embedding is not None
    methods = _evidently_methods()
    ev: dict[str, float | None] = {}
    for name, make in methods.items():
        if name == "ev_mmd" and not evidently_mmd:
            ev[name] = None
            continue
        t = time.perf_counter()
        _ev_call(make(n), ref.embedding, cur.embedding)
        ev[name] = time.perf_counter() - t
    ev_full = _ev_full_report(ref.embedding, cur.embedding)
    ours_s = statistics.median(ours)
    return {"rows": n, "dims": 384, "ours_all_signals_s": ours_s,
            "ours_all_signals_shifted_s": statistics.median(shifted),
            "ours_per_signal_s": {k: v[0] for k, v in per_signal.items()},
            "evidently_bare_method_s": ev, "evidently_full_report_s": ev_full,
            "speedup_vs_full_report": ev_full / ours_s,
            "speedup_vs_bare_default_method": (ev["ev_model"] or 0) / ours_s}


# ---------------------------------------------------------------------------------------------
# Detection and diagnosis on real data (label-free current windows)
# ---------------------------------------------------------------------------------------------
#: Rabanser et al. (2019) test at alpha = 0.05; so do their yardsticks here.
FL_ALPHA = 0.05


def _yardsticks(ref: DriftFrame, cur: DriftFrame, seed: int) -> dict[str, bool]:
    """"Failing Loudly" yardsticks: MMD (RBF, median heuristic, 1,000 permutations) on the
    embeddings and BBSD (KS per softmax dimension, Bonferroni), both at alpha 0.05."""
    from monitor.drift.bbsd import BBSDDrift
    from monitor.drift.embedding import MMDDrift

    mmd = MMDDrift(threshold=FL_ALPHA, n_permutations=1000, per_class_permutations=0, seed=seed)
    bbsd = BBSDDrift(threshold=FL_ALPHA, seed=seed)
    return {"fl_mmd": mmd.fit(ref).compute(cur).drifted, "fl_bbsd": bbsd.fit(ref).compute(cur).drifted}


def _detect_scenario(name: str, sizes: list[int], resamples: int, null_resamples: int,
                     methods: list[str]) -> tuple[str, dict[str, Any]]:
    """One scenario's detection rates and diagnoses (a worker process, single-threaded BLAS)."""
    from threadpoolctl import threadpool_limits

    from benchmarks.scenarios import load_pools, scenario, unlabelled

    with threadpool_limits(limits=1, user_api="blas"):
        pools = load_pools()
        ev = _evidently_methods()
        sc = scenario(name)
        reps = resamples if sc.shift else null_resamples
        rows: dict[str, dict[int, float]] = {m: {} for m in ["ours", "fl_mmd", "fl_bbsd", *methods]}
        signals: dict[str, dict[int, float]] = {}
        kinds: dict[int, dict[str, int]] = {}
        for n in sizes:
            rng = np.random.default_rng(zlib.crc32(f"{name}/{n}".encode()))
            hits = {m: 0 for m in rows}
            sig_hits: dict[str, int] = {}
            kinds[n] = {}
            for r in range(reps):
                ref, cur = sc.draw(pools, n, rng)
                report = DriftSuite(seed=r).fit(ref).compute(unlabelled(cur))
                hits["ours"] += report.drifted
                for s in report.signals:
                    if s.p_value is not None:
                        sig_hits[s.signal] = sig_hits.get(s.signal, 0) + (s.p_value < 0.01)
                kind = report.diagnosis().kind
                kinds[n][kind] = kinds[n].get(kind, 0) + 1
                for m, hit in _yardsticks(ref, cur, r).items():
                    hits[m] += hit
                assert ref.embedding is not None and cur.embedding is not None
                for m in methods:
                    hits[m] += _ev_call(ev[m](ref.n), ref.embedding, cur.embedding)
            for m in rows:
                rows[m][n] = hits[m] / reps
            for sig, k in sig_hits.items():
                signals.setdefault(sig, {})[n] = k / reps
            print(f"  {name:38s} n={n:4d} " + " ".join(f"{m}={rows[m][n]:.2f}" for m in rows)
                  + f" kinds={kinds[n]}", flush=True)
    return name, {"kind": sc.kind, "shift": sc.shift, "resamples": reps, "rates": rows,
                  "raw_signal_rates": signals, "diagnoses": kinds}


def bench_detection(sizes: list[int], resamples: int, null_resamples: int, methods: list[str],
                    workers: int, only: list[str] | None = None) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks.scenarios import SCENARIOS, load_pools

    load_pools()  # fill the embedding cache once before the workers read it
    names = [s.name for s in SCENARIOS if not only or any(o in s.name for o in only)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_detect_scenario, name, sizes, resamples, null_resamples, methods)
                   for name in names]
        done = dict(f.result() for f in futures)
    return {name: done[name] for name in names}


def n90(rates: dict[int, float]) -> int | None:
    """The smallest n with a detection rate of at least 90 % (None: never in the grid)."""
    hits = [n for n, r in sorted(rates.items()) if r >= 0.9]
    return hits[0] if hits else None


def _markdown(table: dict[str, Any], sizes: list[int]) -> str:
    methods = list(next(iter(table.values()))["rates"])
    head = "| scenario | kind | method | " + " | ".join(f"n={n}" for n in sizes) + " |"
    lines = ["Detection rate (no-shift rows: false-positive rate); current windows carry no labels.",
             "", head, "|" + "---|" * (len(sizes) + 3)]
    for name, entry in table.items():
        for m in methods:
            lines.append(f"| {name} | {entry['kind']} | {m} | "
                         + " | ".join(f"{entry['rates'][m][n]:.2f}" for n in sizes) + " |")
    worst = {m: 0.0 for m in methods}
    pooled = {m: [0.0, 0] for m in methods}
    for entry in table.values():
        if not entry["shift"]:
            for m in methods:
                worst[m] = max(worst[m], max(entry["rates"][m].values()))
                pooled[m][0] += sum(entry["rates"][m].values()) * entry["resamples"]
                pooled[m][1] += len(entry["rates"][m]) * entry["resamples"]
    #: a baseline counts as honest when its pooled no-shift rate stays within 2x its own alpha
    honest = [m for m in methods[1:] if pooled[m][1] and pooled[m][0] / pooled[m][1] <= 2 * FL_ALPHA]
    lines += ["", "n90 (smallest n with >= 90 % detection; '>max' = never in the grid). "
              f"'best honest' = the smallest n90 among baselines whose pooled no-shift rate is at most "
              f"{2 * FL_ALPHA:.2f} ({', '.join(honest) or 'none'}):", "",
              "| scenario | resamples | " + " | ".join(methods) + " | best honest baseline |",
              "|" + "---|" * (len(methods) + 3)]
    for name, entry in table.items():
        if not entry["shift"]:
            continue
        cells = []
        best: int | None = None
        for m in methods:
            v = n90(entry["rates"][m])
            cells.append(str(v) if v is not None else f">{max(sizes)}")
            if m in honest and v is not None:
                best = v if best is None else min(best, v)
        lines.append(f"| {name} | {entry['resamples']} | " + " | ".join(cells)
                     + f" | {best if best is not None else f'>{max(sizes)}'} |")
    lines.append("| **worst no-shift cell FPR** | | " + " | ".join(f"{worst[m]:.2f}" for m in methods)
                 + " | |")
    lines.append("| **pooled no-shift FPR** | | " + " | ".join(
        f"{pooled[m][0] / pooled[m][1]:.3f} ({round(pooled[m][0])}/{pooled[m][1]})" if pooled[m][1]
        else "n/a" for m in methods) + " | |")
    diag_n = 200 if 200 in sizes else max(sizes)
    lines += ["", f"Diagnosis of the windows our verdict flagged, n = {diag_n}:", "",
              "| scenario | known kind | diagnosed (count) | correct |", "|---|---|---|---|"]
    right = total = 0
    for name, entry in table.items():
        if not entry["shift"]:
            continue
        kinds = {k: v for k, v in entry["diagnoses"][diag_n].items() if k != "none"}
        ok = kinds.get(entry["kind"], 0)
        tot = sum(kinds.values())
        right, total = right + ok, total + tot
        share = f"{ok / tot:.0%}" if tot else "n/a"
        lines.append(f"| {name} | {entry['kind']} | "
                     + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + f" | {share} |")
    lines.append(f"| **all drifted windows** | | {total} | "
                 + (f"{right / total:.1%}" if total else "n/a") + " |")
    return "\n".join(lines)


def table_from_log(text: str) -> tuple[dict[str, Any], list[int]]:
    """Rebuild the detection table from this benchmark's progress lines (a run cut short)."""
    import ast
    import re

    from benchmarks.scenarios import scenario

    head = re.search(r"detection: (\d+) resamples per shift cell, (\d+) per no-shift", text)
    reps = (int(head.group(1)), int(head.group(2))) if head else (0, 0)
    table: dict[str, Any] = {}
    line_re = re.compile(r"^  (.+?)\s+n=\s*(\d+) (.*?) kinds=(\{.*\})$")
    for line in text.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        name, n = m.group(1).strip(), int(m.group(2))
        sc = scenario(name)
        entry = table.setdefault(name, {"kind": sc.kind, "shift": sc.shift,
                                        "resamples": reps[0] if sc.shift else reps[1],
                                        "rates": {}, "diagnoses": {}})
        for pair in m.group(3).split():
            meth, _, val = pair.partition("=")
            entry["rates"].setdefault(meth, {})[n] = float(val)
        entry["diagnoses"][n] = ast.literal_eval(m.group(4))
    sizes = sorted({n for e in table.values() for r in e["rates"].values() for n in r})
    complete = {k: v for k, v in table.items()
                if all(len(r) == len(sizes) for r in v["rates"].values())}
    return complete, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000-row speed test; 10/30 resamples; Evidently ratio and dense MMD left out")
    parser.add_argument("--resamples", type=int, default=None, help="per shift cell")
    parser.add_argument("--null-resamples", type=int, default=None, help="per no-shift cell")
    parser.add_argument("--only", nargs="*", default=None, help="scenarios whose name contains one of these")
    parser.add_argument("--evidently-mmd", action="store_true",
                        help="also time Evidently's dense-kernel MMD at full size (~6 GB)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="processes for the detection table")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--from-log", type=Path, default=None,
                        help="print the tables from the progress lines of an earlier run's output")
    args = parser.parse_args()
    if args.from_log:
        table, sizes = table_from_log(args.from_log.read_text(encoding="utf-8"))
        print(_markdown(table, sizes))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results: dict[str, Any] = {}
    if not args.skip_speed:
        n = 2000 if args.quick else 10_000
        print(f"speed: all signals, {n} x {n} rows, 384-d", flush=True)
        speed = bench_speed(n, repeats=1 if args.quick else 3, evidently_mmd=args.evidently_mmd or args.quick)
        results["speed"] = speed
        print(json.dumps(speed, indent=2), flush=True)
    if not args.skip_detection:
        sizes = [20, 30, 50, 100, 200, 500]
        resamples = args.resamples or (10 if args.quick else 20)
        null_resamples = args.null_resamples or (30 if args.quick else 50)
        methods = ["ev_model", "ev_distance"] if args.quick else \
            ["ev_model", "ev_distance", "ev_ratio", "ev_mmd"]
        print(f"detection: {resamples} resamples per shift cell, {null_resamples} per no-shift "
              f"cell, n in {sizes}", flush=True)
        table = bench_detection(sizes, resamples, null_resamples, methods, args.workers, args.only)
        results["detection"] = table
        print(_markdown(table, sizes))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
