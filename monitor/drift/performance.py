"""Performance drift: realised accuracy / macro-F1 with labels, CBPE-style estimate without.

* **realized** (the current window has at least ``min_rows`` labelled rows):
  accuracy and macro-F1 of the window vs the labelled reference. The p-value
  is Fisher's exact one-sided test that the window's accuracy is *lower*
  (rows are independent Bernoulli "correct" outcomes); a bootstrap interval
  of the macro-F1 difference is in details.
* **cbpe** (no labels yet): confidence is calibrated to P(correct) on the
  labelled reference by isotonic regression (pool-adjacent-violators), and the
  window's accuracy is estimated as the mean calibrated confidence, with a
  normal interval from the Poisson-binomial variance. This estimate has no
  p-value (it is only as good as the calibration under the shift), so it is
  reported but kept out of the Holm family; ``drifted`` means the interval's
  upper end lies more than ``max_drop`` below the reference accuracy.
"""

from __future__ import annotations

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame

__all__ = ["PerformanceDrift", "isotonic_fit", "macro_f1"]


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Macro-F1: the unweighted mean of per-class F1 over the classes present in either array.

    The one macro-F1 of shiftwatch (drift's realised performance, retrain's selection, the
    promotion guard). With ``n_classes`` the labels are integer class ids in
    ``[0, n_classes)``; without it they are any labels (strings, ints), compared as strings.
    A class that occurs in neither array contributes nothing (sklearn's ``labels=None``
    behaviour); an empty input gives 0.0.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    if n_classes is not None:
        t, p = t.astype(np.int64), p.astype(np.int64)
        if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
            raise ValueError(f"class ids must lie in [0, {n_classes})")
        return _macro_f1_codes(t, p, n_classes)
    classes, codes = np.unique(np.concatenate([t.astype(str), p.astype(str)]), return_inverse=True)
    return _macro_f1_codes(codes[: t.size], codes[t.size:], classes.size)


def _macro_f1_codes(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """:func:`macro_f1` of class ids in ``[0, k)``."""
    if y_true.size == 0:
        return 0.0
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2·tp + fp + fn per class
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1[present].mean()) if present.any() else 0.0


def isotonic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of ``y`` on ``x`` (PAV): knots ``(xs, fitted)``."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    vals: list[float] = []
    wts: list[float] = []
    ends: list[int] = []
    for i, v in enumerate(ys):
        vals.append(float(v))
        wts.append(1.0)
        ends.append(i)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w = wts[-2] + wts[-1]
            vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            wts[-2] = w
            ends[-2] = ends[-1]
            vals.pop()
            wts.pop()
            ends.pop()
    fitted = np.empty(ys.size)
    start = 0
    for v, e in zip(vals, ends, strict=True):
        fitted[start:e + 1] = v
        start = e + 1
    ux, inv = np.unique(xs, return_inverse=True)
    uf = np.bincount(inv, weights=fitted) / np.bincount(inv)
    return ux, uf


def _labelled(frame: DriftFrame) -> np.ndarray:
    if frame.label is None:
        return np.zeros(frame.n, dtype=bool)
    return np.array([v is not None for v in frame.label.tolist()], dtype=bool)


