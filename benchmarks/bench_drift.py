"""Drift engine benchmark: speed vs Evidently 0.7, and a detection table on real shifts.

    .venv/bin/python benchmarks/bench_drift.py [--quick] [--resamples N] [--out FILE.json]

1. **Speed** — all five signals (``DriftSuite`` defaults) on 10,000 reference ×
   10,000 current rows with 384-d embeddings, against Evidently's
   ``EmbeddingsDrift`` on the same frames: its full report (drift method +
   t-SNE visualisation) and each bare drift method (``model``, ``distance``,
   ``ratio``; ``mmd`` only with ``--evidently-mmd``, since it builds a dense
   20,000² float64 kernel, ~6 GB).
2. **Detection** — real MiniLM embeddings of the shared data sets; for each
   scenario and window size n, the share of resamples flagged as drifted by
   our default verdict (Holm over all signals, α = 0.01) and by each Evidently
   embedding method with its defaults (as ``EmbeddingsDrift`` picks them:
   ``model`` bootstraps only while the reference has < 1,000 rows).

Everything is measured in this run; embeddings are cached under
``~/.cache/shiftwatch-bench`` (keyed by data set) so re-runs skip encoding.
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
from monitor.drift.suite import DriftSuite  # noqa: E402

CACHE = Path(os.environ.get("SHIFTWATCH_BENCH_CACHE", Path.home() / ".cache" / "shiftwatch-bench"))


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
    for sig in ("embedding", "class_distribution", "confidence", "tokenizer", "performance"):
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
# Detection on real data
# ---------------------------------------------------------------------------------------------
def _embed_cached(name: str, texts: list[str], get_encoder: Callable[[], Any]) -> dict[str, np.ndarray]:
    from collectors.encoding import token_stats

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{len(texts)}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    encoder = get_encoder()
    stats = token_stats(encoder.tokenizer, texts, encoder.max_length)
    out = {"emb": encoder.embed(texts), "n_tokens": stats.n_tokens, "n_unk": stats.n_unk,
           "truncated": stats.truncated, "n_chars": stats.n_chars}
    np.savez(path, **out)
    return out


def load_pools() -> dict[str, DriftFrame]:
    """Real MiniLM frames; predictions of a logistic-regression stand-in for the fine-tuned
    sentiment model, trained on the SST-2 dev rows (the first 872 rows of the sst2 pool; draws
    from that pool stay exchangeable, so no-shift scenarios remain no-shift)."""
    from functools import cache

    from sklearn.linear_model import LogisticRegression

    from collectors.encoding import TextEncoder, minilm_path
    from monitor import datasets

    @cache
    def encoder() -> Any:
        return TextEncoder.from_pretrained(minilm_path(), max_length=128, device="cpu")

    sst_dev, sst_test = datasets.sst2("dev"), datasets.sst2("test")
    raw = {"amazon": datasets.uci("amazon"), "yelp": datasets.uci("yelp"), "imdb": datasets.uci("imdb"),
           "sst2": datasets.TextDataset("sst2", sst_dev.texts + sst_test.texts,
                                        sst_dev.labels + sst_test.labels)}
    arrays = {k: _embed_cached(k, ds.texts, encoder) for k, ds in raw.items()}
    n_dev = len(sst_dev)
    clf = LogisticRegression(max_iter=1000).fit(arrays["sst2"]["emb"][:n_dev],
                                                np.asarray(raw["sst2"].labels[:n_dev]))
    pools = {}
    for k, ds in raw.items():
        a = arrays[k]
        probs = clf.predict_proba(a["emb"])
        pools[k] = DriftFrame(
            predicted_label=clf.classes_.astype(object)[probs.argmax(axis=1)],
            confidence=probs.max(axis=1).astype(np.float64), probs=probs.astype(np.float32),
            embedding=a["emb"].astype(np.float32), n_tokens=a["n_tokens"].astype(np.float64),
            n_unk=a["n_unk"].astype(np.float64), truncated=a["truncated"].astype(np.float64),
            n_chars=a["n_chars"].astype(np.float64), text=np.asarray(ds.texts, dtype=object),
            label=np.asarray(ds.labels, dtype=object))
    return pools


def _unlabelled(f: DriftFrame) -> DriftFrame:
    """Current windows carry no ground truth yet (it arrives late in production)."""
    return DriftFrame(predicted_label=f.predicted_label, confidence=f.confidence, probs=f.probs,
                      embedding=f.embedding, n_tokens=f.n_tokens, n_unk=f.n_unk, truncated=f.truncated,
                      n_chars=f.n_chars, text=f.text)


Draw = Callable[[dict[str, DriftFrame], int, np.random.Generator], tuple[DriftFrame, DriftFrame]]


def _same(src: str, n_ref: int) -> Draw:
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        perm = rng.permutation(p[src].n)
        return p[src].take(perm[:n_ref]), p[src].take(perm[n_ref:n_ref + n])
    return draw


def _cross(src: str, dst: str, n_ref: int) -> Draw:
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        return (p[src].take(rng.choice(p[src].n, n_ref, replace=False)),
                p[dst].take(rng.choice(p[dst].n, n, replace=False)))
    return draw


def _mixture(src: str, dst: str, share: float, n_ref: int) -> Draw:
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        perm = rng.permutation(p[src].n)
        k = round(share * n)
        ref = p[src].take(perm[:n_ref])
        a = _concat(p[src].take(perm[n_ref:n_ref + n - k]),
                    p[dst].take(rng.choice(p[dst].n, k, replace=False)))
        return ref, a
    return draw


def _prior(src: str, positive: str, share: float, n_ref: int) -> Draw:
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        f = p[src]
        assert f.label is not None
        perm = rng.permutation(f.n)
        rest = perm[n_ref:]
        pos, neg = rest[f.label[rest] == positive], rest[f.label[rest] != positive]
        k = round(share * n)
        cur = np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, n - k, replace=False)])
        return f.take(perm[:n_ref]), f.take(cur)
    return draw


def _concat(a: DriftFrame, b: DriftFrame) -> DriftFrame:
    def cat(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or y is None else np.concatenate([x, y])

    return DriftFrame(predicted_label=np.concatenate([a.predicted_label, b.predicted_label]),
                      confidence=np.concatenate([a.confidence, b.confidence]), probs=cat(a.probs, b.probs),
                      embedding=cat(a.embedding, b.embedding), n_tokens=cat(a.n_tokens, b.n_tokens),
                      n_unk=cat(a.n_unk, b.n_unk), truncated=cat(a.truncated, b.truncated),
                      n_chars=cat(a.n_chars, b.n_chars), text=cat(a.text, b.text),
                      label=cat(a.label, b.label))


SCENARIOS: dict[str, tuple[Draw, bool]] = {  # name -> (draw, is_shift)
    "no-shift amazon/amazon (ref 500)": (_same("amazon", 500), False),
    "no-shift sst2/sst2 (ref 1500)": (_same("sst2", 1500), False),
    "amazon -> yelp": (_cross("amazon", "yelp", 500), True),
    "amazon -> imdb": (_cross("amazon", "imdb", 500), True),
    "sst2 -> raw imdb": (_cross("sst2", "imdb", 1500), True),
    "amazon + 25% yelp mixture": (_mixture("amazon", "yelp", 0.25, 500), True),
    "label prior 80% positive (sst2)": (_prior("sst2", "1", 0.8, 1500), True),
}


def _detect_scenario(name: str, sizes: list[int], resamples: int,
                     methods: list[str]) -> tuple[str, dict[str, dict[int, float]]]:
    """One scenario's detection rates (runs in a worker process, single-threaded BLAS)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        pools = load_pools()
        ev = _evidently_methods()
        draw, _ = SCENARIOS[name]
        rows: dict[str, dict[int, float]] = {m: {} for m in ["ours", *methods]}
        for n in sizes:
            rng = np.random.default_rng(zlib.crc32(f"{name}/{n}".encode()))
            hits = {m: 0 for m in rows}
            for r in range(resamples):
                ref, cur = draw(pools, n, rng)
                report = DriftSuite(seed=r).fit(ref).compute(_unlabelled(cur))
                hits["ours"] += report.drifted
                assert ref.embedding is not None and cur.embedding is not None
                for m in methods:
                    hits[m] += _ev_call(ev[m](ref.n), ref.embedding, cur.embedding)
            for m in rows:
                rows[m][n] = hits[m] / resamples
            print(f"  {name:36s} n={n:4d} " + " ".join(f"{m}={rows[m][n]:.2f}" for m in rows), flush=True)
    return name, rows


