"""Black-box shift detection (BBSD) on the full probability vector.

Rabanser, Günnemann & Lipton, "Failing Loudly" (NeurIPS 2019): the model's softmax outputs are
a low-dimensional representation that moves under label-prior, out-of-scope and covariate
shifts alike. One two-sample KS test per class probability, combined by Bonferroni on the
minimum p-value (valid under any dependence between the classes). With two classes the
columns are complementary, so one KS test is run. Tied probabilities (saturated softmax in
float32) switch each KS to the exact tie-group permutation of :func:`monitor.drift.stats.ks_test`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.stats import bonferroni_min, ks_test
from monitor.errors import CalculatorError

__all__ = ["BBSDDrift"]


def _column_labels(probs: np.ndarray, predicted: np.ndarray) -> list[str]:
    """Name each probability column by the label predicted most often when it is the argmax."""
    arg = probs.argmax(axis=1)
    names = []
    for j in range(probs.shape[1]):
        labs = predicted[arg == j].tolist()
        names.append(max(set(labs), key=labs.count) if labs else f"class_{j}")
    return [str(n) for n in names]


class BBSDDrift(DriftCalculator):
    """Per-class KS on the probability vector, Bonferroni-combined."""

    signal = "bbsd"
    method = "ks_bonferroni"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, n_permutations: int = 1000,
                 seed: int = 0) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        self.n_permutations = n_permutations
        self.seed = seed
        self._probs = np.zeros((0, 0))
        self._names: list[str] = []

    def _count(self, frame: DriftFrame) -> int:
        return 0 if frame.probs is None else int(frame.probs.shape[0])

    def _fit(self, reference: DriftFrame) -> None:
        assert reference.probs is not None
        self._probs = reference.probs.astype(np.float64)
        self._names = _column_labels(self._probs, reference.predicted_label)

    def _compute(self, current: DriftFrame) -> DriftResult:
        assert current.probs is not None
        cur = current.probs.astype(np.float64)
        if cur.shape[1] != self._probs.shape[1]:
            raise CalculatorError(f"bbsd: reference has {self._probs.shape[1]} probabilities per row, "
                                  f"current has {cur.shape[1]}")
        k = cur.shape[1]
        cols = [1] if k == 2 else list(range(k))
        rng = np.random.default_rng(self.seed)
        per_class: dict[str, dict[str, Any]] = {}
        for j in cols:
            x, y = self._probs[:, j], cur[:, j]
            stat, p, test = ks_test(x, y, rng=rng, n_permutations=self.n_permutations)
            per_class[self._names[j]] = {"statistic": stat, "p_value": p, "test": test,
                                         "reference_mean": float(x.mean()),
                                         "current_mean": float(y.mean())}
        p_value = bonferroni_min([v["p_value"] for v in per_class.values()])
        lead = min(per_class, key=lambda c: per_class[c]["p_value"])
        return self.result(statistic=float(per_class[lead]["statistic"]), p_value=p_value,
                           drifted=p_value < self.threshold, n_current=cur.shape[0],
                           details={"combination": "bonferroni", "statistic_of": lead,
                                    "n_tests": len(cols), "per_class": per_class})
