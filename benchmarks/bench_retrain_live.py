"""Wall time of a default retrain in a running sidecar, under ingest load, with drift checks on.

What runs (all real, nothing simulated):

1. ``shiftwatch serve`` as a subprocess on 127.0.0.1 (free port, tmp DB, bearer token), with the
   drift check every ``--interval`` seconds on count windows of ``--window`` rows, and a policy
   that is the shipped default's rules with the ``retrain`` and ``rollback`` actions taken out
   (the benchmark starts the one retrain itself; notifications go to a local receiver).
2. v1 = the real all-MiniLM-L6-v2 encoder with a fresh 2-label head (seeded; not fine-tuned: the
   wall time depends on the step count and the model, not on v1's accuracy), registered through
   the CLI with UCI Amazon sentences as its training file; its reference set is 300 held-out
   Amazon records. Traffic is UCI Yelp + IMDb sentences scored by v1 (embeddings, probabilities:
   computed once, cached under ``.bench/retrain-live/``); ``--labelled`` of them carry their true
   label (the labelled production rows a retrain needs).
3. A load generator posts records to ``POST /v1/predictions`` at a fixed rate (``--rate``
   records/s in batches of ``--batch``) for ``--before`` seconds, then all through the retrain.
4. ``shiftwatch retrain --model bench`` starts the retrain in the sidecar's background with the
   DEFAULT budget (``--steps N`` sets ``--max-steps`` for a quick run); ``shiftwatch retrain
   status ID --json`` is polled until the run ends.

Report: total wall time, steps, s/step, phases (steps and trainer-measured wall time each), the
drift-check intervals during the retrain (from ``job_runs``, read after the sidecar stopped), and
ingest throughput and POST latency during vs before the retrain, as a ratio in the same run.

Run: ``python benchmarks/bench_retrain_live.py`` (default budget; ~30-50 min on 2 loaded cores)
or ``python benchmarks/bench_retrain_live.py --quick`` (10 steps; a few minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench" / "retrain-live"
TOKEN = "bench-retrain-live-token"
MODEL = "bench"
LABELS = ("negative", "positive")
_LIVE = ("queued", "running", "cancelling")


# -- data, model and cached records ----------------------------------------------------------
def _v1_dir() -> Path:
    """MiniLM with a fresh seeded 2-label head, saved once under the cache."""
    out = CACHE / "v1"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from collectors.encoding import minilm_path

    torch.manual_seed(0)
    src = minilm_path()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(src), num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={k: i for i, k in enumerate(LABELS)})
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(out))
    return out


def _datasets(train_rows: int) -> dict[str, Any]:
    from monitor.datasets import TextDataset, uci

    def named(ds: TextDataset) -> TextDataset:
        return TextDataset(ds.name, ds.texts, [LABELS[int(y)] for y in ds.labels])

    rng = np.random.default_rng(0)
    amazon = named(uci("amazon"))
    train, held = amazon.split(0.7, rng)
    traffic = named(uci("yelp"))
    imdb = named(uci("imdb"))
    pool = TextDataset("yelp+imdb", traffic.texts + imdb.texts, traffic.labels + imdb.labels)
    perm = rng.permutation(len(pool))
    return {"train": train.subset(list(range(min(train_rows, len(train))))),
            "reference": held.subset(list(range(300))), "traffic": pool.subset(perm)}


def _scored(name: str, ds: Any, v1: Path) -> dict[str, np.ndarray]:
    """v1's embeddings, probabilities and token stats of ``ds`` (cached)."""
    path = CACHE / f"{name}.npz"
    if path.is_file():
        return dict(np.load(path))
    from collectors.encoding import TextEncoder

    enc = TextEncoder.from_pretrained(str(v1), classifier=True, max_length=128, device="cpu", batch_size=64)
    batch = enc.encode(list(ds.texts))
    assert batch.probs is not None
    arrays = {"embeddings": batch.embeddings.astype(np.float32), "probs": batch.probs.astype(np.float32),
              "n_tokens": batch.stats.n_tokens, "n_unk": batch.stats.n_unk,
              "truncated": batch.stats.truncated, "n_chars": batch.stats.n_chars}
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy stubs: **kwds vs allow_pickle
    return arrays


