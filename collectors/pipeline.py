"""Instrument a model the serving code already calls — with no second forward pass.

- :func:`instrument_pipeline` wraps an existing ``transformers`` ``pipeline("text-classification")``:
  call the wrapper exactly like the pipeline; its results come back unchanged (the very object
  the pipeline returned).
- :func:`instrument_model` instruments a plain ``AutoModelForSequenceClassification`` +
  tokenizer pair that the serving code calls itself: tokenize with ``.tokenizer`` (a thin proxy
  that remembers the texts of the call) and call the model as before.

Forward hooks on the model read what the serving call computes anyway: the encoder's last
hidden layer (pooled by :func:`collectors.encoding.pool_hidden`, as everywhere in shiftwatch)
and the logits (probabilities by softmax, in ``id2label`` order). Tokenizer statistics come
from :func:`collectors.encoding.token_stats` (a tokenization, not a forward pass); latency is
the forward pass's wall time shared equally by its inputs. Records go to the collector like
:class:`collectors.instrument.InstrumentedClassifier`'s (raw text only with ``log_text=True``,
its SHA-256 always).

Nothing here raises into the serving path: a failure to build or log a record is counted in
``failures`` and the model's own results are returned as they are. Hooks act only on the
thread that is inside an instrumented call (or, for :func:`instrument_model`, on every
forward of that model); :meth:`close` removes them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from collectors.collector import Collector
from collectors.encoding import Pooling, TokenStats, check_pooling, pool_hidden, token_stats

__all__ = ["InstrumentedModel", "InstrumentedPipeline", "instrument_model", "instrument_pipeline"]

log = logging.getLogger("shiftwatch.collector")


@dataclass
class _Forward:
    """What one forward pass of the model yielded."""

    embeddings: np.ndarray  # (b, d) float32
    n_tokens: np.ndarray  # (b,) int32: attention-mask length of each input as the model saw it
    n_unk: np.ndarray  # (b,) int32
    probs: np.ndarray | None = None  # (b, k) float32
    latency_ms: float = 0.0


class _Local(threading.local):
    """Per-thread capture state."""

    def __init__(self) -> None:
        self.capturing = False
        self.forwards: list[_Forward] = []
        self.started = 0.0
        self.texts: list[str] | None = None  # instrument_model: the texts of the last tokenizer call
        self.retokenize = True  # instrument_model: whether that call truncated (or may have)
        self.max_length: int | None = None  # instrument_model: that call's max_length


def _labels(model: Any) -> list[str]:
    id2label = getattr(model.config, "id2label", None) or {}
    n = int(getattr(model.config, "num_labels", len(id2label)))
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]


class _Tap:
    """Forward hooks on a sequence classifier and the records they produce."""

    def __init__(self, model: Any, tokenizer: Any, collector: Collector, *, model_name: str,
                 model_version: str, pooling: Pooling, max_length: int | None, log_text: bool,
                 source: str | None, always: bool) -> None:
        if not type(model).__name__.endswith("ForSequenceClassification"):
            raise TypeError(f"expected a ...ForSequenceClassification model, got {type(model).__name__}")
        check_pooling(pooling)
        base = getattr(model, "base_model", None)
        if base is None or base is model:
            raise TypeError(f"{type(model).__name__} has no separate encoder (base_model) to read")
        self.model = model
        self.tokenizer = tokenizer
        self.collector = collector
        self.model_name = model_name
        self.model_version = model_version
        self.pooling: Pooling = pooling
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
            limit = min(limit, tok_limit)
        self.max_length = int(max_length or limit)
        self.log_text = log_text
        self.source = source
        self.labels = _labels(model)
        self.failures = 0
        self._always = always
        self._local = _Local()
        self._handles = [
            base.register_forward_hook(self._on_encoder, with_kwargs=True),
            model.register_forward_pre_hook(self._before),
            model.register_forward_hook(self._on_model),
        ]

    def close(self) -> None:
        """Remove the hooks; the model is as it was."""
        for h in self._handles:
            h.remove()
        self._handles = []

    # -- hooks (never raise) --------------------------------------------------------------
    def _active(self) -> bool:
        return self._always or self._local.capturing

    def _before(self, module: Any, args: Any) -> None:
        if self._active():
            self._local.started = time.perf_counter()

    def _on_encoder(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if not self._active():
            return
        try:
            import torch

            hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
            mask = kwargs.get("attention_mask")
            if mask is None:
                mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
            ids = kwargs.get("input_ids", args[0] if args else None)
            with torch.no_grad():
                pooled = pool_hidden(hidden, mask, self.pooling,
                                     pooler_output=getattr(output, "pooler_output", None), model=self.model)
                n_tokens = mask.sum(1).to(torch.int32).cpu().numpy()
                unk = getattr(self.tokenizer, "unk_token_id", None)
                n_unk = (((ids == unk) & mask.bool()).sum(1).to(torch.int32).cpu().numpy()
                         if ids is not None and unk is not None else np.zeros(len(n_tokens), np.int32))
                self._local.forwards.append(_Forward(pooled.detach().float().cpu().numpy(), n_tokens, n_unk))
        except Exception:  # instrumentation must never break the model's call
            self.failures += 1
            log.exception("capturing the embedding failed")

    def _on_model(self, module: Any, args: Any, output: Any) -> None:
        if not self._active():
            return
        try:
            import torch

            if not self._local.forwards or self._local.forwards[-1].probs is not None:
                raise RuntimeError("the encoder hook did not run for this forward pass")
            fwd = self._local.forwards[-1]
            logits = output.logits if hasattr(output, "logits") else output[0]
            with torch.no_grad():
                fwd.probs = torch.softmax(logits.detach().float(), dim=-1).cpu().numpy()
            fwd.latency_ms = (time.perf_counter() - self._local.started) * 1000.0
            if self._always:
                self._local.forwards = []
                texts, self._local.texts = self._local.texts, None
                retokenize, self._local.retokenize = self._local.retokenize, True
                limit, self._local.max_length = self._local.max_length, None
                self._log(texts if texts is not None and len(texts) == len(fwd.probs) else None, [fwd],
                          retokenize=retokenize, max_length=limit)
        except Exception:
            self.failures += 1
            log.exception("capturing the logits failed")

    # -- records ------------------------------------------------------------------------
    def _log(self, texts: Sequence[str] | None, forwards: list[_Forward], *, retokenize: bool,
             max_length: int | None = None) -> None:
        """One record per input of ``forwards`` (``texts`` in the same order, or None).

        Token counts are the model's own input lengths when the texts were tokenized without
        truncation (the pipeline's default), so the texts are not tokenized a second time;
        with ``retokenize`` (the caller asked for truncation) they are counted again before
        truncation by :func:`~collectors.encoding.token_stats`. ``max_length``: the call's own
        truncation length, when it named one.
        """
        limit = int(max_length or self.max_length)
        probs = np.concatenate([f.probs for f in forwards if f.probs is not None]).astype(np.float32)
        embs = np.concatenate([f.embeddings for f in forwards]).astype(np.float32)
        lat = np.concatenate([np.full(len(f.embeddings), f.latency_ms / max(len(f.embeddings), 1))
                              for f in forwards])
        n = len(probs)
        if len(embs) != n or (texts is not None and len(texts) != n):
            raise RuntimeError(f"{len(embs)} embeddings, {n} outputs, "
                               f"{'?' if texts is None else len(texts)} texts")
        stats = None
        if texts is not None and retokenize:
            stats = token_stats(self.tokenizer, list(texts), limit)
        elif texts is not None:
            n_tok = np.concatenate([f.n_tokens for f in forwards])
            n_chars = np.fromiter((len(t) for t in texts), dtype=np.int32, count=len(texts))
            stats = TokenStats(n_tok, np.concatenate([f.n_unk for f in forwards]), n_tok > limit,
                               n_chars)
        when = datetime.now(UTC)
        top = probs.argmax(axis=1)
        for i in range(n):
            k = int(top[i])
            text = texts[i] if texts is not None else None
            self.collector.log({
                "event_id": str(uuid.uuid4()), "ts": when, "model_name": self.model_name,
                "model_version": self.model_version, "predicted_label": self.labels[k],
                "confidence": min(max(float(probs[i, k]), 0.0), 1.0), "probs": probs[i],
                "embedding": embs[i], "latency_ms": float(lat[i]),
                "n_tokens": int(stats.n_tokens[i]) if stats is not None else None,
                "n_unk": int(stats.n_unk[i]) if stats is not None else None,
                "truncated": bool(stats.truncated[i]) if stats is not None else None,
                "n_chars": int(stats.n_chars[i]) if stats is not None else None,
                "text": text if self.log_text else None,
                "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None,
                "source": self.source,
            })


def _texts_of(inputs: Any) -> list[str] | None:
    """The texts of a pipeline call (a string or a list/tuple of strings), else None."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, list | tuple) and inputs and all(isinstance(x, str) for x in inputs):
        return list(inputs)
    return None


class InstrumentedPipeline:
    """A text-classification pipeline whose every call is logged; call it like the pipeline.

    Inputs other than a text or a list of texts (text pairs, datasets, generators) are passed
    through unlogged. Other attributes are the pipeline's.
    """

    def __init__(self, pipeline: Any, tap: _Tap) -> None:
        self.pipeline = pipeline
        self._tap = tap

    @property
    def failures(self) -> int:
        """Calls whose records could not be built (the results were returned regardless)."""
        return self._tap.failures

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        texts = _texts_of(inputs)
        if texts is None:
            return self.pipeline(inputs, *args, **kwargs)
        local = self._tap._local
        local.capturing, local.forwards = True, []
        try:
            result = self.pipeline(inputs, *args, **kwargs)
            forwards = local.forwards
        finally:
            local.capturing, local.forwards = False, []
        try:
            limit = kwargs.get("max_length") or (kwargs.get("tokenizer_kwargs") or {}).get("max_length")
            self._tap._log(texts, forwards, retokenize=self._truncates(kwargs),
                           max_length=limit if isinstance(limit, int) else None)
        except Exception:
            self._tap.failures += 1
            log.exception("logging a pipeline call failed")
        return result

    def _truncates(self, kwargs: dict[str, Any]) -> bool:
        """Whether this call's tokenization may truncate (then token counts are redone)."""
        params = {**getattr(self.pipeline, "_preprocess_params", {}), **kwargs}
        tokenizer_kwargs = params.get("tokenizer_kwargs") or {}
        return bool(params.get("truncation") or tokenizer_kwargs.get("truncation"))

    def close(self) -> None:
        """Remove the model hooks (the pipeline keeps working, unlogged)."""
        self._tap.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)


