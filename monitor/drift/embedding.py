"""Embedding drift: MMD² permutation test (default), domain classifier, centroid distance.

All three work on a bounded sample: each side is capped by uniform
subsampling (``max_rows`` per side, default 1,000; at most 2,000 recommended:
the permutation test costs ``P * (2 * max_rows)**2``), so cost does not grow
with the window. An optional PCA (``pca_dims``) is fitted on the reference.

* ``mmd`` — squared maximum mean discrepancy (biased V-statistic) with an RBF
  kernel whose bandwidth is the median heuristic on the reference. The pooled
  kernel matrix is computed once; permutations are index shuffles of a
  weight vector, so all of them cost one ``(P, N) @ (N, N)`` product (torch
  on CUDA when available, numpy otherwise). p-value ``(k+1)/(P+1)``.
  Per-predicted-class MMD (sub-blocks of the same kernel) goes in details, so
  a covariate shift (classes move) can be told from a pure label shift
  (classes keep their place, only their mix changes).
* ``domain_classifier`` — cross-validated ridge classifier reference-vs-current,
  out-of-fold ROC AUC; the out-of-fold scores are linear in the labels, so an
  exact permutation test of the cross-validated AUC costs one matrix product.
* ``centroid`` — cosine distance between the mean embeddings, judged against
  reference-vs-reference resampling at the current window's size (which is
  conservative, hence valid).
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.stats import perm_pvalue
from monitor.errors import CalculatorError

__all__ = ["CentroidDrift", "DomainClassifierDrift", "EmbeddingDriftBase", "MMDDrift"]

log = logging.getLogger(__name__)


@functools.cache
def _cuda_available() -> bool:
    """CUDA usable by torch; without an NVIDIA driver, answered without importing torch."""
    import os
    import sys

    if "torch" not in sys.modules and not (os.path.exists("/proc/driver/nvidia")
                                           or os.path.exists("/dev/nvidia0")):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def check_matrix(x: np.ndarray | None, name: str, *, cast: bool = True) -> np.ndarray:
    """``x`` as a finite 2-D embedding matrix (contiguous float32 unless ``cast=False``), else
    :class:`CalculatorError` naming ``name``."""
    if x is None:
        raise CalculatorError(f"{name}: no 'embedding' column")
    if x.ndim != 2:
        raise CalculatorError(f"{name}: embeddings must be a 2-D matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise CalculatorError(f"{name}: embeddings contain NaN or infinity")
    return np.ascontiguousarray(x, dtype=np.float32) if cast else x


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = np.einsum("ij,ij->i", a, a)
    bb = np.einsum("ij,ij->i", b, b)
    d: np.ndarray = aa[:, None] + bb[None, :] - 2.0 * (a @ b.T)
    np.maximum(d, 0.0, out=d)
    return d


class EmbeddingDriftBase(DriftCalculator):
    """Shared configuration and preprocessing of the embedding methods."""

    signal = "embedding"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, max_rows: int = 1000,
                 pca_dims: int | None = None, n_permutations: int = 500, seed: int = 0,
                 device: str = "auto") -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        if max_rows < min_rows:
            raise CalculatorError("embedding: max_rows must be at least min_rows")
        if n_permutations < 1:
            raise CalculatorError("embedding: n_permutations must be positive")
        if device not in ("auto", "cpu", "cuda"):
            raise CalculatorError("embedding: device must be auto, cpu or cuda")
        self.max_rows = max_rows
        self.pca_dims = pca_dims
        self.n_permutations = n_permutations
        self.seed = seed
        self.device = device
        self._ref: np.ndarray = np.zeros((0, 0), np.float32)
        self._ref_labels: np.ndarray = np.zeros(0, dtype=object)
        self._mean: np.ndarray | None = None
        self._components: np.ndarray | None = None
        self._dim = 0

    def _count(self, frame: DriftFrame) -> int:
        return 0 if frame.embedding is None else int(frame.embedding.shape[0])

    def _use_cuda(self) -> bool:
        if self.device == "cpu":
            return False
        available = _cuda_available()
        if self.device == "cuda" and not available:
            log.warning("embedding drift: CUDA requested but not available; using the CPU")
        return available

    def _subsample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if n <= self.max_rows:
            return np.arange(n)
        return np.sort(rng.choice(n, size=self.max_rows, replace=False))

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self._components is None or self._mean is None:
            return x
        out: np.ndarray = ((x - self._mean) @ self._components.T).astype(np.float32)
        return out

    def _fit(self, reference: DriftFrame) -> None:
        x = check_matrix(reference.embedding, "reference")
        self._dim = int(x.shape[1])
        rng = np.random.default_rng(self.seed)
        n = x.shape[0]
        perm = rng.permutation(n)
        # Anything learned from reference rows (PCA axes, bandwidth) must not come from the
        # rows the permutation test uses, or the test loses its validity (PCA axes fitted on
        # the tested rows inflate their variance along those axes). Rows beyond the cap are
        # held out for it; with PCA and a small reference, half of it is held out.
        held = perm[self.max_rows:]
        use_pca = self.pca_dims is not None and 0 < self.pca_dims < x.shape[1]
        if use_pca and held.size < max(50, 2 * (self.pca_dims or 0)):
            cut = n // 2
            held, test = perm[:cut], perm[cut:]
        else:
            test = perm[: self.max_rows]
        test = np.sort(test)
        fit_rows = x[held] if held.size >= 50 else x[test]
        if use_pca:
            self._mean = fit_rows.mean(axis=0)
            _, _, vt = np.linalg.svd(fit_rows - self._mean, full_matrices=False)
            self._components = vt[: self.pca_dims].astype(np.float32)
        self._ref_labels = reference.predicted_label[test]
        self._ref = self._project(x[test])
        self._fit_embedding(self._project(fit_rows))

    def _current(self, current: DriftFrame) -> tuple[np.ndarray, np.ndarray]:
        y = check_matrix(current.embedding, "current")
        if y.shape[1] != self._dim:
            raise CalculatorError(f"embedding dimension mismatch: reference has {self._dim}, "
                                  f"current has {y.shape[1]}")
        idx = self._subsample(y.shape[0], np.random.default_rng(self.seed + 1))
        return self._project(y[idx]), current.predicted_label[idx]

    def _fit_embedding(self, rows: np.ndarray) -> None:
        """Hook for method-specific fitting on projected reference rows (held out from the
        test sample when the reference is larger than the cap)."""


class MMDDrift(EmbeddingDriftBase):
    """MMD² with an RBF kernel and a vectorised permutation test (the default)."""

    method = "mmd"

    def __init__(self, *, per_class_min_rows: int = 10, per_class_permutations: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.per_class_min_rows = per_class_min_rows
        self.per_class_permutations = per_class_permutations
        self._gamma = 1.0

    def _fit_embedding(self, rows: np.ndarray) -> None:
        sample = rows[: min(rows.shape[0], 1000)]
        d = _sq_dists(sample, sample)
        off = d[np.triu_indices(sample.shape[0], k=1)]
        med = float(np.median(off)) if off.size else 0.0
        if not med > 0:
            positive = off[off > 0]
            med = float(np.median(positive)) if positive.size else 1.0
        self._gamma = 1.0 / med

    def _compute(self, current: DriftFrame) -> DriftResult:
        y, y_labels = self._current(current)
        x = self._ref
        n, m = x.shape[0], y.shape[0]
        rng = np.random.default_rng(self.seed + 2)
        pooled = np.concatenate([x, y])
        if self._use_cuda():
            stat, null, k_np = _mmd_torch(pooled, n, self._gamma, self.n_permutations, rng)
            p, used = perm_pvalue(null, stat), self.n_permutations
        else:
            k_np = np.exp(-self._gamma * _sq_dists(pooled, pooled)).astype(np.float32)
            stat, p, used = _mmd_perm(k_np, n, self.n_permutations, rng)
        details: dict[str, Any] = {
            "bandwidth_gamma": self._gamma, "n_permutations": used,
            "max_permutations": self.n_permutations, "rows_used": [n, m], "dims": int(x.shape[1]),
        }
        if self.per_class_permutations is None or self.per_class_permutations > 0:
            details["per_class"] = self._per_class(k_np, n, y_labels, rng)
        return self.result(statistic=stat, p_value=p, drifted=p < self.threshold,
                           n_current=self._count(current), details=details)

    def _per_class(self, k: np.ndarray, n: int, y_labels: np.ndarray,
                   rng: np.random.Generator) -> dict[str, Any]:
        out: dict[str, Any] = {}
        labels = sorted(set(self._ref_labels.tolist()) | set(y_labels.tolist()), key=str)
        n_perm = self.per_class_permutations
        if n_perm is None:  # enough that one class can pass Bonferroni over the classes at alpha
            testable = sum(1 for lab in labels
                           if (self._ref_labels == lab).sum() >= self.per_class_min_rows
                           and (y_labels == lab).sum() >= self.per_class_min_rows)
            n_perm = max(100, math.ceil(2 * max(testable, 1) / self.threshold))
        for lab in labels:
            ri = np.flatnonzero(self._ref_labels == lab)
            ci = n + np.flatnonzero(y_labels == lab)
            if ri.size < self.per_class_min_rows or ci.size < self.per_class_min_rows:
                out[str(lab)] = {"n_reference": int(ri.size), "n_current": int(ci.size),
                                 "status": "insufficient_data"}
                continue
            idx = np.concatenate([ri, ci])
            stat, p, _ = _mmd_perm(k[np.ix_(idx, idx)], ri.size, n_perm, rng)
            out[str(lab)] = {"n_reference": int(ri.size), "n_current": int(ci.size),
                             "mmd2": stat, "p_value": p, "status": "ok"}
        return out


def _weights(n: int, m: int, dtype: type = np.float32) -> np.ndarray:
    return np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)]).astype(dtype)


def _mmd_perm(k: np.ndarray, n: int, n_perm: int, rng: np.random.Generator,
              *, stop_after: int = 10, batch: int = 100) -> tuple[float, float, int]:
    """Observed V-statistic MMD², its permutation p-value and the permutations used.

    The observed labelling is row 0 of the first product, so statistic and
    null share one precision (rounding noise below ``_TOL`` counts as 0).
    Permutations run in batches with Besag & Clifford's (1991) sequential
    stopping: once ``stop_after`` permuted statistics reach the observed one
    after ``L`` permutations, ``p = stop_after / L`` (valid, and a clearly
    unremarkable window costs a fraction of ``n_perm``); otherwise
    ``p = (k + 1) / (n_perm + 1)``.
    """
    kf = k.astype(np.float32, copy=False)
    w0 = _weights(n, k.shape[0] - n)
    base = np.arange(w0.size) < n
    stat = -1.0
    exceed = 0
    done = 0
    while done < n_perm:
        size = min(batch, n_perm - done)
        member = rng.permuted(np.broadcast_to(base, (size, w0.size)), axis=1)
        w = np.where(member, w0[0], w0[-1]).astype(np.float32)
        if stat < 0:
            w = np.vstack([w0[None, :], w])
        vals = np.einsum("pi,pi->p", w @ kf, w).astype(np.float64)
        vals[vals < _TOL] = 0.0
        if stat < 0:
            stat, vals = float(vals[0]), vals[1:]
        tol = 1e-9 * max(stat, 1e-300)
        hits = np.flatnonzero(vals >= stat - tol)
        if exceed + hits.size >= stop_after:
            used = done + int(hits[stop_after - exceed - 1]) + 1
            return stat, stop_after / used, used
        exceed += hits.size
        done += size
    return stat, (exceed + 1) / (n_perm + 1), n_perm


_TOL = 1e-7


def _mmd_torch(pooled: np.ndarray, n: int, gamma: float, n_perm: int,
               rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    """The same test on CUDA: kernel and all permutations on the GPU."""
    import torch

    dev = torch.device("cuda")
    z = torch.from_numpy(pooled).to(dev)
    k = torch.exp(-gamma * torch.cdist(z, z).square())
    w0 = torch.from_numpy(_weights(n, pooled.shape[0] - n)).to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(rng.integers(2**31)))
    order = torch.argsort(torch.rand(n_perm, w0.numel(), device=dev, generator=gen), dim=1)
    w = torch.vstack([w0[None, :], w0[order]])
    vals = ((w @ k) * w).sum(dim=1).double().cpu().numpy()
    vals[vals < _TOL] = 0.0
    return float(vals[0]), vals[1:], k.cpu().numpy()


class DomainClassifierDrift(EmbeddingDriftBase):
    """Cross-validated ridge domain classifier; exact permutation test of its out-of-fold AUC."""

    method = "domain_classifier"

    def __init__(self, *, folds: int = 5, ridge: float = 0.1, max_dims: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folds = folds
        self.ridge = ridge
        self.max_dims = max_dims

    def _compute(self, current: DriftFrame) -> DriftResult:
        y, _ = self._current(current)
        x = self._ref
        n, m = x.shape[0], y.shape[0]
        rng = np.random.default_rng(self.seed + 2)
        feats = _reduce(np.concatenate([x, y]), self.max_dims)
        smoother = _cv_ridge_smoother(feats, self.folds, self.ridge, rng)
        labels = np.concatenate([np.zeros(n), np.ones(m)])
        perms = rng.permuted(np.broadcast_to(labels, (self.n_permutations, n + m)), axis=1)
        scores = np.vstack([labels, perms]) @ smoother.T  # out-of-fold scores per labelling
        aucs = _auc_rows(scores, np.vstack([labels, perms]))
        auc = float(aucs[0])
        null = aucs[1:]
        p = perm_pvalue(null, auc)
        details = {"auc": auc, "folds": self.folds, "n_permutations": self.n_permutations,
                   "rows_used": [n, m], "null_q99": float(np.quantile(null, 0.99))}
        return self.result(statistic=auc, p_value=p, drifted=p < self.threshold,
                           n_current=self._count(current), details=details)


def _reduce(z: np.ndarray, max_dims: int) -> np.ndarray:
    """Centre, project on the top ``max_dims`` principal axes, standardise."""
    zc = z - z.mean(axis=0)
    if zc.shape[1] > max_dims:
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        zc = zc @ vt[:max_dims].T
    sd = zc.std(axis=0)
    sd[sd == 0] = 1.0
    return np.asarray(zc / sd, dtype=np.float64)


def _cv_ridge_smoother(z: np.ndarray, folds: int, ridge: float,
                       rng: np.random.Generator) -> np.ndarray:
    """(N, N) matrix S with out-of-fold ridge predictions = S @ targets (folds fixed)."""
    n_total = z.shape[0]
    fold_of = rng.permutation(n_total) % max(2, folds)
    x1 = np.hstack([z, np.ones((n_total, 1))])
    pen = ridge * np.eye(x1.shape[1])
    pen[-1, -1] = 1e-8
    s = np.zeros((n_total, n_total))
    for f in range(max(2, folds)):
        te = fold_of == f
        tr = ~te
        xt = x1[tr]
        coef_map = np.linalg.solve(xt.T @ xt + pen * tr.sum(), xt.T)  # (d+1, n_train)
        s[np.ix_(te, tr)] = x1[te] @ coef_map
    return s


def _auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC per row (Mann–Whitney with mid-ranks) of score rows against 0/1 label rows."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    u = (ranks * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return np.asarray(u / (n_pos * n_neg))


class CentroidDrift(EmbeddingDriftBase):
    """Cosine distance of mean embeddings vs reference-vs-reference resampling."""

    method = "centroid"

    def __init__(self, *, n_resamples: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_resamples = n_resamples

    def _compute(self, current: DriftFrame) -> DriftResult:
        y, _ = self._current(current)
        x = self._ref
        n, m = x.shape[0], y.shape[0]
        if n < 2 * self.min_rows:
            return self.result(statistic=None, p_value=None, drifted=False,
                               n_current=self._count(current), status="insufficient_data",
                               details={"min_rows": 2 * self.min_rows,
                                        "reason": "reference too small to resample against itself"})
        rng = np.random.default_rng(self.seed + 2)
        dist = _cos_dist(x.mean(axis=0), y.mean(axis=0))
        # Split the reference into a "current-sized" part and the rest; with
        # k = min(m, n // 2) the null spread is at least the true one (conservative).
        k = min(m, n // 2)
        total = x.sum(axis=0, dtype=np.float64)
        masks = rng.permuted(np.broadcast_to(np.arange(n) < k, (self.n_resamples, n)), axis=1)
        part = masks.astype(np.float64) @ x
        rest = total - part
        null = 1.0 - np.einsum("ij,ij->i", part, rest) / (
            np.linalg.norm(part, axis=1) * np.linalg.norm(rest, axis=1) + 1e-300)
        p = perm_pvalue(null, dist)
        thr_dist = float(np.quantile(null, 1.0 - self.threshold))
        details = {"cosine_distance": dist, "distance_threshold": thr_dist,
                   "n_resamples": self.n_resamples, "rows_used": [n, m], "split_size": k}
        return self.result(statistic=dist, p_value=p, drifted=p < self.threshold,
                           n_current=self._count(current), details=details)


def _cos_dist(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 1.0
    d = 1.0 - float(a @ b) / (na * nb)
    return 0.0 if math.isclose(d, 0.0, abs_tol=1e-7) else d
