"""Class-distribution drift: chi-square on predicted-label counts, JS distance, PSI, BBSE.

The chi-square test of homogeneity uses the chi-square distribution when
every expected count is at least 5 and a Monte-Carlo exact (fixed margins)
p-value otherwise, so it stays valid with rare classes and small windows.
Labels never seen in the reference are counted (they make the table
larger), not dropped. When the reference carries true labels, black-box
shift estimation (BBSE, Lipton et al. 2018) inverts the reference confusion
matrix to estimate the current *true*-label prior, reported in details.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.stats import chi_square_counts

__all__ = ["ClassDistributionDrift", "bbse_prior"]


def _dist(counts: dict[str, int], labels: list[str]) -> np.ndarray:
    v = np.array([counts.get(k, 0) for k in labels], dtype=np.float64)
    return v / v.sum() if v.sum() else v


def bbse_prior(pred_ref: np.ndarray, true_ref: np.ndarray, pred_cur: np.ndarray) -> dict[str, Any]:
    """Estimate the current true-label prior from predicted labels (BBSE).

    ``C[i, j] = P_ref(pred = i, true = j)``; the current predicted
    distribution ``q`` satisfies ``q = C w`` with importance weights
    ``w_j = p_cur(j) / p_ref(j)``. Solved by least squares, clipped at 0.
    """
    classes = sorted(set(true_ref.tolist()) | set(pred_ref.tolist()), key=str)
    idx = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    conf = np.zeros((k, k))
    for p, t in zip(pred_ref.tolist(), true_ref.tolist(), strict=True):
        conf[idx[p], idx[t]] += 1
    conf /= max(len(true_ref), 1)
    q = np.zeros(k)
    unseen = 0
    for p in pred_cur.tolist():
        if p in idx:
            q[idx[p]] += 1
        else:
            unseen += 1
    q /= max(q.sum(), 1)
    w, *_ = np.linalg.lstsq(conf, q, rcond=None)
    w = np.clip(w, 0.0, None)
    p_ref = conf.sum(axis=0)
    prior = w * p_ref
    prior = prior / prior.sum() if prior.sum() > 0 else p_ref
    return {"classes": classes, "reference_prior": p_ref.tolist(), "estimated_prior": prior.tolist(),
            "weights": w.tolist(), "condition_number": float(np.linalg.cond(conf)),
            "unseen_predictions": unseen}


class ClassDistributionDrift(DriftCalculator):
    """Chi-square homogeneity test on predicted-label counts."""

    signal = "class_distribution"
    method = "chi2"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, n_permutations: int = 2000,
                 seed: int = 0, psi_epsilon: float = 1e-4, n_bootstrap: int = 200) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        self.n_bootstrap = n_bootstrap
        self.n_permutations = n_permutations
        self.seed = seed
        self.psi_epsilon = psi_epsilon
        self._counts: dict[str, int] = {}
        self._pred: np.ndarray = np.zeros(0, dtype=object)
        self._true: np.ndarray | None = None

    def _fit(self, reference: DriftFrame) -> None:
        self._pred = reference.predicted_label
        self._counts = dict(Counter(str(v) for v in reference.predicted_label.tolist()))
        lab = reference.label
        if lab is not None:
            have = np.array([v is not None for v in lab.tolist()], dtype=bool)
            self._true = lab[have] if have.sum() >= self.min_rows else None
            self._pred_labelled = reference.predicted_label[have]
        else:
            self._true = None

    def _bbse_interval(self, pred_cur: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        """95 % percentile-bootstrap interval of the BBSE prior (both windows resampled)."""
        assert self._true is not None
        n_ref, n_cur = self._true.size, pred_cur.size
        draws = []
        for _ in range(self.n_bootstrap):
            r = rng.integers(0, n_ref, n_ref)
            c = rng.integers(0, n_cur, n_cur)
            est = bbse_prior(self._pred_labelled[r], self._true[r], pred_cur[c])
            full = dict(zip(est["classes"], est["estimated_prior"], strict=True))
            draws.append(full)
        classes = sorted({k for d in draws for k in d}, key=str)
        mat = np.array([[d.get(k, 0.0) for k in classes] for d in draws])
        return {"interval_classes": classes, "interval_level": 0.95,
                "estimated_prior_low": np.quantile(mat, 0.025, axis=0).tolist(),
                "estimated_prior_high": np.quantile(mat, 0.975, axis=0).tolist(),
                "n_bootstrap": self.n_bootstrap}

    def _compute(self, current: DriftFrame) -> DriftResult:
        from scipy.spatial.distance import jensenshannon

        cur = dict(Counter(str(v) for v in current.predicted_label.tolist()))
        rng = np.random.default_rng(self.seed)
        stat, p, method, dof = chi_square_counts(self._counts, cur, rng=rng,
                                                 n_permutations=self.n_permutations)
        labels = sorted(set(self._counts) | set(cur))
        pr, pc = _dist(self._counts, labels), _dist(cur, labels)
        eps = self.psi_epsilon
        ar, ac = np.clip(pr, eps, None), np.clip(pc, eps, None)
        psi = float(np.sum((ac - ar) * np.log(ac / ar)))
        js = float(jensenshannon(pr, pc, base=2)) if len(labels) > 1 else 0.0
        details: dict[str, Any] = {
            "test": method, "dof": dof, "labels": labels,
            "reference_share": pr.tolist(), "current_share": pc.tolist(),
            "reference_counts": [self._counts.get(k, 0) for k in labels],
            "current_counts": [cur.get(k, 0) for k in labels],
            "unseen_labels": sorted(set(cur) - set(self._counts)),
            "js_distance": js if np.isfinite(js) else 0.0, "psi": psi,
        }
        if self._true is not None:
            details["bbse"] = bbse_prior(self._pred_labelled, self._true, current.predicted_label)
            details["bbse"].update(self._bbse_interval(current.predicted_label, rng))
        return self.result(statistic=stat, p_value=p, drifted=p < self.threshold,
                           n_current=current.n, details=details)
