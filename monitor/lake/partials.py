"""Partials: the mergeable statistics of one (model, version, replica, hour, source) slice.

A :class:`Partial` holds only quantities that add exactly, so the statistics
of any window, group or backfilled range are the sum of its partials, in any
order of files, replicas or engine partitions:

* ``n`` rows and the files it was computed from (a new file makes it stale);
* exact predicted-class counts;
* fixed-bin histograms: confidence (100 bins on [0, 1]), normalised entropy of
  ``probs`` (100 bins on [0, 1]), and ``n_tokens`` as exact integer counts
  0..1023 plus one overflow bin (token counts are bounded by the tokenizer's
  input in practice; exact counts need no sketch and no sketch-size choice);
* row counts with any ``[UNK]`` and with truncation (two-proportion tests);
* per-class random-Fourier-feature moments (count, sum, sum of outer products;
  :mod:`monitor.drift.rff`), whose sum is the window's;
* KLL sketches (:mod:`monitor.lake.kll`) of the unbounded numeric columns,
  ``latency_ms`` and ``n_chars``, built from each slice's values sorted; their
  merge depends only on the set of inputs, and each carries its rank-error bound;
* a bottom-k sample: the ``k`` rows with the smallest hash of ``event_id``.
  The union of two bottom-k samples, cut to its ``k`` smallest hashes, is the
  bottom-k sample of the union, so the merged sample is a uniform sample of the
  whole window without replacement (and re-sent rows, same ``event_id``, count
  once), for exact permutation tests on a fair sample.

Merging sums the fields in a fixed order (sorted keys), so the same partials
give bit-identical merged statistics whichever engine produced them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from monitor.drift.frame import DriftFrame
from monitor.drift.rff import RFFMap, RFFMoments, class_moments, merge_class_moments
from monitor.errors import CalculatorError
from monitor.lake.kll import DEFAULT_K, KLLSketch, merge_sketches

__all__ = ["CONF_BINS", "NTOK_BINS", "PARTIAL_SCHEMA", "SKETCH_COLUMNS", "Partial", "PartialKey",
           "merge_partials", "partial_from_frame", "partials_from_arrow", "partials_to_arrow"]

CONF_BINS = 100
ENTROPY_BINS = 100
#: n_tokens counted exactly for 0..NTOK_BINS-2; the last bin holds everything longer.
NTOK_BINS = 1025
#: Default bottom-k sample size per partial (and per merged window).
SAMPLE_K = 500
#: Unbounded numeric record fields (DESIGN §3) kept as KLL sketches.
SKETCH_COLUMNS = ("latency_ms", "n_chars")


@dataclass(frozen=True, slots=True, order=True)
class PartialKey:
    """Where a partial belongs: model, version, UTC date and hour, replica, source slice."""

    model_name: str
    model_version: str
    date: str  # YYYY-MM-DD
    hour: str  # HH
    replica: str
    source: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Partial:
    """Mergeable statistics of a set of prediction records (see the module docstring)."""

    key: PartialKey
    n: int
    files: tuple[str, ...] = ()
    class_counts: dict[str, int] = field(default_factory=dict)
    conf_hist: np.ndarray = field(default_factory=lambda: np.zeros(CONF_BINS, np.int64))
    entropy_hist: np.ndarray | None = None
    ntok_hist: np.ndarray | None = None
    n_unk_rows: int = 0
    n_truncated: int = 0
    n_tok_rows: int = 0
    rff_spec: str | None = None
    rff: dict[str, RFFMoments] = field(default_factory=dict)
    sample_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    sample_label: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    sample_embedding: np.ndarray | None = None
    sample_k: int = SAMPLE_K
    #: KLL sketch per unbounded column with values; None: not computed (an older partials file)
    sketches: dict[str, KLLSketch] | None = field(default_factory=dict)

    @property
    def feature_map(self) -> RFFMap | None:
        return None if self.rff_spec is None else RFFMap.from_spec(self.rff_spec)


def _hist(values: np.ndarray, bins: int) -> np.ndarray:
    idx = np.clip((values * bins).astype(np.int64), 0, bins - 1)
    return np.bincount(idx, minlength=bins).astype(np.int64)


def _ntok_hist(values: np.ndarray) -> np.ndarray:
    idx = np.clip(values.astype(np.int64), 0, NTOK_BINS - 1)
    return np.bincount(idx, minlength=NTOK_BINS).astype(np.int64)


def event_hashes(event_ids: Sequence[str]) -> np.ndarray:
    """64-bit hashes of event ids (first 8 bytes of SHA-256, big-endian): the sample order."""
    out = np.empty(len(event_ids), dtype=np.uint64)
    for i, e in enumerate(event_ids):
        out[i] = int.from_bytes(hashlib.sha256(str(e).encode("utf-8")).digest()[:8], "big")
    return out


def partial_from_frame(key: PartialKey, frame: DriftFrame, *, feature_map: RFFMap | None = None,
                       files: Sequence[str] = (), sample_k: int = SAMPLE_K,
                       kll_k: int = DEFAULT_K) -> Partial:
    """Statistics of one frame of records. ``feature_map`` is required when rows carry
    embeddings (its dimension must match); without ``event_id`` no sample is kept; a
    :data:`SKETCH_COLUMNS` column gets a ``kll_k`` sketch when it has a finite value."""
    n = frame.n
    labels = np.asarray([str(v) for v in frame.predicted_label], dtype=object)
    counts = {lab: int(c) for lab, c in zip(*np.unique(labels.astype(str), return_counts=True),
                                            strict=True)} if n else {}
    entropy = None
    if frame.probs is not None and frame.probs.shape[1] > 1:
        p = np.clip(frame.probs.astype(np.float64), 1e-12, 1.0)
        h = -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])
        entropy = _hist(np.clip(h, 0.0, 1.0), ENTROPY_BINS)
    ntok = None
    n_tok_rows = n_unk_rows = n_trunc = 0
    if frame.n_tokens is not None:
        ok = np.isfinite(frame.n_tokens)
        n_tok_rows = int(ok.sum())
        ntok = _ntok_hist(frame.n_tokens[ok])
        if frame.n_unk is not None:
            n_unk_rows = int((np.nan_to_num(frame.n_unk[ok]) > 0).sum())
        if frame.truncated is not None:
            n_trunc = int((np.nan_to_num(frame.truncated[ok]) > 0).sum())
    rff: dict[str, RFFMoments] = {}
    spec = None
    sample_emb = None
    hashes = np.zeros(0, np.uint64)
    sample_lab = np.zeros(0, dtype=object)
    if frame.embedding is not None and n:
        if feature_map is None:
            raise CalculatorError("partial: rows carry embeddings but no feature map was given")
        rff = class_moments(feature_map.transform(frame.embedding), labels)
        spec = feature_map.spec
    if frame.event_id is not None and n:
        all_h = event_hashes(list(frame.event_id))
        _, first = np.unique(all_h, return_index=True)  # re-sent ids count once in the sample
        order = first[np.argsort(all_h[first], kind="stable")][:sample_k]
        hashes = all_h[order]
        sample_lab = labels[order]
        if frame.embedding is not None:
            sample_emb = frame.embedding[order].astype(np.float32)
    sketches = {}
    for col in SKETCH_COLUMNS:
        values = getattr(frame, col)
        if values is not None and np.isfinite(values).any():
            sketches[col] = KLLSketch.from_values(values, kll_k)
    return Partial(key=key, n=n, files=tuple(sorted(files)), class_counts=counts,
                   conf_hist=_hist(np.clip(frame.confidence, 0.0, 1.0), CONF_BINS),
                   entropy_hist=entropy, ntok_hist=ntok, n_unk_rows=n_unk_rows,
                   n_truncated=n_trunc, n_tok_rows=n_tok_rows, rff_spec=spec, rff=rff,
                   sample_hash=hashes, sample_label=sample_lab, sample_embedding=sample_emb,
                   sample_k=sample_k, sketches=sketches)


def _sum_optional(arrays: Iterable[np.ndarray | None]) -> np.ndarray | None:
    present = [a for a in arrays if a is not None]
    if not present:
        return None
    out = present[0].copy()
    for a in present[1:]:
        out += a
    return out


def merge_partials(parts: Sequence[Partial], key: PartialKey) -> Partial:
    """One partial for the union of ``parts`` (summed in sorted-key order; empty parts allowed)."""
    if not parts:
        return Partial(key=key, n=0)
    ordered = sorted(parts, key=lambda p: (p.key, p.files))
    specs = {p.rff_spec for p in ordered if p.rff_spec is not None}
    if len(specs) > 1:
        raise CalculatorError(f"partials were built with different feature maps: {sorted(specs)}")
    spec = next(iter(specs), None)
    counts: dict[str, int] = {}
    for p in ordered:
        for lab, c in p.class_counts.items():
            counts[lab] = counts.get(lab, 0) + c
    conf = _sum_optional(p.conf_hist for p in ordered)
    n_features = RFFMap.from_spec(spec).n_features if spec else 0
    rff = merge_class_moments([p.rff for p in ordered], n_features) if spec else {}
    k = min(p.sample_k for p in ordered)
    hashes = np.concatenate([p.sample_hash for p in ordered])
    labels = np.concatenate([p.sample_label for p in ordered]).astype(object)
    with_emb = all(p.sample_embedding is not None or p.sample_hash.size == 0 for p in ordered)
    embs = ([p.sample_embedding for p in ordered if p.sample_embedding is not None]
            if with_emb else [])
    _, first = np.unique(hashes, return_index=True)
    pick = first[np.argsort(hashes[first], kind="stable")][:k]
    sample_emb = np.concatenate(embs)[pick] if with_emb and embs else None
    sketches: dict[str, KLLSketch] | None = None
    if all(p.sketches is not None for p in ordered):
        cols = sorted({c for p in ordered for c in p.sketches or {}})
        sketches = {c: merge_sketches([p.sketches[c] for p in ordered
                                       if p.sketches is not None and c in p.sketches])
                    for c in cols}
    return Partial(
        key=key, n=sum(p.n for p in ordered),
        files=tuple(sorted({f for p in ordered for f in p.files})),
        class_counts=dict(sorted(counts.items())),
        conf_hist=conf if conf is not None else np.zeros(CONF_BINS, np.int64),
        entropy_hist=_sum_optional(p.entropy_hist for p in ordered),
        ntok_hist=_sum_optional(p.ntok_hist for p in ordered),
        n_unk_rows=sum(p.n_unk_rows for p in ordered),
        n_truncated=sum(p.n_truncated for p in ordered),
        n_tok_rows=sum(p.n_tok_rows for p in ordered),
        rff_spec=spec, rff=rff, sample_hash=hashes[pick], sample_label=labels[pick],
        sample_embedding=sample_emb, sample_k=k, sketches=sketches)


PARTIAL_SCHEMA = pa.schema([
    ("model_name", pa.string()), ("model_version", pa.string()), ("date", pa.string()),
    ("hour", pa.string()), ("replica", pa.string()), ("source", pa.string()),
    ("n", pa.int64()), ("files", pa.list_(pa.string())),
    ("class_labels", pa.list_(pa.string())), ("class_counts", pa.list_(pa.int64())),
    ("conf_hist", pa.list_(pa.int64())), ("entropy_hist", pa.list_(pa.int64())),
    ("ntok_hist", pa.list_(pa.int64())), ("n_unk_rows", pa.int64()),
    ("n_truncated", pa.int64()), ("n_tok_rows", pa.int64()), ("rff_spec", pa.string()),
    ("rff_labels", pa.list_(pa.string())), ("rff_n", pa.list_(pa.int64())),
    ("rff_total", pa.list_(pa.list_(pa.float64()))),
    ("rff_outer", pa.list_(pa.list_(pa.float64()))),
    ("sample_k", pa.int64()), ("sample_hash", pa.list_(pa.int64())),  # uint64 bits as int64
    ("sample_label", pa.list_(pa.string())),
    ("sample_embedding", pa.list_(pa.list_(pa.float32()))),
    ("kll_columns", pa.list_(pa.string())), ("kll_k", pa.list_(pa.int64())),
    ("kll_n", pa.list_(pa.int64())), ("kll_err", pa.list_(pa.int64())),
    ("kll_sizes", pa.list_(pa.list_(pa.int64()))),
    ("kll_compactions", pa.list_(pa.list_(pa.int64()))),
    ("kll_items", pa.list_(pa.list_(pa.float64()))),
])
_KLL_FIELDS = ("k", "n", "err", "sizes", "compactions", "items")


def partials_to_arrow(parts: Sequence[Partial]) -> pa.Table:
    """Partials as rows of :data:`PARTIAL_SCHEMA` (the ``partials/`` file format)."""
    rows = []
    for p in parts:
        labs = sorted(p.rff)
        cols = None if p.sketches is None else sorted(p.sketches)
        kll = [p.sketches[c].to_row() for c in cols] if p.sketches is not None and cols else []
        rows.append({
            "model_name": p.key.model_name, "model_version": p.key.model_version,
            "date": p.key.date, "hour": p.key.hour, "replica": p.key.replica,
            "source": p.key.source, "n": p.n, "files": list(p.files),
            "class_labels": list(p.class_counts), "class_counts": list(p.class_counts.values()),
            "conf_hist": p.conf_hist.tolist(),
            "entropy_hist": None if p.entropy_hist is None else p.entropy_hist.tolist(),
            "ntok_hist": None if p.ntok_hist is None else p.ntok_hist.tolist(),
            "n_unk_rows": p.n_unk_rows, "n_truncated": p.n_truncated, "n_tok_rows": p.n_tok_rows,
            "rff_spec": p.rff_spec, "rff_labels": labs, "rff_n": [p.rff[lab].n for lab in labs],
            "rff_total": [p.rff[lab].total.tolist() for lab in labs],
            "rff_outer": [p.rff[lab].outer.ravel().tolist() for lab in labs],
            "sample_k": p.sample_k, "sample_hash": p.sample_hash.view(np.int64).tolist(),
            "sample_label": [str(v) for v in p.sample_label],
            "sample_embedding": (None if p.sample_embedding is None
                                 else p.sample_embedding.tolist()),
            "kll_columns": cols,
            **{f"kll_{f}": None if cols is None else [r[f] for r in kll] for f in _KLL_FIELDS},
        })
    return pa.Table.from_pylist(rows, schema=PARTIAL_SCHEMA)


def partials_from_arrow(table: pa.Table) -> list[Partial]:
    """Inverse of :func:`partials_to_arrow`."""
    names = [f for f in PARTIAL_SCHEMA.names if not f.startswith("kll_")
             or f in table.column_names]  # files written before the sketches: recomputed
    missing = [f for f in PARTIAL_SCHEMA.names if f not in table.column_names
               and not f.startswith("kll_")]
    if missing:
        raise CalculatorError(f"partials file lacks column(s) {', '.join(missing)}")
    out = []
    for r in table.select(names).to_pylist():
        spec = r["rff_spec"]
        d = RFFMap.from_spec(spec).n_features if spec else 0
        rff = {lab: RFFMoments(int(n), np.asarray(t, np.float64),
                               np.asarray(o, np.float64).reshape(d, d))
               for lab, n, t, o in zip(r["rff_labels"], r["rff_n"], r["rff_total"],
                                       r["rff_outer"], strict=True)}
        emb = r["sample_embedding"]
        out.append(Partial(
            key=PartialKey(r["model_name"], r["model_version"], r["date"], r["hour"],
                           r["replica"], r["source"] or ""),
            n=int(r["n"]), files=tuple(r["files"] or ()),
            class_counts=dict(zip(r["class_labels"], r["class_counts"], strict=True)),
            conf_hist=np.asarray(r["conf_hist"], np.int64),
            entropy_hist=None if r["entropy_hist"] is None else np.asarray(r["entropy_hist"],
                                                                            np.int64),
            ntok_hist=None if r["ntok_hist"] is None else np.asarray(r["ntok_hist"], np.int64),
            n_unk_rows=int(r["n_unk_rows"]), n_truncated=int(r["n_truncated"]),
            n_tok_rows=int(r["n_tok_rows"]), rff_spec=spec, rff=rff,
            sample_hash=np.asarray(r["sample_hash"] or [], np.int64).view(np.uint64),
            sample_label=np.asarray(r["sample_label"] or [], dtype=object),
            sample_embedding=(None if not emb
                              else np.asarray(emb, np.float32).reshape(len(emb), -1)),
            sample_k=int(r["sample_k"]), sketches=_sketches_of(r)))
    return out


def _sketches_of(row: dict[str, Any]) -> dict[str, KLLSketch] | None:
    cols: list[str] | None = row.get("kll_columns")
    if cols is None:
        return None
    fields = {f: row[f"kll_{f}"] for f in _KLL_FIELDS}
    return {str(c): KLLSketch.from_row({f: v[i] for f, v in fields.items()})
            for i, c in enumerate(cols)}


def with_key(part: Partial, key: PartialKey) -> Partial:
    """The same statistics under another key."""
    return replace(part, key=key)
