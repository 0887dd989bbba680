"""Shared test machinery: permutation p-values, tie-exact permutation tests, Holm.

Every p-value here is *valid* (``P(p <= a) <= a`` under the null) at every
sample size:

* permutation p-values use the ``(k + 1) / (n + 1)`` form (never 0);
* discrete data (token counts, saturated confidences) are tested by
  permuting *tie groups*: under the null the reference's share of each
  distinct value is multivariate-hypergeometric, so drawing those counts is
  an exact permutation of the pooled sample at ``O(distinct values)`` cost,
  and the asymptotic KS formula (which is only right without ties) is never
  applied to tied data;
* tests of one signal are combined by Bonferroni on their minimum p-value;
* signals are combined by Holm's step-down procedure, optionally weighted
  (:func:`weighted_holm`, prespecified weights; exact under any dependence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HolmResult",
    "bonferroni_min",
    "chi_square_counts",
    "fisher_two_sided",
    "holm",
    "ks_test",
    "mean_diff_test",
    "perm_pvalue",
    "tie_groups",
    "weighted_holm",
]


def perm_pvalue(null: np.ndarray, observed: float, *, rtol: float = 1e-9) -> float:
    """``(1 + #{null >= observed}) / (1 + len(null))`` with a relative tolerance for float noise."""
    tol = rtol * max(abs(observed), 1e-300)
    k = int(np.count_nonzero(null >= observed - tol))
    return (k + 1) / (null.size + 1)


def bonferroni_min(p_values: Sequence[float]) -> float:
    """One valid p-value for "any of these sub-tests rejects": ``min(1, k * min p)``."""
    ps = [p for p in p_values if p is not None and np.isfinite(p)]
    if not ps:
        return 1.0
    return float(min(1.0, len(ps) * min(ps)))


@dataclass(frozen=True, slots=True)
class HolmResult:
    """Holm step-down outcome: adjusted p-values and rejections, in input order."""

    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]

    @property
    def any(self) -> bool:
        return any(self.rejected)


def holm(p_values: Sequence[float], alpha: float) -> HolmResult:
    """Holm's procedure: controls the family-wise error rate at ``alpha`` under any dependence."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return HolmResult((), ())
    order = np.argsort(p, kind="stable")
    adj_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adj_sorted
    rejected = adjusted <= alpha
    return HolmResult(tuple(float(a) for a in adjusted), tuple(bool(r) for r in rejected))


def weighted_holm(p_values: Sequence[float], weights: Sequence[float], alpha: float) -> HolmResult:
    """Weighted Holm step-down (Holm 1979): FWER ≤ ``alpha`` under any dependence.

    At each step the hypothesis with the smallest ``p / w`` among those left is rejected when
    ``p / w <= alpha / (sum of the weights left)``. Adjusted p-values are
    ``max over earlier steps of min(1, p_j * W_j / w_j)`` (``W_j``: weight left at step j),
    so ``adjusted <= alpha`` is exactly the rejection. Equal weights give :func:`holm`.
    """
    p = np.asarray(p_values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if p.shape != w.shape:
        raise ValueError("weighted_holm: one weight per p-value")
    m = p.size
    if m == 0:
        return HolmResult((), ())
    if not (w > 0).all():
        raise ValueError("weighted_holm: weights must be positive")
    order = np.argsort(p / w, kind="stable")
    left = np.cumsum(w[order][::-1])[::-1]  # weight still in play at each step
    adj_sorted = np.maximum.accumulate(np.minimum(1.0, p[order] * left / w[order]))
    adjusted = np.empty(m)
    adjusted[order] = adj_sorted
    rejected = adjusted <= alpha
    return HolmResult(tuple(float(a) for a in adjusted), tuple(bool(r) for r in rejected))


def tie_groups(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct pooled values (sorted) with their counts in ``x`` and in the pool."""
    values, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True,
                                        return_counts=True)
    in_x = np.bincount(inverse[: x.size], minlength=values.size)
    return values, in_x, counts


