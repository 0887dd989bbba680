"""Prediction-record factories shared by the foundation tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(i: int, *, model: str = "m", version: str = "v1", dim: int | None = 4,
           minutes: float | None = None, **over: Any) -> dict[str, Any]:
    """A valid record number ``i`` (deterministic event_id and ts)."""
    rng = np.random.default_rng(i)
    rec: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=i + 1)),
        "ts": (T0 + timedelta(minutes=i if minutes is None else minutes)).isoformat(),
        "model_name": model, "model_version": version,
        "predicted_label": "pos" if i % 2 else "neg", "confidence": 0.5 + (i % 5) / 10,
        "probs": [0.3, 0.7], "n_tokens": 10 + i % 7, "n_unk": i % 2, "truncated": False,
        "n_chars": 40, "latency_ms": 1.5, "source": "web",
    }
    if dim:
        rec["embedding"] = rng.standard_normal(dim).round(4).tolist()
    rec.update(over)
    return rec
