"""Which checkpoint a training run keeps, and when a phase stops — aware of validation noise.

A retrain validates on a production-like slice of a few dozen labelled rows,
where macro-F1 moves in coarse, noisy steps: one row more or less right moves
it by ~2 points on 50 rows. Picking the single highest score over many
evaluations then mostly picks noise (the winner's curse: an early, barely
changed checkpoint that happened to get one more row right), and "no new
maximum for ``patience`` evaluations" stops training on a plateau that the
validation slice simply cannot resolve.

So a drop is only believed when it is significant:

- the *top* evaluation is the one with the highest macro-F1 so far (a tie
  goes to the later one);
- a later evaluation is *worse* when a one-sided paired permutation test on
  the validation rows (both checkpoints' predictions on the same rows,
  :func:`monitor.retrain.metrics.paired_f1_worse_pvalue`) says its macro-F1
  is lower than the top's at level ``alpha``; otherwise it is *level*;
- the kept checkpoint is the latest evaluation that was level with the top
  (or was the top) when it was made. Among checkpoints the validation slice
  cannot tell apart, the one that trained longest on the new data wins —
  adapting is what a retrain is for, and the promotion guard judges the
  result against the active version anyway;
- a worse evaluation counts against patience; a level one resets the count.
  A phase ends when the model gets measurably worse, not when a saturated
  validation slice stops moving.

The top stays the reference, so many small drops cannot add up unnoticed.
``alpha=1`` is the classic rule: keep the highest score (ties to the later
checkpoint) and count every evaluation below it against patience.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.retrain.metrics import paired_f1_worse_pvalue

__all__ = ["CheckpointSelector", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one evaluation means: keep this checkpoint? is it the new top? is it significantly worse?

    ``p_value`` is the paired test's p-value against the top (1.0 for a new top).
    """

    keep: bool
    top: bool
    worse: bool
    p_value: float


@dataclass(frozen=True, slots=True)
class _Scored:
    f1: float
    pred: np.ndarray


class CheckpointSelector:
    """Feed it each evaluation in order (:meth:`offer`); it says whether to keep that checkpoint.

    ``y_true`` are the validation labels (class ids) every prediction is
    scored against; ``alpha`` is the one-sided level at which a drop below
    the top counts; ``n_perm`` random swaps when the exact test is too big
    (seeded: the same inputs give the same decisions).
    """

    def __init__(self, y_true: np.ndarray, n_classes: int, *, alpha: float = 0.05,
                 n_perm: int = 2000, seed: int = 0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self._y = np.asarray(y_true, dtype=np.int64)
        self._n_classes, self._alpha = n_classes, alpha
        self._n_perm, self._seed = n_perm, seed
        self._top: _Scored | None = None
        self.kept_step: int | None = None
        self.kept_f1: float = -1.0

    @property
    def top_f1(self) -> float:
        """Highest macro-F1 offered so far (-1 before the first offer)."""
        return self._top.f1 if self._top is not None else -1.0

    def offer(self, step: int, f1: float, pred: np.ndarray) -> Verdict:
        """Judge the evaluation at ``step`` (macro-F1 ``f1`` from predictions ``pred``)."""
        pred = np.asarray(pred, dtype=np.int64)
        if pred.shape != self._y.shape:
            raise ValueError(f"{pred.shape[0] if pred.ndim else 0} predictions for {self._y.size} rows")
        top = self._top
        if top is None or f1 >= top.f1:
            self._top = _Scored(f1, pred)
            self.kept_step, self.kept_f1 = step, f1
            return Verdict(keep=True, top=True, worse=False, p_value=1.0)
        p_value = 0.0
        if self._alpha < 1.0:
            p_value = paired_f1_worse_pvalue(self._y, top.pred, pred, self._n_classes, n_perm=self._n_perm,
                                             seed=self._seed)
        level = p_value >= self._alpha
        if level:
            self.kept_step, self.kept_f1 = step, f1
        return Verdict(keep=level, top=False, worse=not level, p_value=p_value)
