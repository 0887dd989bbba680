"""Fixtures of the ops tests: a seeded store, a real local webhook receiver."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LABELS = ("negative", "positive")


def make_records(n: int, *, seed: int, start: datetime, shift: float = 0.0, conf_a: float = 8.0,
                 conf_b: float = 2.0, p_positive: float = 0.5, dim: int = 16, model: str = "sentiment",
                 version: str = "v1", labelled: float = 0.0) -> list[dict[str, Any]]:
    """Synthetic prediction records: Gaussian embeddings (mean ``shift`` on the first 4 dims),
    Beta(conf_a, conf_b) confidences folded into [0.5, 1], Bernoulli(p_positive) labels."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(0.0, 1.0, (n, dim)).astype(np.float32)
    emb[:, :4] += shift
    conf = 0.5 + 0.5 * rng.beta(conf_a, conf_b, n)
    pos = rng.random(n) < p_positive
    out = []
    for i in range(n):
        c = float(conf[i])
        label = LABELS[int(pos[i])]
        probs = [1 - c, c] if pos[i] else [c, 1 - c]
        rec: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) * 2**32 + i)),
            "ts": start + timedelta(seconds=i), "model_name": model, "model_version": version,
            "predicted_label": label, "confidence": c, "probs": probs,
            "embedding": emb[i].tolist(), "n_tokens": int(rng.integers(8, 40)), "n_unk": 0,
            "truncated": False, "n_chars": int(rng.integers(30, 200)),
            "latency_ms": float(rng.gamma(4.0, 5.0)), "text": f"synthetic text {seed}-{i}",
        }
        if labelled and rng.random() < labelled:
            rec["label"] = label if rng.random() < 0.9 else LABELS[1 - int(pos[i])]
        out.append(rec)
    return out


def seed_reference(store: Store, *, n: int = 300, version: str = "v1", name: str | None = None) -> str:
    """A reference set for ``sentiment`` ``version`` from unshifted records."""
    from collectors.schema import records_to_table
    from monitor.persist.references import create_reference

    name = name or f"ref-{version}"
    table, _ = records_to_table(make_records(n, seed=1, start=T0 - timedelta(days=2), version=version))
    create_reference(store, name, table, model_name="sentiment", model_version=version, origin="test")
    return name


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1; answers with ``codes`` in turn (then 200)."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                state.requests.append({"path": self.path, "json": json.loads(body),
                                       "content_type": self.headers.get("content-type"),
                                       "headers": dict(self.headers.items())})
                code = state.codes.pop(0) if state.codes else 200
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "ops.duckdb") as s:
        yield s
