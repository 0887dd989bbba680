"""Zero-instrumentation ingest: the sidecar computes embeddings and tokenizer statistics for
records that arrive with ``text`` but without them.

A serving stack that logs only text + prediction is then monitored like an instrumented one:
the records get the embedding and ``n_tokens`` / ``n_unk`` / ``truncated`` / ``n_chars`` that the
model version's *registered* tokenizer and encoder produce (same preprocessing, same pooling as
:class:`collectors.encoding.TextEncoder` everywhere else).

Durability first: the raw record is committed before ``202`` is returned, and enriched *in place
later* by a worker thread. So a crash or a slow encoder can never lose an accepted record; at
worst a record waits for its embedding. The pending set is the table itself (``text IS NOT NULL
AND (embedding IS NULL OR n_tokens IS NULL)``), so after a restart the first sweep resumes
where the last process stopped — the in-memory queue only carries hints about which model
version to look at, is bounded, and dropping a hint on a full queue loses nothing (the periodic
sweep finds the records). Encoding runs in batches outside the store lock; only the final
``UPDATE`` takes it. Values a record already carried are never overwritten.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from collectors.loops import LoopService
from monitor.errors import ShiftwatchError, StoreError
from monitor.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from collectors.encoding import TextEncoder
    from monitor.metrics import ServerMetrics

__all__ = ["EncoderResolver", "Enricher", "registry_resolver"]

log = logging.getLogger(__name__)

#: Returns the encoder of (model_name, model_version); raises when it cannot be loaded.
EncoderResolver = Callable[[str, str], "TextEncoder"]

_ENRICHED_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("embedding", pa.list_(pa.float32())),
        ("n_tokens", pa.int32()),
        ("n_unk", pa.int32()),
        ("truncated", pa.bool_()),
        ("n_chars", pa.int32()),
    ]
)
_MAX_SKIPPED = 10_000


def registry_resolver(store: Store, registry_dir: Path) -> EncoderResolver:
    """Resolve encoders from the model registry: the version's tokenizer, preprocessing and
    weights as registered (``Registry(store, root).get(...)`` + ``load_encoder(mv,
    classifier=False)``)."""

    def resolve(model_name: str, model_version: str) -> TextEncoder:
        from monitor import registry as reg  # lazy: pulls torch/transformers only when used

        registry = reg.Registry(store, registry_dir)
        mv = registry.get(model_name, model_version)
        loader: Any = getattr(registry, "load_encoder", None) or getattr(reg, "load_encoder", None)
        if loader is None:
            raise ShiftwatchError("monitor.registry provides no load_encoder")
        encoder: TextEncoder = loader(mv, classifier=False)
        return encoder

    return resolve


class Enricher:
    """Background worker that fills in embeddings and tokenizer stats of text-only records.

    ``notify(model_name, model_version)`` (called after each committed batch that holds such
    records) never blocks and wakes the worker; ``start()``/``stop()`` run the worker thread (a
    :class:`~collectors.loops.LoopService`, :attr:`service`: an iteration sweeps when the sweep
    is due, then takes the hints queued; one longer than ``sweep_interval_s`` warns of an
    overrun; a failed one is logged and retried after a second); ``run_pending()``
    does all pending work synchronously (tests, one-shot use). Encoders are cached per model
    version (``max_encoders`` most recent); a version whose encoder cannot be loaded is
    retried after ``retry_s``.
    """

    def __init__(
        self,
        store: Store,
        resolver: EncoderResolver,
        *,
        metrics: ServerMetrics | None = None,
        batch_size: int = 64,
        max_queue: int = 1024,
        sweep_interval_s: float = 30.0,
        retry_s: float = 60.0,
        max_encoders: int = 4,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._metrics = metrics
        self.batch_size = batch_size
        self.sweep_interval_s = sweep_interval_s
        self.retry_s = retry_s
        self._max_encoders = max_encoders
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=max_queue)
        self._encoders: OrderedDict[tuple[str, str], TextEncoder] = OrderedDict()
        self._unavailable: dict[tuple[str, str], float] = {}
        self._skip: dict[tuple[str, str], set[str]] = {}
        self._next_sweep = 0.0
        self.service = LoopService("shiftwatch-enrich", interval_s=min(0.5, sweep_interval_s),
                                   target=self._iteration, run_first=True, error_backoff_s=1.0,
                                   expected_s=sweep_interval_s, logger=log)
        self._work_lock = threading.Lock()
        self.enriched = 0

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (it sweeps once immediately: restart recovery)."""
        if self.service.running:
            return
        self._next_sweep = 0.0
        self.service.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to stop after its current batch and wait for it."""
        self.service.stop(timeout)

    def notify(self, model_name: str, model_version: str) -> bool:
        """Hint that ``model_name``/``model_version`` has records to enrich; never blocks."""
        try:
            self._queue.put_nowait((model_name, model_version))
        except queue.Full:
            if self._metrics is not None:
                self._metrics.enrich_dropped.inc()
            return False
        if self._metrics is not None:
            self._metrics.enrich_queue.set(self._queue.qsize())
        self.service.wake()
        return True

    def queue_depth(self) -> int:
        """Hints waiting in the queue."""
        return self._queue.qsize()

    # -- work -------------------------------------------------------------------------
    def run_pending(self) -> int:
        """Enrich every pending record now; return how many were enriched."""
        total = 0
        for row in self._store.fetch_dicts("server_pending_enrichment_versions"):
            total += self._enrich_version(str(row["model_name"]), str(row["model_version"]))
        return total

    def _iteration(self) -> None:
        """One iteration of the worker: the sweep when it is due, then the queued hints."""
        try:
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.sweep_interval_s
                self.run_pending()
            while not self.service.stopping:
                try:
                    key = self._queue.get_nowait()
                except queue.Empty:
                    break
                if self._metrics is not None:
                    self._metrics.enrich_queue.set(self._queue.qsize())
                self._enrich_version(*key)
        except Exception:  # counted here; the loop service logs it and the sweep retries
            if self._metrics is not None:
                self._metrics.enrich_failures.labels(reason="iteration").inc()
            raise

    def _encoder(self, key: tuple[str, str]) -> TextEncoder | None:
        if key in self._encoders:
            self._encoders.move_to_end(key)
            return self._encoders[key]
        retry_at = self._unavailable.get(key)
        if retry_at is not None and time.monotonic() < retry_at:
            return None
        try:
            encoder = self._resolver(*key)
        except Exception as exc:  # registry missing the version, bad files, ...
            log.warning("no encoder for %s/%s (retry in %.0fs): %s", *key, self.retry_s, exc)
            self._unavailable[key] = time.monotonic() + self.retry_s
            if self._metrics is not None:
                self._metrics.enrich_failures.labels(reason="no_encoder").inc()
            return None
        self._unavailable.pop(key, None)
        self._encoders[key] = encoder
        while len(self._encoders) > self._max_encoders:
            self._encoders.popitem(last=False)
        return encoder

    def _enrich_version(self, model_name: str, model_version: str) -> int:
        key = (model_name, model_version)
        done = 0
        with self._work_lock:
            encoder = None
            while not self.service.stopping:
                skip = self._skip.setdefault(key, set())
                rows = self._store.fetch_dicts("server_pending_enrichment", {
                    "model_name": model_name, "model_version": model_version,
                    "n": self.batch_size, "skip": sorted(skip)})
                if not rows:
                    break
                encoder = encoder or self._encoder(key)
                if encoder is None:
                    break
                n = self._enrich_batch(key, encoder, rows)
                if n == 0:
                    break
                done += n
        return done

    def _skip_ids(self, key: tuple[str, str], ids: list[str]) -> bool:
        """Do not pick ``ids`` up again in this process; False when the skip set is full."""
        skip = self._skip.setdefault(key, set())
        if len(skip) + len(ids) > _MAX_SKIPPED:
            return False
        skip.update(ids)
        return True

    def _enrich_batch(self, key: tuple[str, str], encoder: TextEncoder, rows: list[dict[str, Any]]) -> int:
        """Encode and store one batch; a failing batch is retried row by row so that one bad
        text (or a too-long input for the model) only skips itself. Returns rows handled."""
        ids = [str(r["event_id"]) for r in rows]
        texts = [str(r["text"]) for r in rows]
        try:
            parts = [(ids, encoder.encode(texts))]
        except Exception as exc:
            log.warning("encoding %d records of %s/%s failed: %s", len(rows), *key, exc)
            if self._metrics is not None:
                self._metrics.enrich_failures.labels(reason="encode").inc()
            parts = []
            for eid, text in zip(ids, texts, strict=True):
                try:
                    parts.append(([eid], encoder.encode([text])))
                except Exception:
                    if not self._skip_ids(key, [eid]):
                        return 0
        handled = len(ids) - sum(len(p[0]) for p in parts)
        for part_ids, enc in parts:
            if not self._write(key, part_ids, enc):
                return handled
            handled += len(part_ids)
        return handled

    def _write(self, key: tuple[str, str], ids: list[str], enc: Any) -> bool:
        """Store one encoded batch in place; False when the store refused it."""
        embeddings = np.asarray(enc.embeddings, dtype=np.float32)
        dim = int(embeddings.shape[1]) if embeddings.ndim == 2 else 0
        try:
            with self._store.transaction():
                known = self._store.embedding_dims().get(key)
                use_emb = dim > 0 and (known is None or known == dim)
                if not use_emb:
                    log.error("encoder of %s/%s gives dim %d but the store has %s; "
                              "storing tokenizer stats only", *key, dim, known)
                table = pa.table(
                    {
                        "event_id": ids,
                        "embedding": pa.array([e.tolist() for e in embeddings] if use_emb
                                              else [None] * len(ids), type=pa.list_(pa.float32())),
                        "n_tokens": pa.array(enc.stats.n_tokens, type=pa.int32()),
                        "n_unk": pa.array(enc.stats.n_unk, type=pa.int32()),
                        "truncated": pa.array(enc.stats.truncated, type=pa.bool_()),
                        "n_chars": pa.array(enc.stats.n_chars, type=pa.int32()),
                    },
                    schema=_ENRICHED_SCHEMA,
                )
                with self._store.registered("_enriched", table):
                    self._store.execute("server_apply_enrichment")
                if use_emb and known is None:
                    dims = pa.table({"model_name": [key[0]], "model_version": [key[1]],
                                     "dim": pa.array([dim], type=pa.int32())})
                    with self._store.registered("_dims", dims):
                        self._store.execute("record_embedding_dims")
        except StoreError as exc:
            log.warning("storing enrichment of %s/%s failed: %s", *key, exc)
            if self._metrics is not None:
                self._metrics.enrich_failures.labels(reason="store").inc()
            return False
        if not use_emb:
            self._skip_ids(key, ids)  # their embedding stays NULL: do not loop on them
        self.enriched += len(ids)
        if self._metrics is not None:
            self._metrics.enriched.inc(len(ids))
        return True
