"""Shared helpers of the server tests: records, settings, a real uvicorn server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from monitor.settings import Settings
from tests.conftest import make_tiny_bert
from tests.retrain.helpers import sentences

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(i: int, *, prefix: str = "e", model: str = "m", version: str = "v1", dim: int | None = 4,
           **extra: Any) -> dict[str, Any]:
    """A valid prediction record numbered ``i`` (deterministic values)."""
    rec: dict[str, Any] = {
        "event_id": f"{prefix}-{i:08d}",
        "ts": (T0 + timedelta(seconds=i)).isoformat(),
        "model_name": model,
        "model_version": version,
        "predicted_label": "pos" if i % 3 else "neg",
        "confidence": 0.5 + (i % 50) / 100.0,
        "probs": [0.5 - (i % 50) / 100.0, 0.5 + (i % 50) / 100.0],
        "latency_ms": float(1 + i % 100),
        "n_tokens": 10 + i % 7,
        "n_unk": i % 2,
        "truncated": False,
        "n_chars": 40 + i % 11,
    }
    if dim:
        rec["embedding"] = [float((i * 7 + k) % 13) / 13.0 for k in range(dim)]
    rec.update(extra)
    return rec


def write_world(tmp: Path, *, n_train: int, n_prod: int) -> dict[str, Path]:
    """Files of a small operator session: ``model`` (a tiny BERT directory), ``train`` (its
    original training data, JSONL of text,label) and ``records`` (``n_prod`` prediction records
    of model ``m`` with text, from ``sentences(n_prod, seed=2, domain="food")``)."""
    model_dir = make_tiny_bert(tmp / "tiny")
    orig = sentences(n_train, seed=1)
    train = tmp / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": t, "label": y})
                               for t, y in zip(orig.texts, orig.labels, strict=True)), encoding="utf-8")
    prod = sentences(n_prod, seed=2, domain="food")
    records = tmp / "records.jsonl"
    records.write_text("\n".join(json.dumps(record(i, model="m", text=prod.texts[i],
                                                   predicted_label=prod.labels[i]))
                                 for i in range(n_prod)), encoding="utf-8")
    return {"model": model_dir, "train": train, "records": records}


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM a child process (a graceful shutdown) and wait; kill it past ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def settings_for(tmp: Path, **overrides: Any) -> Settings:
    """Settings rooted in ``tmp`` (DB, reports, registry), with the test token."""
    values: dict[str, Any] = {
        "db_path": tmp / "sidecar.duckdb", "reports_dir": tmp / "reports", "registry_dir": tmp / "models",
        "export_dir": tmp / "export", "spool_dir": tmp / "spool", "token": TOKEN,
    }
    values.update(overrides)
    return Settings(**values)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``/healthz`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{base} did not become healthy")


class ThreadServer:
    """A real uvicorn server on 127.0.0.1 in a thread of this process.

    ``settings``: serve with ``shiftwatch serve``'s own uvicorn configuration
    (:func:`monitor.httpserver.uvicorn_config`: header and keep-alive timeouts, limits) on
    ``settings.port``; without them, a plain configuration on a free port.
    """

    def __init__(self, app: Any, settings: Settings | None = None) -> None:
        import uvicorn

        from monitor.httpserver import uvicorn_config

        if settings is None:
            self.port = free_port()
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                    lifespan="on")
        else:
            self.port = settings.port
            config = uvicorn_config(app, settings, log_level="warning")
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_healthy(self.base)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def sidecar_cmd(db: Path, port: int, tmp: Path, *, scheduler: bool = False) -> list[str]:
    """``shiftwatch serve`` as a subprocess command line (API only unless ``scheduler``)."""
    code = "import sys; from monitor.cli import main; sys.argv[0] = 'shiftwatch'; main()"
    return [sys.executable, "-c", code, "serve", "--db", str(db), "--port", str(port),
            *(() if scheduler else ("--no-scheduler",)), "--log-level", "warning"]


def sidecar_env(tmp: Path) -> dict[str, str]:
    """Environment of a subprocess sidecar rooted in ``tmp``."""
    env = dict(os.environ)
    env.update(SHIFTWATCH_TOKEN=TOKEN, SHIFTWATCH_REPORTS_DIR=str(tmp / "reports"),
               SHIFTWATCH_REGISTRY_DIR=str(tmp / "models"), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    return env


@contextlib.contextmanager
def subprocess_sidecar(
    db: Path, tmp: Path, port: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``shiftwatch serve`` in a child process; terminate it on exit."""
    port = port or free_port()
    proc = subprocess.Popen(sidecar_cmd(db, port, tmp), env=sidecar_env(tmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc=proc)
        yield proc, base
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()
