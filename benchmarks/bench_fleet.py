"""Fleet benchmark: a ≥1M-row lake on real MiniLM embeddings, fleet drift on DuckDB and Spark.

    .venv/bin/python benchmarks/bench_fleet.py [--rows-per-hour N] [--engines duckdb,spark]
                                               [--trials N] [--out FILE.json]

1. **Data.** Real text from the shared data: SST-2 training sentences (the
   in-domain pool) and the UCI Amazon/Yelp/IMDb sentences (another domain),
   embedded once with MiniLM and cached under ``.bench/``. A logistic-regression
   sentiment "model" trained on half of SST-2 gives the predicted labels, the
   confidences and ``probs``. The embeddings are projected onto 64 principal axes
   fitted on the pool, which keeps a 1M-row lake at about 0.3 GB. Synthetic rows
   resample the pool with a small Gaussian jitter (2 % of each axis' SD), and keep
   the real token statistics of their source text.
2. **Lake.** 4 replicas × 24 hours × ``--rows-per-hour`` rows (default 10,500, so
   1,008,000 rows in all). Replica ``r2`` drifts from hour 12: 30 % of its rows
   come from the other domain. Replica ``r3`` changes only its class mix from
   hour 6: it resamples in-domain rows with 80 % predicted positive instead of
   the pool's share.
3. **Flags.** ``fleet drift --by replica`` at α = 0.001 per window. The level was
   fixed before the run, because 96 group windows are tested. A window is
   flagged when its Holm verdict is drift. Its diagnosis is the ``diagnosis``
   field of the window's DriftReport JSON — :func:`monitor.drift.diagnosis.diagnose`
   on the merged statistics, the same field ``shiftwatch drift`` prints. The
   bench reports whether every (replica, hour) cell has the right kind: ``none``
   for the quiet cells, ``covariate`` for ``r2`` from hour 12, ``label_prior``
   for ``r3`` from hour 6.
4. **Power.** Over ``--trials`` trials: 50,000 reference rows against 50,000
   current rows, with 5 % of the current rows from the other domain, and a
   no-shift case. The all-rows test (``rff_hotelling``) runs on all rows. MMD
   runs on its default 1,000-row subsample per side with 500 permutations.
5. **Speed.** For each engine: seconds to compute the partials of one backfilled
   day from its prediction files (96 replica-hours), and seconds per merged
   window (merge plus test, from stored partials).

Everything is measured in this run. The machine load is printed with the
results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collectors.schema import ARROW_SCHEMA  # noqa: E402
from monitor.drift.frame import DriftFrame  # noqa: E402
from monitor.drift.rff import RFFHotellingDrift  # noqa: E402
from monitor.drift.suite import DriftSuite  # noqa: E402
from monitor.lake.engines import make_engine  # noqa: E402
from monitor.lake.fleet import LakeConfig, ensure_partials, reference_partial, windows_of  # noqa: E402
from monitor.lake.layout import write_predictions  # noqa: E402

CACHE = ROOT / ".bench"
DIMS = 64
ALPHA = 0.001
REPLICAS = ("r0", "r1", "r2", "r3")
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def _embedded() -> dict[str, Any]:
    """MiniLM embeddings + token stats of the pool (SST-2) and the other domain (UCI)."""
    path = CACHE / "fleet_minilm.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    from collectors.encoding import TextEncoder, minilm_path, token_stats
    from monitor import datasets

    enc = TextEncoder.from_pretrained(minilm_path(), max_length=128, device="cpu")
    sst = datasets.sst2("train")
    idx = np.random.default_rng(0).choice(len(sst), size=min(4000, len(sst)), replace=False)
    pool_texts = [sst.texts[i] for i in idx]
    pool_labels = np.asarray([sst.labels[i] for i in idx])
    other_texts = [t for src in ("amazon", "yelp", "imdb") for t in datasets.uci(src).texts]
    out: dict[str, Any] = {"pool_labels": pool_labels.astype(str)}
    for name, texts in (("pool", pool_texts), ("other", other_texts)):
        t = time.perf_counter()
        out[f"{name}_emb"] = enc.embed(texts).astype(np.float32)
        st = token_stats(enc.tokenizer, texts, enc.max_length)
        out[f"{name}_ntok"], out[f"{name}_unk"] = st.n_tokens, st.n_unk
        out[f"{name}_trunc"] = st.truncated
        print(f"embedded {len(texts)} {name} texts in {time.perf_counter() - t:.1f}s", flush=True)
    CACHE.mkdir(exist_ok=True)
    np.savez(path, **out)
    return out


class Source:
    """Pool rows projected to DIMS, with the stand-in model's outputs, for resampling."""

    def __init__(self, data: dict[str, Any]) -> None:
        from sklearn.linear_model import LogisticRegression

        pool, other = data["pool_emb"], data["other_emb"]
        self.mean = pool.mean(axis=0)
        _, _, vt = np.linalg.svd(pool - self.mean, full_matrices=False)
        self.axes = vt[:DIMS]
        half = np.arange(pool.shape[0]) % 2 == 0
        clf = LogisticRegression(max_iter=1000).fit(pool[half], data["pool_labels"][half])
        self.classes = np.asarray([str(c) for c in clf.classes_], dtype=object)
        self.sets: dict[str, dict[str, np.ndarray]] = {}
        for name, emb in (("pool", pool), ("other", other)):
            probs = clf.predict_proba(emb).astype(np.float32)
            self.sets[name] = {"emb": ((emb - self.mean) @ self.axes.T).astype(np.float32),
                               "probs": probs, "pred": self.classes[probs.argmax(axis=1)],
                               "ntok": data[f"{name}_ntok"], "unk": data[f"{name}_unk"],
                               "trunc": data[f"{name}_trunc"]}
        self.jitter = 0.02 * self.sets["pool"]["emb"].std(axis=0)

    def draw(self, n: int, rng: np.random.Generator, *, other_share: float = 0.0,
             positive_share: float | None = None) -> dict[str, np.ndarray]:
        """``n`` resampled rows: ``other_share`` from the other domain, or in-domain rows with
        a forced share of the second class (a pure class-mix change)."""
        pool = self.sets["pool"]
        if positive_share is not None:
            pos = np.flatnonzero(pool["pred"] == self.classes[1])
            neg = np.flatnonzero(pool["pred"] == self.classes[0])
            k = rng.binomial(n, positive_share)
            picks = [("pool", rng.choice(pos, size=k)), ("pool", rng.choice(neg, size=n - k))]
        else:
            k = rng.binomial(n, other_share)
            picks = [("other", rng.integers(0, self.sets["other"]["emb"].shape[0], size=k)),
                     ("pool", rng.integers(0, pool["emb"].shape[0], size=n - k))]
        parts = {key: np.concatenate([self.sets[s][key][i] for s, i in picks])
                 for key in ("emb", "probs", "pred", "ntok", "unk", "trunc")}
        parts["emb"] = parts["emb"] + rng.normal(size=parts["emb"].shape).astype(
            np.float32) * self.jitter
        order = rng.permutation(n)
        return {k: v[order] for k, v in parts.items()}