def _perm_x_counts(pool_counts: np.ndarray, n_x: int, n_perm: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(n_perm, K) counts of a random size-``n_x`` subset of the pool per tie group.

    Few groups: multivariate-hypergeometric draws (O(K) each). Many groups:
    shuffle the pooled membership vector and count per group (O(N) each).
    """
    k = pool_counts.size
    if k == 1:
        return np.full((n_perm, 1), n_x, dtype=np.int64)
    total = int(pool_counts.sum())
    if 8 * k <= total:
        return rng.multivariate_hypergeometric(pool_counts, n_x, size=n_perm, method="marginals")
    member = np.zeros(total, dtype=np.int8)
    member[:n_x] = 1
    shuffled = rng.permuted(np.broadcast_to(member, (n_perm, total)), axis=1)
    ends = np.cumsum(pool_counts) - 1
    cum = np.cumsum(shuffled, axis=1, dtype=np.int32)[:, ends]
    return np.diff(cum, axis=1, prepend=0).astype(np.int64)


def _budget(n_perm: int, total: int) -> int:
    """Permutations for an O(N)-per-permutation test, bounded to ~5M element operations."""
    return max(200, min(n_perm, 5_000_000 // max(total, 1)))


def ks_test(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator,
            n_permutations: int = 1000) -> tuple[float, float, str]:
    """Two-sample KS: ``(statistic, p_value, method)``.

    Without ties (or with under 5 % of rows in ties), scipy's exact (small
    samples) or asymptotic distribution: with ties the continuous-theory
    p-value is conservative, so it stays valid. With more ties, an
    exact-permutation p-value over tie groups, which is neither liberal nor
    needlessly conservative.
    """
    from scipy import stats

    values, in_x, counts = tie_groups(x, y)
    n, m = x.size, y.size
    d_obs = float(np.max(np.abs(np.cumsum(in_x) / n - np.cumsum(counts - in_x) / m)))
    if values.size >= 0.95 * (n + m):  # (nearly) continuous
        method = "exact" if n * m <= 250_000 else "asymp"
        res = stats.ks_2samp(x, y, method=method)
        return float(res.statistic), float(res.pvalue), f"ks_{method}"
    if values.size == 1:
        return 0.0, 1.0, "ks_permutation"
    cx = np.cumsum(_perm_x_counts(counts, n, _budget(n_permutations, n + m), rng), axis=1)
    cum_total = np.cumsum(counts)
    null = np.max(np.abs(cx / n - (cum_total - cx) / m), axis=1)
    return d_obs, perm_pvalue(null, d_obs), "ks_permutation"


def mean_diff_test(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator,
                   n_permutations: int = 1000) -> tuple[float, float]:
    """Exact-permutation test of ``|mean(y) - mean(x)|`` (two-sided): ``(difference, p)``."""
    values, in_x, counts = tie_groups(x, y)
    n, m = x.size, y.size
    total = float(values @ counts)
    sx = float(values @ in_x)
    diff = (total - sx) / m - sx / n
    if values.size == 1:
        return 0.0, 1.0
    px = _perm_x_counts(counts, n, _budget(n_permutations, n + m), rng) @ values
    null = np.abs((total - px) / m - px / n)
    return float(diff), perm_pvalue(null, abs(diff))


def fisher_two_sided(k_x: int, n_x: int, k_y: int, n_y: int) -> float:
    """Fisher's exact test on a 2×2 table of successes/failures (exact, so valid)."""
    from scipy import stats

    if k_x + k_y in (0, n_x + n_y):
        return 1.0
    res = stats.fisher_exact([[k_x, n_x - k_x], [k_y, n_y - k_y]], alternative="two-sided")
    return float(min(1.0, res.pvalue))


def chi_square_counts(ref: Mapping[str, int], cur: Mapping[str, int], *, rng: np.random.Generator,
                      n_permutations: int = 2000) -> tuple[float, float, str, int]:
    """Chi-square test of homogeneity on label counts: ``(chi2, p, method, dof)``.

    Uses the chi-square distribution when every expected count is ≥ 5,
    otherwise a Monte-Carlo exact (fixed-margins permutation) p-value.
    """
    from scipy import stats

    labels = sorted(set(ref) | set(cur))
    a = np.array([ref.get(k, 0) for k in labels], dtype=np.float64)
    b = np.array([cur.get(k, 0) for k in labels], dtype=np.float64)
    n, m = a.sum(), b.sum()
    col = a + b
    keep = col > 0
    a, b, col = a[keep], b[keep], col[keep]
    dof = int(col.size - 1)
    if dof == 0:
        return 0.0, 1.0, "chi2", 0
    ea, eb = col * n / (n + m), col * m / (n + m)

    def chi2(xa: np.ndarray) -> np.ndarray:
        xb = col - xa
        return np.asarray(((xa - ea) ** 2 / ea).sum(axis=-1) + ((xb - eb) ** 2 / eb).sum(axis=-1))

    obs = float(chi2(a))
    if min(ea.min(), eb.min()) >= 5:
        return obs, float(stats.chi2.sf(obs, dof)), "chi2", dof
    null = chi2(_perm_x_counts(col.astype(np.int64), int(n), n_permutations, rng).astype(np.float64))
    return obs, perm_pvalue(null, obs), "chi2_monte_carlo", dof
