"""Synthetic prediction records for report tests and the report benchmark (seeded)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from collectors.schema import ARROW_SCHEMA

MODEL = "support-sentiment"
LABELS = ("positive", "negative", "neutral")
_BASE_TEXT = ("the battery lasts all day great phone screen is bright and sharp love it works fine "
              "good value shipping was quick okay product not bad decent sound quality")
BASE_WORDS = tuple(_BASE_TEXT.split())
NEW_WORDS = ("refund", "crypto", "wallet", "scam", "blockchain", "zxqvortex")


def records(
    n: int,
    *,
    start: datetime,
    version: str = "v1",
    shift: float = 0.0,
    text: bool = True,
    dim: int = 16,
    seed: int = 0,
    model: str = MODEL,
) -> pa.Table:
    """``n`` records one second apart from ``start``; ``shift`` in [0, 1] moves embeddings,
    lowers confidence, tilts labels and brings in new words."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb[:, 0] += 3.0 * shift
    p_label = np.array([0.5, 0.3, 0.2]) * (1 - shift) + np.array([0.2, 0.6, 0.2]) * shift
    labels = rng.choice(len(LABELS), size=n, p=p_label / p_label.sum())
    conf = np.clip(rng.beta(8 - 5 * shift, 1.5, n), 0.34, 0.999)
    probs = np.empty((n, 3), dtype=np.float32)
    for i in range(n):
        rest = (1 - conf[i]) * rng.dirichlet([1, 1])
        row = np.insert(rest, labels[i], conf[i])
        probs[i] = row
    texts: list[str] = []
    for _ in range(n):
        k = int(rng.integers(5, 14))
        words = list(rng.choice(BASE_WORDS, size=k))
        if shift > 0 and rng.random() < shift:
            words += list(rng.choice(NEW_WORDS, size=int(rng.integers(1, 3))))
        texts.append(" ".join(words))
    n_tokens = np.array([len(t.split()) + 2 for t in texts], dtype=np.int32)
    n_unk = np.array([sum(w in NEW_WORDS for w in t.split()) for t in texts], dtype=np.int32)
    rows: dict[str, Any] = {
        "event_id": [uuid.UUID(int=int(rng.integers(0, 2**62)) * 2**64 + i).hex for i in range(n)],
        "ts": [start + timedelta(seconds=i) for i in range(n)],
        "model_name": [model] * n,
        "model_version": [version] * n,
        "predicted_label": [LABELS[j] for j in labels],
        "confidence": conf.astype(np.float64),
        "probs": list(probs),
        "embedding": list(emb),
        "n_tokens": n_tokens,
        "n_unk": n_unk,
        "truncated": n_tokens > 14,
        "n_chars": np.array([len(t) for t in texts], dtype=np.int32),
        "latency_ms": rng.gamma(4.0, 3.0, n),
        "text": texts if text else [None] * n,
        "text_sha256": [hashlib.sha256(t.encode()).hexdigest() for t in texts],
        "source": ["web"] * n,
        "label": [None] * n,
    }
    return pa.table({f.name: pa.array(rows[f.name], type=f.type) for f in ARROW_SCHEMA},
                    schema=ARROW_SCHEMA)


T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
