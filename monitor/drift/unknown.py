"""Unknown-input signal: traffic the model has no class for.

Two one-sided tests, Bonferroni-combined:

* **entropy** — prediction entropy of the current rows is *higher* than the reference's
  (Mann–Whitney U, one-sided; needs ``probs``): the model hesitates between classes;
* **distance** — cosine distance of each row's embedding to the *nearest* reference class
  centroid is larger (Mann–Whitney U, one-sided; needs ``embedding``): rows land away from
  every class. The centroids are fitted on one random half of the reference and the
  reference distances measured on the other half, so under no shift the reference half and
  the current window are exchangeable and the test stays valid.

Details give the share of current rows beyond the reference's 99th distance percentile
(``far_share``; 1 % expected) and the mean entropies, for diagnosis and reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.stats import bonferroni_min
from monitor.errors import CalculatorError

__all__ = ["UnknownInputDrift", "prediction_entropy"]


def prediction_entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of a probability matrix."""
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=1))


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norm == 0, 1.0, norm))


class UnknownInputDrift(DriftCalculator):
    """Entropy up and/or farther from every reference class centroid (one-sided tests)."""

    signal = "unknown_input"
    method = "entropy_distance"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, far_quantile: float = 0.99,
                 seed: int = 0) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        if not 0 < far_quantile < 1:
            raise CalculatorError("unknown_input: far_quantile must be in (0, 1)")
        self.far_quantile = far_quantile
        self.seed = seed
        self._entropy: np.ndarray | None = None
        self._centroids: np.ndarray | None = None
        self._ref_dist: np.ndarray | None = None

    def _count(self, frame: DriftFrame) -> int:
        if frame.probs is None and frame.embedding is None:
            return 0
        return frame.n

    def _fit(self, reference: DriftFrame) -> None:
        self._entropy = None if reference.probs is None else prediction_entropy(reference.probs)
        self._centroids = self._ref_dist = None
        if reference.embedding is None:
            return
        emb = _unit(reference.embedding)
        half = np.random.default_rng(self.seed).permutation(reference.n) % 2 == 0
        labels = reference.predicted_label
        cents = [emb[half & (labels == lab)].mean(axis=0) for lab in sorted(set(labels[half].tolist()))]
        if not cents or (~half).sum() < self.min_rows // 2:
            return
        self._centroids = _unit(np.stack(cents))
        self._ref_dist = self._nearest(reference.embedding[~half])

    def _nearest(self, emb: np.ndarray) -> np.ndarray:
        assert self._centroids is not None
        return np.asarray(1.0 - (_unit(emb) @ self._centroids.T).max(axis=1))

    def _compute(self, current: DriftFrame) -> DriftResult:
        from scipy.stats import mannwhitneyu

        tests: dict[str, dict[str, Any]] = {}
        if self._entropy is not None and current.probs is not None:
            ent = prediction_entropy(current.probs)
            res = mannwhitneyu(ent, self._entropy, alternative="greater")
            tests["entropy"] = {"test": "mann_whitney_greater", "statistic": float(ent.mean()
                                                                                    - self._entropy.mean()),
                                "p_value": float(res.pvalue),
                                "reference_mean": float(self._entropy.mean()),
                                "current_mean": float(ent.mean())}
        if self._ref_dist is not None and current.embedding is not None:
            dist = self._nearest(current.embedding)
            res = mannwhitneyu(dist, self._ref_dist, alternative="greater")
            cut = float(np.quantile(self._ref_dist, self.far_quantile))
            tests["distance"] = {"test": "mann_whitney_greater",
                                 "statistic": float(dist.mean() - self._ref_dist.mean()),
                                 "p_value": float(res.pvalue),
                                 "reference_mean": float(self._ref_dist.mean()),
                                 "current_mean": float(dist.mean()), "far_cutoff": cut,
                                 "far_share": float((dist > cut).mean()),
                                 "expected_far_share": 1.0 - self.far_quantile}
        if not tests:
            return self.result(statistic=None, p_value=None, drifted=False, n_current=current.n,
                               status="insufficient_data",
                               details={"reason": "needs probs or embeddings on both windows"})
        p = bonferroni_min([t["p_value"] for t in tests.values()])
        lead = min(tests, key=lambda k: tests[k]["p_value"])
        return self.result(statistic=float(tests[lead]["statistic"]), p_value=p,
                           drifted=p < self.threshold, n_current=current.n,
                           details={"combination": "bonferroni", "statistic_of": lead, "tests": tests})