def _table(rows: dict[str, np.ndarray], start: datetime, rng: np.random.Generator) -> pa.Table:
    n = rows["emb"].shape[0]
    secs = np.sort(rng.uniform(0, 3599, n))
    ts = pa.array((np.datetime64(start.replace(tzinfo=None), "us")
                   + (secs * 1e6).astype("timedelta64[us]")), pa.timestamp("us", tz="UTC"))
    emb = pa.FixedSizeListArray.from_arrays(pa.array(rows["emb"].ravel()), DIMS).cast(
        pa.list_(pa.float32()))
    probs = pa.FixedSizeListArray.from_arrays(pa.array(rows["probs"].ravel()), 2).cast(
        pa.list_(pa.float32()))
    cols = {
        "event_id": pa.array([uuid.UUID(bytes=rng.bytes(16)).hex for _ in range(n)]),
        "ts": ts, "model_name": pa.array(["sentiment"] * n),
        "model_version": pa.array(["3"] * n),
        "predicted_label": pa.array(rows["pred"].astype(str).tolist()),
        "confidence": pa.array(rows["probs"].max(axis=1).astype(np.float64)),
        "probs": probs, "embedding": emb,
        "n_tokens": pa.array(rows["ntok"].astype(np.int32)),
        "n_unk": pa.array(rows["unk"].astype(np.int32)),
        "truncated": pa.array(rows["trunc"].astype(bool)),
    }
    full = {f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in ARROW_SCHEMA}
    return pa.Table.from_pydict(full, schema=ARROW_SCHEMA)


def _truth(replica: str, hour: int) -> str:
    if replica == "r2" and hour >= 12:
        return "covariate"
    if replica == "r3" and hour >= 6:
        return "label_prior"
    return "none"


