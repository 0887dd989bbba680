"""Repeated looks: how often the post-promotion rollback test fires, exact McNemar vs anytime-valid.

    python benchmarks/bench_rollback_looks.py [--quick] [--seed 0]

The rollback rule re-runs its paired test (promoted vs parent, on the labelled rows since the
promotion) at every window for a week. This simulates that: each look adds ``rows`` labelled
rows, 10 % of rows are discordant, and a discordant row favours the parent with probability θ.
With θ = ½ (equally good versions) every firing is a false rollback; with θ > ½ (the promoted
version is worse) the firing rate is the power and the median rows until it fires the delay.
The rule fires at the first look with at least 50 paired rows where the p-value is ≤ 0.05:
the fixed-sample exact McNemar p (the first version of the rule) or the anytime-valid
p = 1/E of :func:`monitor.retrain.guard.mcnemar_evalue` (the shipped rule), in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.retrain.guard import anytime_pvalue_worse, mcnemar_pvalue

ALPHA, MIN_ROWS, DISCORDANT = 0.05, 50, 0.10


def simulate(looks: int, rows: int, theta: float, runs: int, rng: np.random.Generator
             ) -> dict[str, tuple[float, float | None]]:
    """(share of runs that fired within the looks, median labelled rows at the first firing)."""
    n_total = looks * rows
    disc = rng.random((runs, n_total)) < DISCORDANT
    parent = disc & (rng.random((runs, n_total)) < theta)
    ends = np.arange(rows, n_total + 1, rows)
    c_cum = np.cumsum(parent, axis=1)[:, ends - 1]
    m_cum = np.cumsum(disc, axis=1)[:, ends - 1]
    cache: dict[str, dict[tuple[int, int], float]] = {"exact": {}, "anytime": {}}
    out: dict[str, tuple[float, float | None]] = {}
    for name, fn in (("exact", lambda b, c: mcnemar_pvalue(b, c, alternative="less")),
                     ("anytime", anytime_pvalue_worse)):
        memo = cache[name]
        first: list[int] = []
        for c_row, m_row in zip(c_cum, m_cum, strict=True):
            for k, (c, m) in enumerate(zip(c_row, m_row, strict=True)):
                if ends[k] < MIN_ROWS:
                    continue
                key = (int(m - c), int(c))
                if key not in memo:
                    memo[key] = fn(*key)
                if memo[key] <= ALPHA:
                    first.append(int(ends[k]))
                    break
        out[name] = (len(first) / runs, float(np.median(first)) if first else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs per cell instead of 20,000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = 2000 if args.quick else 20_000
    rng = np.random.default_rng(args.seed)
    print(f"{runs} runs per cell; {DISCORDANT:.0%} of rows discordant; fire at the first look with "
          f">= {MIN_ROWS} paired rows and p <= {ALPHA}")
    print("| θ (share of discordant rows the parent gets right) | looks × rows per look | "
          "exact McNemar fires | rows to fire (median) | anytime-valid fires | rows to fire (median) | "
          "anytime / exact false-rollback ratio |")
    print("|---|---|---|---|---|---|---|")
    for theta in (0.5, 0.7, 0.9):
        for looks, rows in ((1, 300), (24, 60), (56, 60), (168, 20)):
            res = simulate(looks, rows, theta, runs, rng)
            (fe, de), (fa, da) = res["exact"], res["anytime"]
            ratio = f"{fa / fe:.2f}" if theta == 0.5 and fe > 0 else ""
            print(f"| {theta} | {looks} × {rows} | {fe:.1%} | {de if de is not None else '—'} | {fa:.1%} | "
                  f"{da if da is not None else '—'} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