class PerformanceDrift(DriftCalculator):
    """Accuracy / macro-F1 vs the labelled reference; CBPE estimate when labels are missing."""

    signal = "performance"
    method = "realized"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 30, max_drop: float = 0.05,
                 n_bootstrap: int = 200, seed: int = 0) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        self.max_drop = max_drop
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self._correct = np.zeros(0, dtype=bool)
        self._pred = np.zeros(0, dtype=object)
        self._true = np.zeros(0, dtype=object)
        self._knots: tuple[np.ndarray, np.ndarray] = (np.zeros(1), np.zeros(1))

    def _count(self, frame: DriftFrame) -> int:
        return frame.n

    def fit(self, reference: DriftFrame) -> PerformanceDrift:
        have = _labelled(reference)
        self._n_reference = int(have.sum())
        if self._n_reference >= self.min_rows:
            self._fit(reference.take(np.flatnonzero(have)))
        return self

    def _fit(self, reference: DriftFrame) -> None:
        assert reference.label is not None
        self._pred = reference.predicted_label.astype(str)
        self._true = reference.label.astype(str)
        self._correct = self._pred == self._true
        self._knots = isotonic_fit(reference.confidence, self._correct.astype(np.float64))

    def compute(self, current: DriftFrame) -> DriftResult:
        if self._n_reference is not None and self._n_reference < self.min_rows:
            return self.result(statistic=None, p_value=None, drifted=False, n_current=current.n,
                               status="insufficient_data",
                               details={"min_rows": self.min_rows,
                                        "reason": f"needs at least {self.min_rows} labelled "
                                                  "reference rows"})
        return super().compute(current)

    def _compute(self, current: DriftFrame) -> DriftResult:
        have = _labelled(current)
        if have.sum() >= self.min_rows:
            return self._realized(current.take(np.flatnonzero(have)), current.n)
        return self._estimated(current, int(have.sum()))

    def _realized(self, cur: DriftFrame, n_current: int) -> DriftResult:
        from scipy import stats

        assert cur.label is not None
        pred, true = cur.predicted_label.astype(str), cur.label.astype(str)
        correct = pred == true
        ka, na = int(self._correct.sum()), self._correct.size
        kb, nb = int(correct.sum()), correct.size
        p = float(stats.fisher_exact([[ka, na - ka], [kb, nb - kb]], alternative="greater").pvalue)
        f1_ref, f1_cur = macro_f1(self._true, self._pred), macro_f1(true, pred)
        classes, codes = np.unique(np.concatenate([self._pred, self._true, pred, true]),
                                   return_inverse=True)
        k = classes.size
        rp, rt, cp, ct = np.split(codes, np.cumsum([na, na, nb]))
        rng = np.random.default_rng(self.seed)
        diffs = np.empty(self.n_bootstrap)
        for b in range(self.n_bootstrap):
            i = rng.integers(0, na, na)
            j = rng.integers(0, nb, nb)
            diffs[b] = _macro_f1_codes(ct[j], cp[j], k) - _macro_f1_codes(rt[i], rp[i], k)
        self.method = "realized"
        details = {"reference_accuracy": ka / na, "current_accuracy": kb / nb,
                   "accuracy_drop": ka / na - kb / nb, "test": "fisher_exact_one_sided",
                   "reference_macro_f1": f1_ref, "current_macro_f1": f1_cur,
                   "macro_f1_diff_ci95": [float(np.quantile(diffs, 0.025)),
                                          float(np.quantile(diffs, 0.975))],
                   "n_labelled": nb}
        return self.result(statistic=ka / na - kb / nb, p_value=min(1.0, p),
                           drifted=min(1.0, p) < self.threshold, n_current=n_current,
                           details=details)

    def _estimated(self, cur: DriftFrame, n_labelled: int) -> DriftResult:
        from scipy import stats

        xs, fs = self._knots
        p_correct = np.interp(cur.confidence, xs, fs)
        est = float(p_correct.mean())
        se = float(np.sqrt(np.sum(p_correct * (1 - p_correct)))) / max(cur.n, 1)
        z = float(stats.norm.ppf(1 - self.threshold / 2))
        ref_acc = float(self._correct.mean())
        lo, hi = max(0.0, est - z * se), min(1.0, est + z * se)
        self.method = "cbpe"
        details = {"reference_accuracy": ref_acc, "estimated_accuracy": est,
                   "ci": [lo, hi], "ci_level": 1 - self.threshold, "max_drop": self.max_drop,
                   "calibration": "isotonic", "n_labelled": n_labelled,
                   "note": "estimate without p-value; not part of the Holm verdict"}
        return self.result(statistic=ref_acc - est, p_value=None,
                           drifted=hi < ref_acc - self.max_drop, n_current=cur.n, details=details)