def build_lake(lake: Path, src: Source, rows_per_hour: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    for hour in range(24):
        start = T0 + timedelta(hours=hour)
        for replica in REPLICAS:
            truth = _truth(replica, hour)
            rows = src.draw(rows_per_hour, rng,
                            other_share=0.3 if truth == "covariate" else 0.0,
                            positive_share=0.8 if truth == "label_prior" else None)
            write_predictions(lake, _table(rows, start, rng), replica=replica)
            total += rows_per_hour
    return total


def _frame(src: Source, n: int, rng: np.random.Generator, **kw: Any) -> DriftFrame:
    """``n`` drawn rows as a window, with event ids (a reference file has them: the bottom-k
    sample, and so the unknown-input distance test, needs them)."""
    rows = src.draw(n, rng, **kw)
    ids = np.asarray([uuid.UUID(bytes=rng.bytes(16)).hex for _ in range(n)], dtype=object)
    return DriftFrame(predicted_label=rows["pred"], confidence=rows["probs"].max(axis=1)
                      .astype(np.float64), probs=rows["probs"], embedding=rows["emb"],
                      n_tokens=rows["ntok"].astype(np.float64), n_unk=rows["unk"].astype(np.float64),
                      truncated=rows["trunc"].astype(np.float64), event_id=ids)


def power(src: Source, trials: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for case, share in (("5% other-domain rows", 0.05), ("no shift", 0.0)):
        hits = {"rff_hotelling_all_rows": 0, "mmd_1k_subsample": 0}
        secs = {"rff_hotelling_all_rows": 0.0, "mmd_1k_subsample": 0.0}
        for t in range(trials):
            ref = _frame(src, 50_000, rng)
            cur = _frame(src, 50_000, rng, other_share=share)
            t0 = time.perf_counter()
            hits["rff_hotelling_all_rows"] += RFFHotellingDrift(threshold=0.01).fit(ref) \
                .compute(cur).drifted
            t1 = time.perf_counter()
            mmd = DriftSuite(["embedding"], alpha=0.01, seed=t, options={"embedding": {
                "all_rows_past_max": False, "per_class_permutations": 0}})
            hits["mmd_1k_subsample"] += mmd.fit(ref).compute(cur).signals[0].drifted
            t2 = time.perf_counter()
            secs["rff_hotelling_all_rows"] += t1 - t0
            secs["mmd_1k_subsample"] += t2 - t1
        out[case] = {k: f"{v}/{trials}" for k, v in hits.items()}
        out[case]["seconds_per_test"] = {k: round(v / trials, 2) for k, v in secs.items()}
        print(f"power, {case}: {out[case]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows-per-hour", type=int, default=10_500)
    ap.add_argument("--engines", default="duckdb,spark")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lake", type=Path, default=CACHE / "fleet-lake")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
          f"{os.cpu_count()} CPUs", flush=True)
    src = Source(_embedded())
    if args.lake.exists():
        shutil.rmtree(args.lake)
    t = time.perf_counter()
    n_rows = build_lake(args.lake, src, args.rows_per_hour, args.seed)
    results: dict[str, Any] = {"rows": n_rows, "replicas": len(REPLICAS), "hours": 24,
                               "alpha": ALPHA, "build_lake_s": round(time.perf_counter() - t, 1)}
    print(f"lake: {n_rows} rows in {results['build_lake_s']}s", flush=True)
    ref = reference_partial(_frame(src, 50_000, np.random.default_rng(args.seed + 1)),
                            config=LakeConfig())
    results["power"] = power(src, args.trials, args.seed + 2)
    day = T0.date()
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        try:
            engine = make_engine(name)
        except Exception as exc:  # a missing pyspark/Java is reported, not fatal to the bench
            results[name] = {"skipped": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: skipped ({exc})", flush=True)
            continue
        try:
            results[name] = run_engine(args.lake, engine, ref, day)
        finally:
            engine.close()
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    load = os.getloadavg()
    results["load_average_at_end"] = [round(x, 1) for x in load]
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


def run_engine(lake: Path, engine: Any, ref: Any, day: date) -> dict[str, Any]:
    for p in (lake / "partials").glob("*"):
        shutil.rmtree(p)
    t = time.perf_counter()
    parts = ensure_partials(lake, engine, since=day, until=day)
    backfill_s = time.perf_counter() - t
    t = time.perf_counter()
    windows = windows_of(parts, ref, by="replica", alpha=ALPHA)
    merge_s = (time.perf_counter() - t) / len(windows)
    flags: dict[str, Any] = {"wrong": [], "right": 0, "kinds": {}}
    fleet_kinds: dict[int, str] = {}
    for w in windows:
        d = w.to_dict()  # the DriftReport JSON of `fleet drift --json`
        got = d["diagnosis"]["kind"]
        if got != "none" and not d["drifted"]:
            raise AssertionError(f"diagnosis {got} on a window without drift: {d['window']}")
        if w.group is None:
            fleet_kinds[int(w.hour)] = got
            continue
        replica, hour = w.group["replica"], int(w.hour)
        want = _truth(replica, hour)
        flags["kinds"][got] = flags["kinds"].get(got, 0) + 1
        if got == want:
            flags["right"] += 1
        else:
            flags["wrong"].append({"replica": replica, "hour": hour, "want": want, "got": got,
                                   "summary": d["diagnosis"]["summary"]})
    fleet = [w for w in windows if w.group is None]
    return {"backfill_day_s": round(backfill_s, 1), "seconds_per_merged_window": round(merge_s, 3),
            "group_windows": len(windows) - len(fleet), "fleet_windows": len(fleet),
            "fleet_hours_flagged": [int(w.hour) for w in fleet if w.report.drifted],
            "fleet_hour_diagnosis": fleet_kinds,
            "group_cells_right": flags["right"], "group_cells_wrong": flags["wrong"],
            "group_diagnosis_counts": flags["kinds"], "exact": not flags["wrong"]}


if __name__ == "__main__":
    main()
