"""Retrain benchmark: gradual unfreezing vs full fine-tuning vs head only, after an Amazon → Yelp shift.

1. v1: the real MiniLM (all-MiniLM-L6-v2) with a fresh 2-label head, fully
   fine-tuned on UCI Amazon sentences.
2. Shift: UCI Yelp sentences. 200 labelled Yelp sentences are the labelled
   production rows; they are assembled with the Amazon training data exactly
   as ``retrain()`` does (20 % production share, a stratified production-like
   validation slice held out for early stopping).
3. From v1, retrain with (a) gradual unfreezing, (b) full fine-tuning and
   (c) head only — same step budget, same learning rate — over several seeds.
   Gradual unfreezing runs with the trainer's defaults (phase count derived so
   the last phase trains the whole encoder, steps allocated in proportion to
   the trainable units) unless ``--phases`` / ``--allocation`` /
   ``--head-lr-scale`` override them.
4. Report macro-F1 (mean ± std) on held-out Yelp and held-out Amazon
   (forgetting = drop against v1), wall time per run and time per epoch.
5. Headroom (``--ceiling``, on by default outside ``--quick``): how far any
   retrain could get on this shift. The held-out Yelp rows are split in two
   stratified halves; for each half, v1 is fully fine-tuned on the 200
   labelled rows plus the *other* half (~600 in-domain Yelp rows, no Amazon
   mixing, same budget) and predicts this half. Scoring the pooled
   out-of-fold predictions gives an in-domain reference on exactly the same
   800 test rows as the table, trained on 4× the labels a retrain gets.

Every number is measured in this run; v1 is the baseline. ``--quick`` runs
one seed with a small budget. Run: ``.venv/bin/python benchmarks/bench_retrain.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def _encoder(model_dir: str, max_length: int) -> Any:
    """A saved classifier, loaded once for all the sets it scores (CPU, batch 128)."""
    from collectors.encoding import TextEncoder

    return TextEncoder.from_pretrained(model_dir, classifier=True, max_length=max_length, device="cpu",
                                       batch_size=128)


def _scores(model_dir: str, sets: dict[str, Any], labels: list[str], max_length: int) -> dict[str, float]:
    """Macro-F1 of one saved classifier on each named set, scored as ``retrain()`` scores candidates."""
    from monitor.retrain.evaluate import score

    enc = _encoder(model_dir, max_length)
    return {name: score(enc, examples, labels).macro_f1 for name, examples in sets.items()}


def _default_budget(n_train: int, batch_size: int) -> int:
    """Steps a default ``retrain()`` gives gradual unfreezing: derived phases × 1 epoch each."""
    from transformers import AutoConfig

    from collectors.encoding import minilm_path
    from monitor.retrain.trainer import TrainConfig

    n_layers = int(AutoConfig.from_pretrained(minilm_path()).num_hidden_layers)
    return TrainConfig(batch_size=batch_size).step_budget(n_train, n_layers)


def _ceiling(v1_dir: Path, y_lab: Any, y_test: Any, a_test: Any, *, labels: list[str], steps: int,
             lr: float, max_length: int, alpha: float, work: Path) -> dict[str, float]:
    """In-domain reference on the same test rows: two-fold cross-fitted full fine-tunes from v1.

    Fold f trains on the labelled rows plus the other test half (50 rows held
    out for checkpoint selection) and predicts half f; the pooled out-of-fold
    predictions cover every test row exactly once. Amazon is the mean of the
    two models' held-out Amazon scores.
    """
    from monitor.drift.performance import macro_f1
    from monitor.retrain.data import stratified_split
    from monitor.retrain.evaluate import score
    from monitor.retrain.trainer import Examples, TrainConfig, train

    half_a, half_b = stratified_split(y_test, 0.5, seed=2)
    pooled_labels: list[str] = []
    pooled_pred: list[np.ndarray] = []
    amazon, walls, n_train = [], [], 0
    for fold, (scored, other) in enumerate(((half_a, half_b), (half_b, half_a))):
        pool = Examples(y_lab.texts + other.texts, y_lab.labels + other.labels)
        val, tr = stratified_split(pool, 50 / len(pool), seed=fold)
        n_train = len(tr)
        out = work / f"ceiling-{fold}"
        t = time.perf_counter()
        train(str(v1_dir), tr, val, labels=labels, out_dir=out,
              config=TrainConfig(strategy="full", max_steps=steps, lr=lr, batch_size=16, eval_every=20,
                                 patience=3, max_length=max_length, selection_alpha=alpha, seed=fold,
                                 progress=False))
        walls.append(time.perf_counter() - t)
        enc = _encoder(str(out), max_length)
        probs = enc.encode(scored.texts).probs
        assert probs is not None
        pooled_labels += scored.labels
        pooled_pred.append(probs.argmax(1))
        amazon.append(score(enc, a_test, labels).macro_f1)
        print(f"  ceiling fold {fold}: trained on {len(tr)} Yelp rows, Amazon {100 * amazon[-1]:.1f}, "
              f"wall {walls[-1]:.0f} s", flush=True)
    index = {lab: i for i, lab in enumerate(labels)}
    yelp = macro_f1(np.array([index[x] for x in pooled_labels]), np.concatenate(pooled_pred), len(labels))
    return {"yelp": yelp, "amazon": statistics.mean(amazon), "wall": statistics.mean(walls),
            "n_yelp_train": float(n_train)}


def _mean_std(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):.1f} ± {100 * sd:.1f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, small step budget")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per strategy (default 3, quick 1)")
    parser.add_argument("--steps", type=int, default=None,
                        help="retrain step budget (default: what a default retrain() gives gradual "
                        "unfreezing, phases × 1 epoch = 5 epochs here; quick 30)")
    parser.add_argument("--v1-steps", type=int, default=None, help="v1 steps (default 120, quick 60)")
    parser.add_argument("--lr", type=float, default=1e-4, help="head learning rate (all strategies)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--strategies", default="gradual,full,head", help="comma-separated strategies")
    parser.add_argument("--phases", type=int, default=None, help="gradual phases (default: derived)")
    parser.add_argument("--layers-per-phase", type=int, default=2, help="gradual: units unfrozen per phase")
    parser.add_argument("--allocation", choices=("units", "equal"), default="units",
                        help="gradual step allocation over phases")
    parser.add_argument("--head-lr-scale", type=float, default=1.0,
                        help="head lr = lr × this (all strategies)")
    parser.add_argument("--production-share", type=float, default=0.2,
                        help="share of labelled Yelp rows in the retrain mix (retrain()'s default 0.2)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="checkpoint selection level (TrainConfig.selection_alpha; 1 = highest score)")
    parser.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure the in-domain headroom reference (default: on, off with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--v1-dir", type=Path, default=None,
                        help="reuse a v1 saved by an earlier run (same data split) instead of training it")
    args = parser.parse_args(argv)

    import torch

    from collectors.encoding import minilm_path
    from monitor.datasets import uci
    from monitor.retrain.data import assemble, stratified_split
    from monitor.retrain.trainer import Examples, TrainConfig, train

    torch.set_num_threads(args.threads)
    seeds = args.seeds or (1 if args.quick else 3)
    v1_steps = args.v1_steps or (60 if args.quick else 120)
    max_length, labels = 64, ["0", "1"]
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def ex(ds: Any) -> Examples:
        return Examples(list(ds.texts), list(ds.labels))

    amazon, yelp = ex(uci("amazon")), ex(uci("yelp"))
    a_test, a_rest = stratified_split(amazon, 0.2, seed=0)
    a_val, a_train = stratified_split(a_rest, 0.125, seed=0)  # 100 val, 700 train
    y_lab, y_rest = stratified_split(yelp, 0.2, seed=0)  # 200 labelled production rows
    y_test = stratified_split(y_rest, 0.25, seed=1)[0] if args.quick else y_rest
    if args.quick:
        a_test = stratified_split(a_test, 0.5, seed=1)[0]
    data = assemble(y_lab, a_train, a_val, labels=labels, production_share=args.production_share,
                    min_labelled=100, seed=0)
    steps = args.steps or (30 if args.quick else _default_budget(len(data.train), 16))
    print(f"# retrain benchmark ({'quick' if args.quick else 'full'}): device={device}, "
          f"threads={args.threads}, max_length={max_length}, retrain budget={steps} steps, "
          f"seeds={seeds}, lr={args.lr}, head_lr_scale={args.head_lr_scale}, gradual phases="
          f"{args.phases or 'derived'}, k={args.layers_per_phase}, allocation={args.allocation}", flush=True)
    print(f"amazon train/val/test = {len(a_train)}/{len(a_val)}/{len(a_test)}; "
          f"yelp labelled/test = {len(y_lab)}/{len(y_test)}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    v1_dir = work / "v1"
    v1_steps_done, v1_epoch_s, v1_wall_s = v1_steps, float("nan"), float("nan")
    if args.v1_dir is not None:
        v1_dir = args.v1_dir
        print(f"v1: reused from {v1_dir} (trained by an earlier run)", flush=True)
    else:
        t0 = time.perf_counter()
        v1 = train(minilm_path(), a_train, a_val, labels=labels, out_dir=v1_dir,
                   config=TrainConfig(strategy="full", max_steps=v1_steps, lr=args.lr, batch_size=16,
                                      eval_every=50, max_length=max_length, seed=0, progress=False))
        v1_wall_s, v1_epoch_s, v1_steps_done = time.perf_counter() - t0, v1.seconds_per_epoch, v1.steps
    # Held-out test sets, and the two sets retrain()'s promotion guard compares on.
    sets = {"yelp": y_test, "amazon": a_test, "production": data.production_val,
            "original": data.original_val}
    v1_scores = _scores(str(v1_dir), sets, labels, max_length)
    v1_yelp, v1_amazon = v1_scores["yelp"], v1_scores["amazon"]
    v1_guard = {k: v1_scores[k] for k in ("production", "original")}
    trained = "reused" if args.v1_dir is not None else (
        f"{v1_steps_done} steps in {v1_wall_s:.0f} s ({v1_epoch_s:.1f} s/epoch)")
    print(f"v1: {trained}; Yelp F1 {100 * v1_yelp:.1f}, Amazon F1 {100 * v1_amazon:.1f}", flush=True)

    print(f"retrain data: {data.summary()}", flush=True)
    from monitor.retrain.evaluate import Guard, decide

    guard = Guard()
    print(f"v1 on the guard's sets: production slice F1 {100 * v1_guard['production']:.1f}, "
          f"original val F1 {100 * v1_guard['original']:.1f}", flush=True)
    results: dict[str, dict[str, list[float]]] = {}
    plans: dict[str, list[int]] = {}
    evals: dict[str, list[list[tuple[int, float, float]]]] = {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        r: dict[str, list[float]] = {"yelp": [], "amazon": [], "wall": [], "epoch_s": [], "val": [],
                                     "promoted": []}
        for seed in range(seeds):
            out = work / f"{strategy}-{seed}"
            cfg = TrainConfig(strategy=strategy, phases=args.phases,  # type: ignore[arg-type]
                              layers_per_phase=args.layers_per_phase, step_allocation=args.allocation,
                              head_lr_scale=args.head_lr_scale, selection_alpha=args.alpha, max_steps=steps,
                              lr=args.lr, batch_size=16,
                              eval_every=20, patience=3, max_length=max_length, seed=seed, progress=False)
            t = time.perf_counter()
            rows: list[dict[str, Any]] = []
            res = train(str(v1_dir), data.train, data.production_val, labels=labels, config=cfg,
                        out_dir=out, log_sink=rows.extend)
            evals.setdefault(strategy, []).append(
                [(x["step"], x["val_macro_f1"], x["val_loss"]) for x in rows
                 if x["val_macro_f1"] is not None])
            wall = time.perf_counter() - t
            got = _scores(str(out), sets, labels, max_length)
            r["yelp"].append(got["yelp"])
            r["amazon"].append(got["amazon"])
            r["wall"].append(wall)
            r["epoch_s"].append(res.seconds_per_epoch)
            r["val"].append(res.best_val_macro_f1)
            # What retrain() would do with this candidate: the promotion guard against v1.
            verdict = decide({k: got[k] for k in ("production", "original")}, v1_guard, guard)
            r["promoted"].append(float(verdict.promote))
            plans[strategy] = list(res.planned_steps)
            print(f"  {strategy:8} seed {seed}: Yelp {100 * r['yelp'][-1]:.1f} Amazon "
                  f"{100 * r['amazon'][-1]:.1f} steps {res.steps} best step {res.best_step} "
                  f"(val F1 {100 * res.best_val_macro_f1:.1f}; plan {list(res.planned_steps)}, "
                  f"units of the last phase: {len(res.phases[-1].units)}) guard: "
                  f"{'promote' if verdict.promote else 'reject'} ({'; '.join(verdict.reasons)}) "
                  f"wall {wall:.0f} s", flush=True)
        results[strategy] = r

    ceiling: dict[str, float] | None = None
    if args.ceiling if args.ceiling is not None else not args.quick:
        ceiling = _ceiling(v1_dir, y_lab, y_test, a_test, labels=labels, steps=steps, lr=args.lr,
                           max_length=max_length, alpha=args.alpha, work=work)

    full_wall = statistics.mean(results["full"]["wall"]) if "full" in results else float("nan")
    print()
    print(f"| model | Yelp macro-F1 (held-out, n={len(y_test)}) | Δ vs v1 | "
          f"Amazon macro-F1 (held-out, n={len(a_test)}) | forgetting vs v1 | wall s/run | "
          f"s/epoch ({device}) | wall vs full | guard (δ {guard.min_improvement}, ε {guard.max_forgetting}) "
          "promotes |")
    print("|---|---|---|---|---|---|---|---|---|")
    v1_label = "reused" if args.v1_dir is not None else f"{v1_steps_done} steps"
    print(f"| v1 (Amazon fine-tune, {v1_label}) | {100 * v1_yelp:.1f} | — | {100 * v1_amazon:.1f} "
          f"| — | {v1_wall_s:.0f} | {v1_epoch_s:.1f} | — | — |")
    for strategy, r in results.items():
        gain = [y - v1_yelp for y in r["yelp"]]
        drop = [v1_amazon - a for a in r["amazon"]]
        split = f", phases {'/'.join(map(str, plans[strategy]))}" if len(plans[strategy]) > 1 else ""
        print(f"| {strategy} ({steps} steps{split} × {seeds} seeds) | {_mean_std(r['yelp'])} | "
              f"{100 * statistics.mean(gain):+.1f} | {_mean_std(r['amazon'])} | "
              f"{100 * statistics.mean(drop):+.1f} | {statistics.mean(r['wall']):.0f} | "
              f"{statistics.mean(r['epoch_s']):.1f} | {statistics.mean(r['wall']) / full_wall:.2f}× | "
              f"{sum(r['promoted']):.0f}/{len(r['promoted'])} |")
    if ceiling is not None:
        print(f"| in-domain reference (v1 + full, "
              f"{ceiling['n_yelp_train']:.0f} Yelp rows, cross-fitted ×2) | "
              f"{100 * ceiling['yelp']:.1f} | {100 * (ceiling['yelp'] - v1_yelp):+.1f} | "
              f"{100 * ceiling['amazon']:.1f} | {100 * (v1_amazon - ceiling['amazon']):+.1f} | "
              f"{ceiling['wall']:.0f} | — | — | — |")
    if args.json:
        payload = {"v1": {"yelp": v1_yelp, "amazon": v1_amazon, "wall": v1_wall_s}, "v1_guard": v1_guard,
                   "ceiling": ceiling, "results": results, "plans": plans, "evals": evals,
                   "args": {k: str(v) for k, v in vars(args).items()}, "steps": steps, "seeds": seeds,
                   "device": device}
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
