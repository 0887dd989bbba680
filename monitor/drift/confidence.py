"""Confidence drift: KS two-sample on the max class probability.

Softmax confidences of a fine-tuned model pile up near 1.0, and float32
rounding turns many of them into exact ties; the asymptotic KS distribution
is wrong for tied data, so ties switch the test to an exact permutation over
tie groups (:func:`monitor.drift.stats.ks_test`). Details: Wasserstein
distance, mean drop, low-confidence share (threshold configurable) and
prediction entropy when ``probs`` is present.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.stats import ks_test

__all__ = ["ConfidenceDrift"]


def _entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=1))


class ConfidenceDrift(DriftCalculator):
    """KS test on max-probability, with distribution summaries in details."""

    signal = "confidence"
    method = "ks"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, low_confidence: float = 0.6,
                 n_permutations: int = 1000, seed: int = 0) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        self.low_confidence = low_confidence
        self.n_permutations = n_permutations
        self.seed = seed
        self._conf = np.zeros(0)
        self._entropy: np.ndarray | None = None

    def _fit(self, reference: DriftFrame) -> None:
        self._conf = reference.confidence
        self._entropy = None if reference.probs is None else _entropy(reference.probs)

    def _compute(self, current: DriftFrame) -> DriftResult:
        from scipy.stats import wasserstein_distance

        x, y = self._conf, current.confidence
        stat, p, test = ks_test(x, y, rng=np.random.default_rng(self.seed),
                                n_permutations=self.n_permutations)
        details: dict[str, Any] = {
            "test": test,
            "wasserstein": float(wasserstein_distance(x, y)),
            "reference_mean": float(x.mean()), "current_mean": float(y.mean()),
            "mean_drop": float(x.mean() - y.mean()),
            "low_confidence_threshold": self.low_confidence,
            "reference_low_share": float((x < self.low_confidence).mean()),
            "current_low_share": float((y < self.low_confidence).mean()),
        }
        if self._entropy is not None and current.probs is not None:
            ent = _entropy(current.probs)
            details["reference_entropy"] = float(self._entropy.mean())
            details["current_entropy"] = float(ent.mean())
        return self.result(statistic=stat, p_value=p, drifted=p < self.threshold,
                           n_current=current.n, details=details)
