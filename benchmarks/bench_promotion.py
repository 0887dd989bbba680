"""How often does the promotion guard promote a model that is not better, or reject one that is?

Real shift: UCI Amazon sentences are the original domain; Yelp + IMDb + SST-2
(test split) sentences are production. Every sentence is embedded once with
all-MiniLM-L6-v2 (mean pooling, cached under ``.bench/``). Models are cheap
but real classifiers: linear heads (ridge regression, closed form) on those
embeddings — the guard only ever sees predictions.

Per trial (seeded split of both domains):

- the **active** head is trained on 300 Amazon rows;
- a **candidate** of one kind: ``noisy`` (the same rows, 35 % labels flipped:
  worse), ``same`` (a bootstrap resample of the same rows: no better),
  ``better-25/100/400`` (the Amazon rows plus 25/100/400 labelled production
  rows), ``forgets`` (400 production rows only: better on production, may lose
  Amazon);
- **truth** is each model's accuracy on a large held-out labelled set of each
  domain (≈ 2,400 production and 300 Amazon rows never used otherwise): the
  candidate is *truly better* when it gains on production and loses less than
  ε = 0.02 on Amazon;
- both guards decide on the same production-like slice (50 / 150 / 400 rows)
  and the same 400 original validation rows: the paired test
  (:func:`monitor.retrain.guard.judge`, α = 0.05) and today's fixed-δ guard
  (:func:`monitor.retrain.evaluate.decide`, δ = 0.01 macro-F1, ε = 0.02);
- an ``undecided`` decision is followed up: the slice is extended to the rows
  the decision asked for (when the production pool has them) and decided again.

Printed: rates of wrong promotion (promoted, not truly better), wrong
rejection (rejected, truly better) and undecided, per guard and slice size,
and at the follow-up size. Run::

    python benchmarks/bench_promotion.py            # 200 trials per candidate kind
    python benchmarks/bench_promotion.py --trials 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # small solves: threads thrash
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings, which numpy reads at import)

CACHE = Path(".bench")
KINDS = ("noisy", "same", "better-25", "better-100", "better-400", "forgets")
SLICES = (50, 150, 400)
N_ACTIVE_TRAIN = 300
N_ORIGINAL_VAL = 400
N_PROD_TRAIN = 400
N_SLICE_POOL = 1000
MARGIN = 0.02


def _embed(name: str, texts: list[str]) -> np.ndarray:
    """MiniLM sentence embeddings of ``texts``, cached in ``.bench/promotion-<name>-<n>.npy``."""
    path = CACHE / f"promotion-{name}-{len(texts)}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    import torch

    from collectors.encoding import TextEncoder, minilm_path

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    enc = TextEncoder.from_pretrained(minilm_path(), max_length=128, device="cpu", batch_size=64)
    t0 = time.perf_counter()
    emb = np.asarray(enc.encode(texts).embeddings, dtype=np.float32)
    print(f"embedded {len(texts)} {name} sentences in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    CACHE.mkdir(exist_ok=True)
    np.save(path, emb)
    return emb


def load(data: str | None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((X, y) original Amazon, (X, y) production Yelp + IMDb + SST-2 test), labels as 0/1."""
    from monitor import datasets

    def one(name: str, ds: Any) -> tuple[np.ndarray, np.ndarray]:
        return _embed(name, list(ds.texts)), np.array([int(y) for y in ds.labels], dtype=np.int64)

    orig = one("amazon", datasets.uci("amazon", data))
    parts = [one("yelp", datasets.uci("yelp", data)), one("imdb", datasets.uci("imdb", data)),
             one("sst2-test", datasets.sst2("test", data))]
    return orig, (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


class RidgeHead:
    """A linear classification head fitted in closed form (ridge regression on ±1 targets, with bias).

    Cheap and exactly reproducible, so thousands of trials run in seconds on a loaded machine.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, lam: float = 1.0) -> None:
        xb = np.hstack([x.astype(np.float64), np.ones((x.shape[0], 1))])
        reg = lam * np.eye(xb.shape[1])
        reg[-1, -1] = 0.0
        self.w = np.linalg.solve(xb.T @ xb + reg, xb.T @ (2.0 * y - 1.0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids (0/1)."""
        scores: np.ndarray = x.astype(np.float64) @ self.w[:-1] + self.w[-1]
        return (scores > 0).astype(np.int64)


def _head(x: np.ndarray, y: np.ndarray) -> RidgeHead:
    return RidgeHead(x, y)


def _candidate(kind: str, xa: np.ndarray, ya: np.ndarray, xp: np.ndarray, yp: np.ndarray,
               rng: np.random.Generator) -> Any:
    if kind == "noisy":
        flip = rng.random(ya.size) < 0.35
        return _head(xa, np.where(flip, 1 - ya, ya))
    if kind == "same":
        idx = rng.integers(0, ya.size, ya.size)
        return _head(xa[idx], ya[idx])
    if kind.startswith("better-"):
        k = int(kind.split("-")[1])
        return _head(np.concatenate([xa, xp[:k]]), np.concatenate([ya, yp[:k]]))
    if kind == "forgets":
        return _head(xp, yp)
    raise ValueError(kind)


def _decide_both(y_s: np.ndarray, pc_s: np.ndarray, pa_s: np.ndarray, y_o: np.ndarray, pc_o: np.ndarray,
                 pa_o: np.ndarray) -> tuple[Any, str]:
    from monitor.drift.performance import macro_f1
    from monitor.retrain.evaluate import decide
    from monitor.retrain.guard import Guard, PairedPredictions, judge

    new = judge(PairedPredictions(y_s, pc_s, pa_s, 2), PairedPredictions(y_o, pc_o, pa_o, 2), Guard())
    old = decide({"production": macro_f1(y_s, pc_s, 2), "original": macro_f1(y_o, pc_o, 2)},
                 {"production": macro_f1(y_s, pa_s, 2), "original": macro_f1(y_o, pa_o, 2)},
                 Guard(min_improvement=0.01, max_forgetting=MARGIN))
    return new, "promote" if old.promote else "reject"


def run(trials: int, seed: int, data: str | None) -> dict[str, Any]:
    """All trials; returns per-decision records and the rate table."""
    (xo, yo), (xp, yp) = load(data)
    records: list[dict[str, Any]] = []
    for t in range(trials):
        for ki, kind in enumerate(KINDS):
            rng = np.random.default_rng([seed, t, ki])
            io, ip = rng.permutation(yo.size), rng.permutation(yp.size)
            a_tr, a_val, a_truth = (io[:N_ACTIVE_TRAIN], io[N_ACTIVE_TRAIN:N_ACTIVE_TRAIN + N_ORIGINAL_VAL],
                                    io[N_ACTIVE_TRAIN + N_ORIGINAL_VAL:])
            p_tr, p_pool = ip[:N_PROD_TRAIN], ip[N_PROD_TRAIN:N_PROD_TRAIN + N_SLICE_POOL]
            p_truth = ip[N_PROD_TRAIN + N_SLICE_POOL:]
            active = _head(xo[a_tr], yo[a_tr])
            cand = _candidate(kind, xo[a_tr], yo[a_tr], xp[p_tr], yp[p_tr], rng)
            gain = float(np.mean(cand.predict(xp[p_truth]) == yp[p_truth])
                         - np.mean(active.predict(xp[p_truth]) == yp[p_truth]))
            loss = float(np.mean(active.predict(xo[a_truth]) == yo[a_truth])
                         - np.mean(cand.predict(xo[a_truth]) == yo[a_truth]))
            better = gain > 0 and loss < MARGIN
            pc_pool, pa_pool = cand.predict(xp[p_pool]), active.predict(xp[p_pool])
            y_pool = yp[p_pool]
            pc_o, pa_o, y_o = cand.predict(xo[a_val]), active.predict(xo[a_val]), yo[a_val]
            for n in SLICES:
                new, old = _decide_both(y_pool[:n], pc_pool[:n], pa_pool[:n], y_o, pc_o, pa_o)
                rec = {"trial": t, "kind": kind, "n": n, "better": better, "true_gain": gain,
                       "true_loss": loss, "new": new.outcome, "old": old, "rows_needed": new.rows_needed,
                       "followup": None, "followup_n": None,
                       "waits_on_original": new.details.get("original_rows_needed") is not None}
                if new.outcome == "undecided" and new.rows_needed is not None and new.rows_needed > n:
                    m = new.rows_needed
                    if m <= N_SLICE_POOL:
                        again, _ = _decide_both(y_pool[:m], pc_pool[:m], pa_pool[:m], y_o, pc_o, pa_o)
                        rec["followup"], rec["followup_n"] = again.outcome, m
                    else:
                        rec["followup"] = "beyond_pool"
                records.append(rec)
    return {"records": records, "table": table(records)}


def _rates(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    good = [r for r in rows if r["better"]]
    bad = [r for r in rows if not r["better"]]
    return {"n": len(rows), "n_truly_better": len(good), "n_not_better": len(bad),
            "wrong_promotion": (sum(r[key] == "promote" for r in bad) / len(bad)) if bad else None,
            "wrong_rejection": (sum(r[key] == "reject" for r in good) / len(good)) if good else None,
            "undecided": sum(r[key] == "undecided" for r in rows) / len(rows) if rows else None}


def table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rate rows: per guard and slice size, overall, and the paired guard's follow-ups."""
    out: list[dict[str, Any]] = []
    by_n: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_n[r["n"]].append(r)
    for n in sorted(by_n):
        for key, label in (("new", "paired test"), ("old", "fixed delta")):
            out.append({"guard": label, "slice": str(n), **_rates(by_n[n], key)})
    for key, label in (("new", "paired test"), ("old", "fixed delta")):
        out.append({"guard": label, "slice": "all", **_rates(records, key)})
    follow = [r for r in records if r["followup"] in ("promote", "reject", "undecided")]
    if follow:
        out.append({"guard": "paired test", "slice": "follow-up at rows asked for",
                    **_rates(follow, "followup")})
    beyond = sum(r["followup"] == "beyond_pool" for r in records)
    out.append({"guard": "paired test", "slice": f"undecided asking for > {N_SLICE_POOL} rows", "n": beyond})
    waits = sum(r["new"] == "undecided" and r["waits_on_original"] for r in records)
    out.append({"guard": "paired test", "slice": "undecided: original split too small", "n": waits})
    return out


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (optionally write every record as JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--trials", type=int, default=200, help="trials per candidate kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="data directory (default ../shared/data)")
    ap.add_argument("--json", type=Path, default=None, help="write records and table here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(args.trials, args.seed, args.data)
    wall = time.perf_counter() - t0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.trials} trials x {len(KINDS)} candidate kinds x {len(SLICES)} slice sizes; alpha 0.05, "
          f"margin {MARGIN}; {wall:.0f}s wall, load average {load:.1f} on {os.cpu_count()} cores")
    print(f"{'guard':12} {'slice':34} {'n':>5} {'better':>6} {'wrong promo':>11} {'wrong reject':>12} "
          f"{'undecided':>9}")
    for row in res["table"]:
        print(f"{row['guard']:12} {row['slice']:34} {row['n']:5d} {row.get('n_truly_better', 0):6d} "
              f"{_pct(row.get('wrong_promotion')):>11} {_pct(row.get('wrong_rejection')):>12} "
              f"{_pct(row.get('undecided')):>9}")
    kinds: dict[str, list[float]] = defaultdict(list)
    for r in res["records"]:
        if r["n"] == SLICES[0]:
            kinds[r["kind"]].append(r["true_gain"])
    print("true production accuracy gain per candidate kind (mean over trials): " + ", ".join(
        f"{k} {np.mean(v):+.3f}" for k, v in kinds.items()))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