def bench_detection(sizes: list[int], resamples: int, methods: list[str],
                    workers: int) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    load_pools()  # fill the embedding cache once before the workers read it
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_detect_scenario, name, sizes, resamples, methods) for name in SCENARIOS]
        done = dict(f.result() for f in futures)
    return {name: {"shift": SCENARIOS[name][1], "rates": done[name]} for name in SCENARIOS}


def _markdown(table: dict[str, Any], sizes: list[int], resamples: int) -> str:
    methods = list(next(iter(table.values()))["rates"])
    head = "| scenario | method | " + " | ".join(f"n={n}" for n in sizes) + " |"
    lines = [f"Detection rate over {resamples} resamples (no-shift rows: false-positive rate).", "",
             head, "|" + "---|" * (len(sizes) + 2)]
    for name, entry in table.items():
        for m in methods:
            lines.append(f"| {name} | {m} | " + " | ".join(f"{entry['rates'][m][n]:.2f}" for n in sizes)
                         + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000-row speed test, fewer resamples")
    parser.add_argument("--resamples", type=int, default=None)
    parser.add_argument("--evidently-mmd", action="store_true",
                        help="also time Evidently's dense-kernel MMD at full size (~6 GB)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="processes for the detection table")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
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
        sizes = [50, 200] if args.quick else [50, 100, 200, 500]
        resamples = args.resamples or (5 if args.quick else 20)
        methods = ["ev_model", "ev_distance", "ev_mmd"] if args.quick else \
            ["ev_model", "ev_distance", "ev_ratio", "ev_mmd"]
        print(f"detection: {resamples} resamples, n in {sizes}", flush=True)
        table = bench_detection(sizes, resamples, methods, args.workers)
        results["detection"] = table
        print(_markdown(table, sizes, resamples))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