def _record(ds: Any, arr: dict[str, np.ndarray], i: int, ts: datetime, *, label: bool) -> dict[str, Any]:
    probs = arr["probs"][i]
    rec: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "ts": ts.isoformat(), "model_name": MODEL, "model_version": "v1",
        "predicted_label": LABELS[int(np.argmax(probs))], "confidence": float(probs.max()),
        "probs": [float(p) for p in probs], "embedding": [float(x) for x in arr["embeddings"][i]],
        "n_tokens": int(arr["n_tokens"][i]), "n_unk": int(arr["n_unk"][i]),
        "truncated": bool(arr["truncated"][i]), "n_chars": int(arr["n_chars"][i]), "text": ds.texts[i],
        "source": ds.name}
    if label:
        rec["label"] = ds.labels[i]
    return rec


# -- the sidecar and the CLI -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp: Path, args: argparse.Namespace, policy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SHIFTWATCH_TOKEN=TOKEN, SHIFTWATCH_REPORTS_DIR=str(tmp / "reports"),
               SHIFTWATCH_REGISTRY_DIR=str(tmp / "models"), SHIFTWATCH_SPOOL_DIR=str(tmp / "spool"),
               SHIFTWATCH_EXPORT_DIR=str(tmp / "export"), SHIFTWATCH_DRIFT_INTERVAL_S=str(args.interval),
               SHIFTWATCH_WINDOW_SIZE=str(args.window), SHIFTWATCH_POLICY_FILE=str(policy),
               PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", DO_NOT_TRACK="1")
    env.pop("SHIFTWATCH_URL", None)
    return env


_CLI = "import sys; from monitor.cli import main; sys.argv[0] = 'shiftwatch'; main()"


CLI_FAILURES: list[str] = []  # failed `shiftwatch` calls that a retry then got through


def _sw(env: dict[str, str], *args: str, tries: int = 1) -> str:
    """Run one ``shiftwatch`` command (a subprocess, as an operator would).

    ``tries > 1``: a failed call is repeated after 5 s (each failure is kept in
    :data:`CLI_FAILURES` and reported): on a loaded machine the CLI's 2-second ``/healthz`` probe
    of the sidecar can time out, and the CLI then falls back to opening the locked file.
    """
    for attempt in range(tries):
        res = subprocess.run([sys.executable, "-c", _CLI, *args], env=env, capture_output=True, text=True,
                             timeout=600, check=False)
        if res.returncode == 0:
            return res.stdout
        msg = f"shiftwatch {' '.join(args[:3])} -> {res.returncode}: {res.stderr.strip()[:300]}"
        if attempt + 1 == tries:
            raise RuntimeError(msg)
        CLI_FAILURES.append(msg)
        print(f"  (retrying) {msg}", flush=True)
        time.sleep(5)
    raise AssertionError("unreachable")


