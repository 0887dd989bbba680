"""Classification metrics on integer class ids (numpy only; sklearn is a dev extra).

Macro-F1 itself is :func:`monitor.drift.performance.macro_f1` (the lower layer), the one
definition the drift signal, the trainer and the promotion guard share.
"""

from __future__ import annotations

import numpy as np

from monitor.drift.performance import macro_f1

__all__ = ["accuracy", "paired_f1_worse_pvalue"]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of exact matches; 0.0 for empty input."""
    t = np.asarray(y_true)
    return float(np.mean(t == np.asarray(y_pred))) if t.size else 0.0


def paired_f1_worse_pvalue(y_true: np.ndarray, pred_ref: np.ndarray, pred_new: np.ndarray, n_classes: int,
                           *, n_perm: int = 2000, seed: int = 0) -> float:
    """One-sided paired permutation p-value that ``pred_new`` has lower macro-F1 than ``pred_ref``.

    The approximate-randomization test (Noreen 1989): under "the two
    prediction sets are equally good" the two predictions of a row are
    exchangeable, so each row's pair is swapped at random and the statistic
    ``macro_f1(ref) - macro_f1(new)`` recomputed. Only rows where the two
    disagree can change it; with ``m`` of them the ``2**m`` swaps are
    enumerated exactly when ``2**m <= n_perm``, otherwise ``n_perm`` random
    swaps give ``(k + 1) / (n_perm + 1)``. 1.0 when they agree everywhere or
    ``new`` is not lower. Deterministic for a given ``seed``.
    """
    t = np.asarray(y_true, dtype=np.int64)
    a = np.asarray(pred_ref, dtype=np.int64)
    b = np.asarray(pred_new, dtype=np.int64)
    if not t.shape == a.shape == b.shape:
        raise ValueError(f"shapes differ: {t.shape}, {a.shape}, {b.shape}")
    observed = macro_f1(t, a, n_classes) - macro_f1(t, b, n_classes)
    d = np.flatnonzero(a != b)
    if d.size == 0 or observed <= 0:
        return 1.0
    m = d.size
    exact = m < 63 and 2**m <= n_perm
    if exact:
        swaps = ((np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)
    else:
        swaps = np.random.default_rng(seed).random((n_perm, m)) < 0.5
    same = np.ones(t.size, dtype=bool)
    same[d] = False
    td, ad, bd = t[d], a[d], b[d]
    stat = np.zeros(swaps.shape[0])
    for sign, keep, other in ((1.0, ad, bd), (-1.0, bd, ad)):
        pred = np.where(swaps, other[None, :], keep[None, :])  # (n_swaps, m)
        stat += sign * _macro_f1_rows(t[same], a[same], td, pred, n_classes)
    k = int(np.sum(stat >= observed - 1e-12))
    return k / swaps.shape[0] if exact else (k + 1) / (n_perm + 1)


def _macro_f1_rows(t_fixed: np.ndarray, p_fixed: np.ndarray, t_var: np.ndarray, p_var: np.ndarray,
                   n_classes: int) -> np.ndarray:
    """Macro-F1 (as :func:`macro_f1`) of fixed rows plus each row of ``p_var`` (predictions for ``t_var``)."""
    total = np.zeros(p_var.shape[0])
    present = np.zeros(p_var.shape[0])
    for c in range(n_classes):
        tp = np.sum((t_fixed == c) & (p_fixed == c)) + np.sum((t_var == c)[None, :] & (p_var == c), axis=1)
        fp = np.sum((t_fixed != c) & (p_fixed == c)) + np.sum((t_var != c)[None, :] & (p_var == c), axis=1)
        fn = np.sum((t_fixed == c) & (p_fixed != c)) + np.sum((t_var == c)[None, :] & (p_var != c), axis=1)
        denom = 2.0 * tp + fp + fn
        seen = denom > 0
        total += np.where(seen, 2.0 * tp / np.where(seen, denom, 1.0), 0.0)
        present += seen
    return np.where(present > 0, total / np.maximum(present, 1), 0.0)
