"""Instrumentation for Hugging Face sequence classifiers.

:class:`InstrumentedClassifier` wraps a ``(model, tokenizer)`` pair — or a
``transformers`` ``text-classification`` pipeline via :meth:`from_pipeline` —
and for every text returns a :class:`Prediction` (label from the model's
``id2label``, confidence, full probabilities, pooled embedding, tokenizer
stats, latency) and logs the matching prediction record to a
:class:`~collectors.collector.Collector`. The forward pass, pooling and
tokenizer statistics are :class:`collectors.encoding.TextEncoder`'s, so
embeddings here match the ones the sidecar and the drift checks compute.

Raw text is logged only with ``log_text=True``; its SHA-256 always is. A
failing forward pass is reported with :meth:`Collector.log_error` and
re-raised (it is the model's failure, not the collector's).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from collectors.collector import Collector
from collectors.encoding import Pooling, TextEncoder

__all__ = ["InstrumentedClassifier", "Prediction"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's answer for one text, plus what was logged about it."""

    event_id: str
    label: str
    confidence: float
    probs: np.ndarray  # float32 (k,), in id2label order
    embedding: np.ndarray  # float32 (d,)
    n_tokens: int
    n_unk: int
    truncated: bool
    n_chars: int
    latency_ms: float


class InstrumentedClassifier:
    """A sequence classifier whose every prediction is logged to a collector."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        collector: Collector,
        *,
        model_name: str,
        model_version: str,
        pooling: Pooling = "mean",
        max_length: int = 128,
        log_text: bool = False,
        source: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        if not type(model).__name__.endswith("ForSequenceClassification"):
            raise TypeError(f"expected a ...ForSequenceClassification model, got {type(model).__name__}")
        self.encoder = TextEncoder(model, tokenizer, pooling=pooling, max_length=max_length,
                                   batch_size=batch_size, device=device)
        self.collector = collector
        self.model_name = model_name
        self.model_version = model_version
        self.log_text = log_text
        self.source = source
        id2label = getattr(model.config, "id2label", None) or {}
        n = int(getattr(model.config, "num_labels", len(id2label)))
        self.labels: list[str] = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]

    @classmethod
    def from_pipeline(cls, pipeline: Any, collector: Collector, **kwargs: Any) -> InstrumentedClassifier:
        """Wrap a ``transformers.pipeline("text-classification", ...)`` (its model and tokenizer)."""
        task = getattr(pipeline, "task", "text-classification")
        if task not in ("text-classification", "sentiment-analysis"):
            raise TypeError(f"expected a text-classification pipeline, got task {task!r}")
        device = kwargs.pop("device", None) or str(getattr(pipeline, "device", "cpu"))
        return cls(pipeline.model, pipeline.tokenizer, collector, device=device, **kwargs)

    def predict(
        self,
        texts: Sequence[str],
        *,
        labels: Sequence[str | None] | None = None,
        ts: datetime | None = None,
        event_ids: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """Classify ``texts`` and log one record per text; ``labels`` are known ground truth.

        ``event_ids`` are the records' ids (e.g. the serving stack's request ids, so delayed
        labels can be joined by them later); default a new uuid4 each."""
        texts = list(texts)
        if labels is not None and len(labels) != len(texts):
            raise ValueError(f"{len(labels)} labels for {len(texts)} texts")
        if event_ids is not None and len(event_ids) != len(texts):
            raise ValueError(f"{len(event_ids)} event ids for {len(texts)} texts")
        try:
            enc = self.encoder.encode(texts)
        except Exception as exc:
            kind = "tokenizer" if _from_tokenizer(exc) else "model"
            self.collector.log_error(self.model_name, self.model_version, kind,
                                     f"{type(exc).__name__}: {exc}", source=self.source)
            raise
        assert enc.probs is not None  # a ...ForSequenceClassification always yields them
        when = (ts or datetime.now(UTC)).astimezone(UTC)
        out: list[Prediction] = []
        top = enc.probs.argmax(axis=1)
        for i, text in enumerate(texts):
            k = int(top[i])
            pred = Prediction(
                event_id=str(event_ids[i]) if event_ids is not None else str(uuid.uuid4()),
                label=self.labels[k], confidence=float(enc.probs[i, k]),
                probs=enc.probs[i], embedding=enc.embeddings[i],
                n_tokens=int(enc.stats.n_tokens[i]), n_unk=int(enc.stats.n_unk[i]),
                truncated=bool(enc.stats.truncated[i]), n_chars=int(enc.stats.n_chars[i]),
                latency_ms=float(enc.latency_ms[i]),
            )
            out.append(pred)
            self.collector.log({
                "event_id": pred.event_id, "ts": when, "model_name": self.model_name,
                "model_version": self.model_version, "predicted_label": pred.label,
                "confidence": min(max(pred.confidence, 0.0), 1.0), "probs": pred.probs,
                "embedding": pred.embedding, "n_tokens": pred.n_tokens, "n_unk": pred.n_unk,
                "truncated": pred.truncated, "n_chars": pred.n_chars, "latency_ms": pred.latency_ms,
                "text": text if self.log_text else None,
                "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "source": self.source, "label": labels[i] if labels is not None else None,
            })
        return out


def _from_tokenizer(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "tokenization" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False
