"""Classification metrics on integer class ids (numpy only; sklearn is a dev extra)."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "macro_f1"]


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``.

    A class that never occurs in either contributes nothing (sklearn's
    ``labels=None`` behaviour); an empty input gives 0.0.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.size == 0:
        return 0.0
    scores: list[float] = []
    for c in range(n_classes):
        tp = int(np.sum((t == c) & (p == c)))
        fp = int(np.sum((t != c) & (p == c)))
        fn = int(np.sum((t == c) & (p != c)))
        if tp + fp + fn == 0:
            continue
        scores.append(2.0 * tp / (2.0 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of exact matches; 0.0 for empty input."""
    t = np.asarray(y_true)
    return float(np.mean(t == np.asarray(y_pred))) if t.size else 0.0
