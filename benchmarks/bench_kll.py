"""KLL sketch size for the fleet's latency test: no-shift calibration and power, in one run.

    python benchmarks/bench_kll.py [--quick] [--seed 0]

Each trial draws a reference window (one sketch, built as ``reference_partial`` builds it)
and a current window split into 24 partitions (one sketch each, merged once, as a fleet
hour is merged from replica x source partials), ``n`` rows per side. Latencies are lognormal
(median 20 ms, sigma 0.6), or the same rounded to whole milliseconds with 1 % of requests
at a 30 s timeout (ties, a heavy tail). Three tests at alpha = 0.05 on the same data:

* ``naive``: the two-sample KS on the sketches' CDFs, no error allowance;
* ``aware``: the shipped test, KS on ``max(D - eps_ref - eps_cur, 0)``
  (:func:`monitor.lake.kll.sketch_ks`);
* ``exact``: ``scipy.stats.ks_2samp`` on the raw values.

With no shift every rejection is a false alarm (FPR); with the current window's latency
scaled up (1 + 2.5 / sqrt(n): 3.5 % at 5k, 1.1 % at 50k) the rejection rate is the power.
It also reports the mean sketch KS distance against the 5 % critical value, and the mean
rank-error bound ``eps`` of each side, for k = 200 (the issue's example) and the default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.lake.kll import DEFAULT_K, KLLSketch, ks_critical, merge_sketches, sketch_ks

ALPHA, PARTITIONS = 0.05, 24


def draw(rng: np.random.Generator, n: int, kind: str, scale: float) -> np.ndarray:
    """``n`` latencies in ms of the given kind, times ``scale``."""
    v = scale * rng.lognormal(np.log(20.0), 0.6, n)
    if kind == "rounded_timeouts":
        v = np.round(v)
        v[rng.random(n) < 0.01] = 30_000.0
    return v


def trial(rng: np.random.Generator, n: int, kind: str, scale: float, ks: tuple[int, ...]
          ) -> dict[str, float]:
    """One window pair: each test's p-value, distances and bounds per k."""
    from scipy.stats import ks_2samp

    ref_v, cur_v = draw(rng, n, kind, 1.0), draw(rng, n, kind, scale)
    out = {"exact_p": float(ks_2samp(ref_v, cur_v).pvalue),
           "exact_d": float(ks_2samp(ref_v, cur_v).statistic)}
    parts = np.array_split(cur_v, PARTITIONS)
    for k in ks:
        ref = KLLSketch.from_values(ref_v, k)
        cur = merge_sketches([KLLSketch.from_values(p, k) for p in parts])
        res = sketch_ks(ref, cur)
        out.update({f"naive_p{k}": res["p_value_naive"], f"aware_p{k}": res["p_value"],
                    f"d{k}": res["statistic"], f"eps_ref{k}": ref.epsilon,
                    f"eps_cur{k}": cur.epsilon, f"size{k}": float(ref.size + cur.size)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    ks = (200, DEFAULT_K)
    t0 = time.perf_counter()
    print(f"k = {ks}, {PARTITIONS} partitions merged per current window, alpha = {ALPHA}")
    print("| latencies | n/side | shift | trials | exact KS | " + " | ".join(
        f"naive k={k} | aware k={k}" for k in ks) + " | mean D exact | "
        + " | ".join(f"mean D k={k} | eps_ref+eps_cur k={k}" for k in ks) + " | crit 5 % |")
    print("|" + "---|" * (5 + 4 * len(ks) + 2))
    for kind in ("lognormal", "rounded_timeouts"):
        for n in (5_000, 50_000):
            for shifted in (False, True):
                trials = (60 if shifted else 150) if args.quick else (200 if shifted else 500)
                scale = 1 + 2.5 / np.sqrt(n) if shifted else 1.0
                rng = np.random.default_rng([args.seed, n, int(shifted), len(kind)])
                rows = [trial(rng, n, kind, scale, ks) for _ in range(trials)]

                def rate(key: str, rows: list[dict[str, float]] = rows) -> str:
                    return f"{np.mean([r[key] < ALPHA for r in rows]):.3f}"

                def mean(key: str, rows: list[dict[str, float]] = rows) -> float:
                    return float(np.mean([r[key] for r in rows]))

                cells = [rate("exact_p")]
                for k in ks:
                    cells += [rate(f"naive_p{k}"), rate(f"aware_p{k}")]
                cells.append(f"{mean('exact_d'):.4f}")
                for k in ks:
                    cells += [f"{mean(f'd{k}'):.4f}",
                              f"{mean(f'eps_ref{k}') + mean(f'eps_cur{k}'):.5f}"]
                cells.append(f"{ks_critical(n, n, ALPHA):.4f}")
                print(f"| {kind} | {n} | {f'x{scale:.4f}' if shifted else 'none'} | {trials} | "
                      + " | ".join(cells) + " |", flush=True)
    sizes = trial(np.random.default_rng(args.seed), 50_000, "lognormal", 1.0, ks)
    print(f"items held per side at 50k (k=200, k={DEFAULT_K}): "
          f"{sizes['size200'] / 2:.0f}, {sizes[f'size{DEFAULT_K}'] / 2:.0f}")
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