def _bench_policy(out: Path, url: str) -> Path:
    """The shipped rules without the retrain and rollback actions; notify posts to ``url``."""
    import yaml

    from monitor.policy import default_policy_path

    doc = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    doc.setdefault("actions", {}).setdefault("notify", {})["url"] = url
    for rule in doc["rules"]:
        rule["actions"] = [a for a in rule["actions"] if a not in ("retrain", "rollback")] or ["notify"]
    out.write_text("# bench_retrain_live: shipped rules, retrain/rollback actions removed\n"
                   + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


@contextlib.contextmanager
def _sidecar(tmp: Path, db: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    import httpx

    port = _free_port()
    log = (tmp / "sidecar.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", _CLI, "serve", "--db", str(db), "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {proc.returncode}; see {tmp / 'sidecar.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("sidecar did not become healthy")
            time.sleep(0.5)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


# -- the load generator ----------------------------------------------------------------------
class LoadGenerator:
    """Posts ``batch`` records every ``batch / rate`` seconds (open loop); logs each POST."""

    def __init__(self, base: str, make: Any, *, rate: float, batch: int) -> None:
        self.base, self.make, self.batch = base, make, batch
        self.period = batch / rate
        self.posts: list[tuple[float, float, int, int]] = []  # (sent at, latency s, status, records)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=60.0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                body = {"records": [self.make() for _ in range(self.batch)]}
                t = time.monotonic()
                try:
                    status = client.post("/v1/predictions", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                self.posts.append((t, time.monotonic() - t, status, self.batch))
                next_at += self.period
                self._stop.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - self.period)  # no burst to catch up

    def stats(self, t0: float, t1: float) -> dict[str, float]:
        """Accepted records/s and POST latency of the posts sent in [t0, t1)."""
        rows = [p for p in self.posts if t0 <= p[0] < t1]
        ok = sum(n for _, _, s, n in rows if s == 202)
        lat = sorted(1000 * x for _, x, _, _ in rows)
        span = max(t1 - t0, 1e-9)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

        return {"posts": len(rows), "failed": sum(1 for p in rows if p[2] != 202), "records_per_s": ok / span,
                "p50_ms": pct(0.50), "p95_ms": pct(0.95), "max_ms": lat[-1] if lat else float("nan")}


# -- report ----------------------------------------------------------------------------------
def _find_phases(obj: Any) -> list[dict[str, Any]] | None:
    """The trainer's per-phase summaries somewhere inside a run's outcome."""
    if isinstance(obj, dict):
        phases = obj.get("phases")
        if isinstance(phases, list) and phases and isinstance(phases[0], dict) and "wall_s" in phases[0]:
            return phases
        for v in obj.values():
            found = _find_phases(v)
            if found:
                return found
    return None


def _uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").split(" ")[:3].__str__()
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="total step budget (default: the retrain's own)")
    ap.add_argument("--rate", type=float, default=10.0, help="ingest records per second")
    ap.add_argument("--batch", type=int, default=10, help="records per POST")
    ap.add_argument("--interval", type=float, default=30.0, help="drift-check interval, seconds")
    ap.add_argument("--window", type=int, default=300, help="rows per count window")
    ap.add_argument("--before", type=float, default=90.0,
                    help="seconds of ingest measured before the retrain")
    ap.add_argument("--train-rows", type=int, default=500, help="Amazon rows in v1's training file")
    ap.add_argument("--labelled", type=int, default=300, help="labelled production rows logged first")
    ap.add_argument("--poll", type=float, default=10.0, help="seconds between `retrain status` polls")
    ap.add_argument("--deadline", type=float, default=None,
                    help="cancel the retrain (`shiftwatch retrain cancel`) after this many seconds and "
                         "report the partial run")
    ap.add_argument("--json-out", type=Path, default=CACHE / "result.json", help="where the result goes")
    ap.add_argument("--quick", action="store_true",
                    help="a few minutes: 10 steps, 30 s before, drift check every 10 s")
    args = ap.parse_args()
    if args.quick:
        args.steps = args.steps or 10
        args.before, args.interval, args.poll = min(args.before, 30.0), min(args.interval, 10.0), 5.0

    from monitor.demo.receiver import WebhookReceiver
    from monitor.store import Store

    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"bench_retrain_live: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"loadavg {_uptime()} at start", flush=True)
    t_setup = time.perf_counter()
    v1 = _v1_dir()
    data = _datasets(args.train_rows)
    ref_arr = _scored("reference", data["reference"], v1)
    traffic_arr = _scored("traffic", data["traffic"], v1)
    print(f"setup (model, data, cached v1 scores): {time.perf_counter() - t_setup:.0f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-retrain-live-") as tmp_s, WebhookReceiver() as receiver:
        tmp = Path(tmp_s)
        db = tmp / "sw.duckdb"
        env = _env(tmp, args, _bench_policy(tmp / "policy.yaml", receiver.url))
        train_file = tmp / "train.jsonl"
        train_file.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in
                                        zip(data["train"].texts, data["train"].labels, strict=True)) + "\n",
                              encoding="utf-8")
        now = datetime.now(UTC)
        ref_file = tmp / "reference.jsonl"
        ref_file.write_text("\n".join(json.dumps(_record(data["reference"], ref_arr, i,
                                                         now - timedelta(hours=2, seconds=-i), label=True))
                                      for i in range(len(data["reference"]))) + "\n", encoding="utf-8")
        traffic = data["traffic"]
        labelled_file = tmp / "labelled.jsonl"
        labelled = [_record(traffic, traffic_arr, i, now - timedelta(hours=1, seconds=-i), label=True)
                    for i in range(args.labelled)]
        labelled_file.write_text("\n".join(json.dumps(r) for r in labelled) + "\n", encoding="utf-8")
        cursor = itertools.count(args.labelled)
        lock = threading.Lock()

        def make() -> dict[str, Any]:
            with lock:
                i = next(cursor) % len(traffic)
            return _record(traffic, traffic_arr, i, datetime.now(UTC), label=False)

        with _sidecar(tmp, db, env) as (_proc, base):
            D = ["--db", str(db)]
            print(_sw(env, "models", "register", str(v1), "--name", MODEL, "--train-file", str(train_file),
                      "--labels", ",".join(LABELS), "--max-length", "128", "--activate", *D).strip())
            print(_sw(env, "reference", "create", "--name", "v1-amazon", "--model", MODEL,
                      "--model-version", "v1", "--from", str(ref_file), *D).strip())
            print(_sw(env, "ingest", str(labelled_file), *D).strip(), flush=True)
            load = LoadGenerator(base, make, rate=args.rate, batch=args.batch).start()
            t_before = time.monotonic()
            time.sleep(args.before)
            retrain_args = ["retrain", "--model", MODEL, "--reason", "bench_retrain_live", "--json", *D]
            if args.steps is not None:
                retrain_args += ["--max-steps", str(args.steps)]
            dry = json.loads(_sw(env, *retrain_args, "--dry-run"))
            t_start = time.monotonic()
            started = json.loads(_sw(env, *retrain_args))
            run_id = str(started["run_id"])
            print(f"retrain {run_id} started; dry run said: {' / '.join(dry.get('reasons') or [])}",
                  flush=True)
            last_phase, cancelled = None, False
            seen: list[tuple[float, int, int]] = []  # (t, phase, step) at each poll
            while True:
                status = json.loads(_sw(env, "retrain", "status", run_id, "--json", *D, tries=6))
                now_s = time.monotonic() - t_start
                seen.append((now_s, int(status.get("phase") or 0), int(status.get("step") or 0)))
                if status.get("phase") != last_phase and status.get("total_steps"):
                    last_phase = status.get("phase")
                    print(f"  t={now_s:6.0f} s  phase {int(last_phase or 0) + 1}/{status.get('phases')}  "
                          f"step {status.get('step')}/{status.get('total_steps')}  "
                          f"eta {status.get('eta_s') or float('nan'):.0f} s", flush=True)
                if status.get("state") not in _LIVE:
                    break
                if args.deadline is not None and now_s > args.deadline and not cancelled:
                    print(f"  t={now_s:6.0f} s  deadline: cancelling at step {status.get('step')}",
                          flush=True)
                    _sw(env, "retrain", "cancel", run_id, *D, tries=6)
                    cancelled = True
                time.sleep(args.poll)
            t_end = time.monotonic()
            load.stop()
            n_messages = len(receiver.messages())

        with Store(db, read_only=True) as store:
            run = store.fetch_dicts("retrain_jobs_run", {"run_id": run_id})[0]
            checks = store.fetchall_sql(
                "SELECT started_at, duration_s, status FROM job_runs WHERE job = $job ORDER BY started_at",
                {"job": f"drift_check:{MODEL}"})
    wall = t_end - t_start
    steps = int(status.get("step") or 0)
    train_phases = _find_phases(status.get("outcome")) or []
    before = load.stats(t_before, t_start)
    during = load.stats(t_start, t_end)
    during_checks = [c for c in checks if run["started_at"] <= c[0] <= run["finished_at"]]
    edges = [run["started_at"], *[c[0] for c in during_checks], run["finished_at"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(edges)]
    train_wall = sum(float(p["wall_s"]) for p in train_phases)
    result = {
        "date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "loadavg_end": _uptime(),
        "args": {k: str(v) for k, v in vars(args).items()}, "run_id": run_id, "state": status.get("state"),
        "wall_s": wall, "steps": steps, "total_steps": status.get("total_steps"),
        "s_per_step": wall / steps if steps else None,
        "train_wall_s": train_wall, "train_s_per_step": train_wall / steps if steps and train_wall else None,
        "phases": [{"phase": p.get("phase"), "steps": p.get("steps"), "wall_s": p.get("wall_s"),
                    "n_trainable": p.get("n_trainable"), "stopped_early": p.get("stopped_early")}
                   for p in train_phases],
        "drift_checks_during": len(during_checks),
        "drift_check_status": sorted({c[2] for c in during_checks}),
        "drift_check_gap_s": {"mean": statistics.mean(gaps) if gaps else None,
                              "max": max(gaps, default=None)},
        "drift_check_duration_s": {"mean": statistics.mean([c[1] or 0 for c in during_checks])
                                   if during_checks else None},
        "ingest_before": before, "ingest_during": during,
        "throughput_ratio": (during["records_per_s"] / before["records_per_s"]
                             if before["records_per_s"] else None),
        "p50_latency_ratio": during["p50_ms"] / before["p50_ms"] if before["p50_ms"] else None,
        "polls": seen, "cli_failures": CLI_FAILURES,
        "notifications": n_messages, "reasons": (status.get("outcome") or {}).get("reasons"),
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")

    print()
    print(f"retrain {run_id}: {result['state']}, {steps}/{result['total_steps']} steps, "
          f"wall {wall:.0f} s ({wall / 60:.1f} min), {wall / max(steps, 1):.2f} s/step end to end")
    if train_phases:
        print(f"  training (trainer-measured, evaluations included): {train_wall:.0f} s, "
              f"{train_wall / max(steps, 1):.2f} s/step; the rest ({wall - train_wall:.0f} s) is the worker "
              "start, data assembly, the guard's evaluation and the reference build")
        for p in train_phases:
            print(f"  phase {int(p['phase']) + 1}: {p['steps']:4d} steps {float(p['wall_s']):7.0f} s "
                  f"({float(p['wall_s']) / max(int(p['steps']), 1):.2f} s/step), "
                  f"{p['n_trainable']} trainable tensors"
                  f"{' (stopped early)' if p.get('stopped_early') else ''}")
    g = result["drift_check_gap_s"]
    print(f"drift checks during the retrain (job_runs, interval {args.interval:.0f} s): "
          f"{len(during_checks)}, "
          f"status {result['drift_check_status']}, gap mean {g['mean'] or float('nan'):.1f} s, "
          f"max {g['max'] or float('nan'):.1f} s")
    for name, s in (("before", before), ("during", during)):
        print(f"ingest {name:6}: {s['records_per_s']:.2f} records/s accepted (target {args.rate:.0f}), "
              f"{int(s['posts'])} POSTs, {int(s['failed'])} failed, p50 {s['p50_ms']:.0f} ms, "
              f"p95 {s['p95_ms']:.0f} ms, max {s['max_ms']:.0f} ms")
    print(f"throughput during/before: {result['throughput_ratio'] or float('nan'):.3f}; "
          f"p50 latency during/before: {result['p50_latency_ratio'] or float('nan'):.2f}")
    print(f"decision reasons: {result['reasons']}")
    if CLI_FAILURES:
        print(f"{len(CLI_FAILURES)} CLI call(s) failed and were retried, e.g. {CLI_FAILURES[0]}")
    print(f"loadavg at end {result['loadavg_end']}; result: {args.json_out}")
    return 0 if result["state"] not in ("failed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