class _TokenizerProxy:
    """The user's tokenizer; a call with a text or list of texts is remembered for the model's
    next forward pass on this thread."""

    def __init__(self, tokenizer: Any, tap: _Tap) -> None:
        self._tokenizer = tokenizer
        self._tap = tap

    def __call__(self, text: Any = None, *args: Any, **kwargs: Any) -> Any:
        local = self._tap._local
        local.texts = _texts_of(text) if not args and "text_pair" not in kwargs else None
        local.retokenize = bool(kwargs.get("truncation", False)) or "max_length" in kwargs
        limit = kwargs.get("max_length")
        local.max_length = limit if isinstance(limit, int) else None
        return self._tokenizer(text, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


class InstrumentedModel:
    """A model + tokenizer pair the serving code calls itself: ``.model`` is the same model
    object (with hooks), ``.tokenizer`` a proxy of the same tokenizer."""

    def __init__(self, tap: _Tap) -> None:
        self._tap = tap
        self.model = tap.model
        self.tokenizer = _TokenizerProxy(tap.tokenizer, tap)

    @property
    def failures(self) -> int:
        """Forward passes whose records could not be built."""
        return self._tap.failures

    def close(self) -> None:
        """Remove the model hooks."""
        self._tap.close()


def instrument_pipeline(
    pipe: Any,
    collector: Collector,
    *,
    model_name: str,
    model_version: str,
    pooling: Pooling = "mean",
    max_length: int | None = None,
    log_text: bool = False,
    source: str | None = None,
) -> InstrumentedPipeline:
    """Wrap ``transformers.pipeline("text-classification", ...)``; each call logs one record per
    text. ``max_length`` is the truncation length the tokenizer statistics report against
    (default: the model's and tokenizer's limit)."""
    task = getattr(pipe, "task", "text-classification")
    if task not in ("text-classification", "sentiment-analysis"):
        raise TypeError(f"expected a text-classification pipeline, got task {task!r}")
    tap = _Tap(pipe.model, pipe.tokenizer, collector, model_name=model_name, model_version=model_version,
               pooling=pooling, max_length=max_length, log_text=log_text, source=source, always=False)
    return InstrumentedPipeline(pipe, tap)


def instrument_model(
    model: Any,
    tokenizer: Any,
    collector: Collector,
    *,
    model_name: str,
    model_version: str,
    pooling: Pooling = "mean",
    max_length: int | None = None,
    log_text: bool = False,
    source: str | None = None,
) -> InstrumentedModel:
    """Instrument a ``...ForSequenceClassification`` the serving code calls itself::

        pair = instrument_model(model, tokenizer, collector, model_name="m", model_version="v1")
        batch = pair.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        logits = pair.model(**batch).logits      # unchanged; one record per text is logged

    A forward pass not preceded by a ``pair.tokenizer`` call on the same thread is logged
    without text, hash or tokenizer statistics.
    """
    tap = _Tap(model, tokenizer, collector, model_name=model_name, model_version=model_version,
               pooling=pooling, max_length=max_length, log_text=log_text, source=source, always=True)
    return InstrumentedModel(tap)
