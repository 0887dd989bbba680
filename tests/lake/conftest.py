"""Lake fixtures: seeded prediction-record tables written into a temporary lake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from collectors.schema import ARROW_SCHEMA


def record_table(n: int, rng: np.random.Generator, *, start: datetime, d: int = 16,
                 shift: float = 0.0, prior: tuple[float, ...] = (0.6, 0.4),
                 model: str = "m", version: str = "1", sources: tuple[str, ...] = ("web",),
                 minutes: float = 59.0, latency_scale: float = 1.0) -> pa.Table:
    """``n`` valid records of one model version spread over ``minutes`` from ``start``;
    latency grows with the token count (times ``latency_scale``), with no extra draws."""
    classes = np.array(["neg", "pos", "neu"][: len(prior)], dtype=object)
    pred = rng.choice(classes, size=n, p=np.asarray(prior) / sum(prior))
    emb = rng.normal(size=(n, d)).astype(np.float32) + 1.0
    emb[:, 0] += shift
    emb[:, 1] += np.where(pred == classes[0], 0.5, -0.5)  # classes sit apart in the space
    conf = np.round(rng.beta(6, 1.5, size=n), 2)
    probs = np.stack([conf, 1 - conf], axis=1).astype(np.float32)
    n_tok = rng.poisson(18, size=n) + 2
    ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, minutes * 60, n))]
    cols = {
        "event_id": [uuid.UUID(int=int(rng.integers(2**63)) << 64 | i).hex for i in range(n)],
        "ts": ts, "model_name": [model] * n, "model_version": [version] * n,
        "predicted_label": pred.tolist(), "confidence": conf.tolist(),
        "probs": probs.tolist(), "embedding": emb.tolist(), "n_tokens": n_tok.tolist(),
        "n_unk": rng.binomial(n_tok, 0.005).tolist(), "truncated": (n_tok > 26).tolist(),
        "n_chars": (n_tok * 4).tolist(),
        "latency_ms": (latency_scale * (3.0 + 1.5 * n_tok + 10 * conf)).tolist(), "text": [None] * n,
        "text_sha256": [None] * n, "source": rng.choice(list(sources), size=n).tolist(),
        "label": [None] * n,
    }
    return pa.Table.from_pydict(cols, schema=ARROW_SCHEMA)


T0 = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
