"""A real FastAPI serving app for a sentiment classifier, instrumented for shiftwatch.

It serves the model version named by the registry's ``ACTIVE`` pointer and reloads when the
pointer changes (a promotion or rollback by the sidecar): the new version is loaded fully in
the background and then swapped in with one reference assignment, so requests in flight finish
on the old model and none is dropped or fails. Every prediction is logged through
``collectors.Collector`` with an ``HttpSink`` to the sidecar on localhost (the collector's
``log`` only enqueues; it never blocks or raises into the request path). The serving process
never opens the DuckDB file: the sidecar owns it.

Run (see examples/README.md)::

    SHIFTWATCH_TOKEN=dev MODEL_NAME=sentiment .venv/bin/uvicorn examples.serving_app:app --port 8000
    curl -s localhost:8000/predict -H 'content-type: application/json' \\
         -d '{"texts": ["great phone, battery lasts for days", "it broke after a week"]}'

Environment: ``MODEL_NAME`` (default ``sentiment``), ``SHIFTWATCH_REGISTRY_DIR`` (default
``shiftwatch-models``), ``SHIFTWATCH_URL`` (default ``http://127.0.0.1:8686``),
``SHIFTWATCH_TOKEN`` (or ``SHIFTWATCH_TOKEN_FILE``), ``COLLECTOR_SPOOL_DIR``, ``LOG_TEXT=1`` to
send raw text (off by default: only its SHA-256 is sent), ``POINTER_POLL_S``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from collectors.secrets import resolve_token

log = logging.getLogger("serving_app")

MODEL_NAME = os.environ.get("MODEL_NAME", "sentiment")
REGISTRY_DIR = Path(os.environ.get("SHIFTWATCH_REGISTRY_DIR", "shiftwatch-models"))
SIDECAR_URL = os.environ.get("SHIFTWATCH_URL", "http://127.0.0.1:8686")
TOKEN = resolve_token()  # SHIFTWATCH_TOKEN or SHIFTWATCH_TOKEN_FILE (trimmed)
LOG_TEXT = os.environ.get("LOG_TEXT", "0") == "1"
POLL_S = float(os.environ.get("POINTER_POLL_S", "2"))


@dataclass(frozen=True)
class Loaded:
    """One loaded model version: encoder (tokenizer + classifier) and its label names."""

    version: str
    encoder: Any
    labels: tuple[str, ...]


def load_version(version: str) -> Loaded:
    """Load a registered version from its artifact directory with its own preprocessing."""
    from collectors.encoding import TextEncoder
    from monitor.registry import read_version

    files = read_version(REGISTRY_DIR, MODEL_NAME, version)
    pre = files.preprocessing
    encoder = TextEncoder.from_pretrained(files.directory, classifier=True, pooling=pre.pooling,
                                          max_length=pre.max_length, truncation_side=pre.truncation_side)
    return Loaded(version, encoder, tuple(pre.labels))


class Server:
    """Holds the current model; swaps it atomically when the ACTIVE pointer changes."""

    def __init__(self) -> None:
        self.current: Loaded | None = None
        self._swap = threading.Lock()
        self.watcher: Any = None
        self.collector: Any = None

    def on_pointer_change(self, version: str) -> None:
        loaded = load_version(version)  # slow part, outside any lock; requests keep flowing
        with self._swap:
            previous, self.current = self.current, loaded
        log.info("serving %s %s (was %s)", MODEL_NAME, version, previous.version if previous else None)

    def start(self) -> None:
        from collectors.collector import Collector
        from collectors.sinks import HttpSink
        from monitor.registry import PointerWatcher

        spool = os.environ.get("COLLECTOR_SPOOL_DIR", "shiftwatch-collector-spool")
        self.collector = Collector(HttpSink(SIDECAR_URL, token=TOKEN, spool_dir=spool), model_name=MODEL_NAME,
                                   heartbeat_interval_s=15.0)
        self.watcher = PointerWatcher(REGISTRY_DIR, MODEL_NAME, self.on_pointer_change, interval_s=POLL_S)
        self.watcher.poll()  # load the active version before serving
        if self.current is None:
            raise RuntimeError(f"no ACTIVE version of {MODEL_NAME!r} under {REGISTRY_DIR}; "
                               "register one with `shiftwatch models register --activate`")
        self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.collector is not None:
            self.collector.close()  # flushes what is queued (or spools it)


server = Server()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    server.start()
    try:
        yield
    finally:
        server.stop()


app = FastAPI(title="sentiment classifier (shiftwatch example)", lifespan=lifespan)


class PredictRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256)
    source: str | None = None


class Prediction(BaseModel):
    label: str
    confidence: float
    model_version: str


@app.post("/predict")
def predict(req: PredictRequest) -> list[Prediction]:
    """Classify texts; log one shiftwatch record per text."""
    model = server.current  # one read: this request uses one version from start to end
    if model is None:
        raise HTTPException(503, "no model loaded")
    t0 = time.perf_counter()
    try:
        enc = model.encoder.encode(req.texts)
    except Exception as exc:
        server.collector.log_error(MODEL_NAME, model.version, "model", f"{type(exc).__name__}: {exc}")
        raise HTTPException(500, "inference failed") from exc
    latency_ms = (time.perf_counter() - t0) * 1000.0 / len(req.texts)
    now = datetime.now(UTC).isoformat()
    out: list[Prediction] = []
    for i, text in enumerate(req.texts):
        probs = enc.probs[i]
        k = int(probs.argmax())
        label = model.labels[k] if k < len(model.labels) else str(k)
        record: dict[str, Any] = {
            "event_id": str(uuid.uuid4()), "ts": now, "model_name": MODEL_NAME,
            "model_version": model.version, "predicted_label": label,
            "confidence": float(probs[k]), "probs": [float(p) for p in probs],
            "embedding": [float(x) for x in enc.embeddings[i]],
            "n_tokens": int(enc.stats.n_tokens[i]), "n_unk": int(enc.stats.n_unk[i]),
            "truncated": bool(enc.stats.truncated[i]), "n_chars": int(enc.stats.n_chars[i]),
            "latency_ms": latency_ms, "source": req.source,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
        if LOG_TEXT:
            record["text"] = text
        server.collector.log(record)  # enqueue only: never blocks, never raises
        out.append(Prediction(label=label, confidence=float(probs[k]), model_version=model.version))
    return out


@app.get("/healthz")
def healthz() -> dict[str, Any]:
    """Ready once a model version is loaded."""
    if server.current is None:
        raise HTTPException(503, "no model loaded")
    return {"status": "ok", "model": MODEL_NAME, "version": server.current.version}
