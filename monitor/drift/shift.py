"""Per-row shift scores: which current rows look least like the reference.

A domain classifier (L2-regularised logistic regression on the top principal
axes of the pooled embeddings) is cross-fitted: every current row is scored by
a model that never saw it, so the score is an honest out-of-sample
probability of "current, not reference". Higher = less like the reference.
Used for "most-shifted examples" in reports and review queues.
"""

from __future__ import annotations

import numpy as np

from monitor.errors import CalculatorError

__all__ = ["shift_scores"]


def _logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 25) -> np.ndarray:
    """Newton–Raphson for L2 logistic regression; ``x`` has a trailing bias column."""
    w = np.zeros(x.shape[1])
    pen = l2 * np.eye(x.shape[1])
    pen[-1, -1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + pen @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + pen + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return w


def shift_scores(reference_emb: np.ndarray, current_emb: np.ndarray, *, seed: int = 0,
                 folds: int = 5, max_dims: int = 32, max_reference: int = 5000,
                 l2: float = 1.0) -> np.ndarray:
    """Cross-fitted P(current | embedding) for every current row, shape ``(len(current_emb),)``."""
    ref = np.asarray(reference_emb, dtype=np.float64)
    cur = np.asarray(current_emb, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2:
        raise CalculatorError("shift_scores: embeddings must be 2-D matrices")
    if ref.shape[1] != cur.shape[1]:
        raise CalculatorError(f"embedding dimension mismatch: reference has {ref.shape[1]}, "
                              f"current has {cur.shape[1]}")
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise CalculatorError("shift_scores: embeddings contain NaN or infinity")
    m = cur.shape[0]
    if m == 0:
        return np.zeros(0)
    if ref.shape[0] < 2 or m < 2:
        return np.full(m, 0.5)
    rng = np.random.default_rng(seed)
    if ref.shape[0] > max_reference:
        ref = ref[rng.choice(ref.shape[0], max_reference, replace=False)]
    z = np.concatenate([ref, cur])
    z = z - ref.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    z = z @ vt[: min(max_dims, vt.shape[0])].T
    sd = z.std(axis=0)
    sd[sd == 0] = 1.0
    z = np.hstack([z / sd, np.ones((z.shape[0], 1))])
    y = np.concatenate([np.zeros(ref.shape[0]), np.ones(m)])
    k = max(2, min(folds, m))
    fold = rng.permutation(z.shape[0]) % k
    scores = np.empty(z.shape[0])
    for f in range(k):
        te = fold == f
        w = _logistic(z[~te], y[~te], l2)
        scores[te] = 1.0 / (1.0 + np.exp(-np.clip(z[te] @ w, -30, 30)))
    return np.asarray(scores[ref.shape[0]:])
