"""A 2-D view of the embeddings: PCA fitted on (a capped sample of) the reference.

Never t-SNE/UMAP on the hot path: PCA is one SVD of at most ``fit_cap``
rows, and at most ``max_points`` points per side are kept for drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Projection", "principal_axes", "project", "reduce_pooled"]


@dataclass(frozen=True, slots=True, eq=False)
class Projection:
    """Projected points (``(k, 2)`` arrays), the explained-variance ratio of the two axes,
    and the row index of each drawn current point in the current window."""

    reference: np.ndarray
    current: np.ndarray
    explained: tuple[float, float]
    current_index: np.ndarray


def _sample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def principal_axes(centred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal axes (``(d, k)``, unit columns, largest loading positive) of
    already-centred rows, and the sums of squares along them.

    Eigen-decomposition of the ``d x d`` scatter matrix: much cheaper than an SVD of the
    rows when there are many more rows than dimensions.
    """
    scatter = centred.T @ centred
    values, vectors = np.linalg.eigh(scatter)
    order = np.argsort(values)[::-1][: min(k, vectors.shape[1])]
    axes = vectors[:, order]
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    axes = axes * np.where(signs == 0, 1.0, signs)[None, :]
    return axes, np.clip(values[order], 0.0, None)


def reduce_pooled(reference: np.ndarray, current: np.ndarray, k: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Both windows on the top ``k`` principal axes of the pooled rows, centred on the
    reference mean (what a domain classifier needs, at a fraction of the cost)."""
    if reference.shape[1] <= k:
        return reference, current
    mean = reference.astype(np.float64).mean(axis=0)
    ref = reference.astype(np.float64) - mean
    cur = current.astype(np.float64) - mean
    axes, _ = principal_axes(np.vstack([ref, cur]), k)
    return ref @ axes, cur @ axes


def project(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    max_points: int = 1500,
    fit_cap: int = 3000,
    seed: int = 0,
) -> Projection:
    """Fit a 2-component PCA on the reference and project both (capped) samples."""
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ValueError(f"embeddings must be 2-D with equal widths, got {reference.shape} "
                         f"and {current.shape}")
    if reference.shape[0] < 2:
        raise ValueError("PCA needs at least two reference rows")
    rng = np.random.default_rng(seed)
    fit_rows = reference[_sample(reference.shape[0], fit_cap, rng)].astype(np.float64)
    mean = fit_rows.mean(axis=0)
    vectors, var = principal_axes(fit_rows - mean, 2)
    k = vectors.shape[1]
    axes = vectors.T
    total = float(np.trace(np.cov(fit_rows, rowvar=False, bias=True)) * fit_rows.shape[0]) or 1.0
    explained = [float(v / total) for v in var[:k]] + [0.0] * (2 - k)

    def proj(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], 2))
        out[:, :k] = (x.astype(np.float64) - mean) @ axes.T
        return out

    ref_idx = _sample(reference.shape[0], max_points, rng)
    cur_idx = _sample(current.shape[0], max_points, rng)
    return Projection(proj(reference[ref_idx]), proj(current[cur_idx]),
                      (explained[0], explained[1]), cur_idx)
