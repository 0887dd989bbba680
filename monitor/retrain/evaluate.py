"""Scoring models on labelled rows, the former fixed-δ guard, and a promoted version's reference set.

The promotion decision itself is a paired test: :func:`monitor.retrain.guard.judge`.
:func:`predict` and :func:`score` run a :class:`~collectors.encoding.TextEncoder`
over labelled examples (per-row class ids and confidence; macro-F1 / accuracy).

:func:`decide` is the *former* guard, kept for comparison (``benchmarks/bench_promotion.py``):
promote when production macro-F1 improves by at least ``min_improvement`` (δ)
and the original domain drops by no more than ``max_forgetting`` (ε) — two
point estimates, no test.

After a promotion, :func:`build_reference` scores recent production texts
(and validation texts when production is scarce) with the new version and
stores them as the version's drift reference set through
``monitor.persist.references.create_reference``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.drift.performance import macro_f1
from monitor.errors import RetrainError
from monitor.retrain.guard import Guard
from monitor.retrain.metrics import accuracy
from monitor.retrain.trainer import Examples

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from collectors.encoding import TextEncoder
    from monitor.store import Store

__all__ = ["Decision", "Guard", "Predicted", "Scores", "build_reference", "decide", "predict",
           "prediction_records", "score"]


@dataclass(frozen=True, slots=True)
class Scores:
    """Macro-F1 and accuracy of one model on one labelled set."""

    macro_f1: float
    accuracy: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return {"macro_f1": self.macro_f1, "accuracy": self.accuracy, "n": self.n}


@dataclass(frozen=True, slots=True)
class Decision:
    """Promote or not, and why."""

    promote: bool
    reasons: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)


def decide(candidate: Mapping[str, float], active: Mapping[str, float] | None, guard: Guard) -> Decision:
    """Apply the promotion guard to macro-F1 values keyed ``production`` and ``original``.

    Without an active version there is nothing to beat: the candidate is
    promoted (the reason says so).
    """
    metrics: dict[str, Any] = {"candidate": dict(candidate), "active": dict(active) if active else None,
                               "min_improvement": guard.min_improvement,
                               "max_forgetting": guard.max_forgetting}
    if active is None:
        return Decision(True, ("no active version to compare with",), metrics)
    gain = candidate["production"] - active["production"]
    drop = active["original"] - candidate["original"]
    metrics.update(production_gain=gain, original_drop=drop)
    reasons: list[str] = []
    ok_gain = gain >= guard.min_improvement - 1e-12
    ok_drop = drop <= guard.max_forgetting + 1e-12
    reasons.append(
        f"production macro-F1 {active['production']:.4f} -> {candidate['production']:.4f} "
        f"({gain:+.4f}; needs >= {guard.min_improvement:+.4f})" + ("" if ok_gain else ": not enough"))
    reasons.append(
        f"original macro-F1 {active['original']:.4f} -> {candidate['original']:.4f} "
        f"(drop {drop:.4f}; allowed <= {guard.max_forgetting:.4f})" + ("" if ok_drop else ": forgetting"))
    return Decision(ok_gain and ok_drop, tuple(reasons), metrics)


@dataclass(frozen=True, slots=True)
class Predicted:
    """One model on labelled examples: true and predicted class ids (label order) and max probability."""

    y_true: np.ndarray
    pred: np.ndarray
    confidence: np.ndarray
    n_classes: int

    def scores(self) -> Scores:
        """Macro-F1 / accuracy of these predictions."""
        return Scores(macro_f1(self.y_true, self.pred, self.n_classes), accuracy(self.y_true, self.pred),
                      int(self.y_true.size))


def predict(encoder: TextEncoder, examples: Examples, labels: Sequence[str]) -> Predicted:
    """Run ``encoder`` over ``examples``; a label outside ``labels`` gets class id -1."""
    if len(examples) == 0:
        raise RetrainError("cannot score on an empty set")
    probs = encoder.encode(list(examples.texts)).probs
    if probs is None:
        raise RetrainError("the encoder is not a classifier (no probabilities)")
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index.get(lab, -1) for lab in examples.labels], dtype=np.int64)
    p = np.asarray(probs)
    return Predicted(y, p.argmax(axis=1).astype(np.int64), p.max(axis=1).astype(np.float64), len(labels))


def score(encoder: TextEncoder, examples: Examples, labels: Sequence[str]) -> Scores:
    """Macro-F1 / accuracy of ``encoder``'s argmax predictions; class order is ``labels``."""
    return predict(encoder, examples, labels).scores()


def prediction_records(encoder: TextEncoder, texts: Sequence[str], *, labels: Sequence[str],
                       model_name: str, model_version: str, source: str | None = None,
                       true_labels: Sequence[str | None] | None = None, keep_text: bool = False) -> pa.Table:
    """Prediction records (DESIGN §3) of ``texts`` scored by ``encoder``.

    The text itself is kept only with ``keep_text`` (privacy: off by default; its hash always is).
    """
    from collectors.schema import records_to_table

    batch = encoder.encode(list(texts))
    if batch.probs is None:
        raise RetrainError("the encoder is not a classifier (no probabilities)")
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        p = batch.probs[i]
        k = int(p.argmax())
        records.append({
            "event_id": uuid.uuid4().hex, "ts": now, "model_name": model_name,
            "model_version": model_version, "predicted_label": labels[k], "confidence": float(p[k]),
            "probs": [float(x) for x in p], "embedding": [float(x) for x in batch.embeddings[i]],
            "n_tokens": int(batch.stats.n_tokens[i]), "n_unk": int(batch.stats.n_unk[i]),
            "truncated": bool(batch.stats.truncated[i]), "n_chars": int(batch.stats.n_chars[i]),
            "latency_ms": float(batch.latency_ms[i]),
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "text": text if keep_text else None, "source": source,
            "label": true_labels[i] if true_labels is not None else None,
        })
    table, _ = records_to_table(records)
    return table


def build_reference(store: Store, encoder: TextEncoder, *, model_name: str, model_version: str,
                    labels: Sequence[str], texts: Sequence[str], origin: str,
                    true_labels: Sequence[str | None] | None = None,
                    keep_text: bool = False) -> tuple[str, int]:
    """Score ``texts`` with the new version and store them as its reference set: (name, rows).

    ``true_labels`` (``None`` entries for unlabelled rows) give the performance signal its
    baseline; ``keep_text`` stores the texts too (privacy: off by default).
    """
    from monitor.persist.references import create_reference

    if not texts:
        raise RetrainError(f"{model_name} {model_version}: no texts to build a reference set from")
    table = prediction_records(encoder, texts, labels=labels, model_name=model_name,
                               model_version=model_version, source="reference",
                               true_labels=true_labels, keep_text=keep_text)
    name = f"{model_name}-{model_version}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    n = create_reference(store, name, table, model_name=model_name, model_version=model_version,
                         origin=origin)
    return name, int(n)
