"""Noise-aware checkpoint selection: the paired permutation test and the selector built on it."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift.performance import macro_f1
from monitor.retrain.metrics import paired_f1_worse_pvalue
from monitor.retrain.selection import CheckpointSelector, Verdict

Y = np.array([0, 1] * 25)  # 50 balanced validation rows


def _pred(wrong: list[int]) -> np.ndarray:
    """Predictions equal to Y except at the rows in ``wrong``."""
    p = Y.copy()
    p[wrong] = 1 - p[wrong]
    return p


def _offer(sel: CheckpointSelector, step: int, wrong: list[int]) -> Verdict:
    p = _pred(wrong)
    return sel.offer(step, macro_f1(Y, p, 2), p)


@pytest.mark.parametrize(("extra_wrong", "p_exact"), [(1, 0.5), (3, 0.125), (5, 1 / 32)])
def test_exact_pvalue_is_the_sign_test_when_only_the_new_one_errs(extra_wrong: int, p_exact: float) -> None:
    # k rows where only the new predictions are wrong: the 2**k swaps give P(stat >= observed) = 2**-k
    ref, new = _pred([]), _pred(list(range(extra_wrong)))
    assert paired_f1_worse_pvalue(Y, ref, new, 2) == pytest.approx(p_exact)


def test_pvalue_is_one_when_the_new_predictions_are_not_worse() -> None:
    a = _pred([0, 1])
    assert paired_f1_worse_pvalue(Y, a, a, 2) == 1.0
    assert paired_f1_worse_pvalue(Y, _pred([0, 1, 2]), a, 2) == 1.0


def test_compensating_disagreements_are_not_significant() -> None:
    # 6 rows only the new one gets wrong, 4 rows only the reference gets wrong: net 2 rows, not significant
    ref, new = _pred([10, 11, 12, 13]), _pred([0, 1, 2, 3, 4, 5])
    p = paired_f1_worse_pvalue(Y, ref, new, 2)
    assert 0.2 < p < 0.5  # exact: P(Binomial(10, 1/2) >= 6) = 0.377
    assert p == pytest.approx(386 / 1024)


def test_large_disagreement_sets_use_seeded_monte_carlo() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 3000)
    ref = np.where(rng.random(3000) < 0.10, (y + 1) % 3, y)
    new = np.where(rng.random(3000) < 0.18, (y + 2) % 3, y)
    p = paired_f1_worse_pvalue(y, ref, new, 3, n_perm=500, seed=1)
    assert p == pytest.approx(1 / 501)  # a ~5-point drop on 3,000 rows: no random swap reaches it
    assert paired_f1_worse_pvalue(y, ref, new, 3, n_perm=500, seed=1) == p
    close = np.where(rng.random(3000) < 0.002, (y + 2) % 3, ref)  # a handful more errors
    assert paired_f1_worse_pvalue(y, ref, close, 3, n_perm=500, seed=1) > 0.01


def test_pvalue_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        paired_f1_worse_pvalue(Y, Y, Y[:-1], 2)


def test_a_later_checkpoint_level_with_the_top_is_kept() -> None:
    sel = CheckpointSelector(Y, 2)
    v0 = _offer(sel, 10, [0, 1])
    assert v0.top
    v = _offer(sel, 20, [0, 1, 2, 3])  # two more rows wrong than the top: p = 0.25
    assert v.keep and not v.worse and v.p_value == pytest.approx(0.25)
    assert sel.kept_step == 20 and sel.top_f1 == pytest.approx(0.96)


def test_a_significantly_worse_checkpoint_is_not_kept() -> None:
    sel = CheckpointSelector(Y, 2)
    _offer(sel, 10, [])
    v = _offer(sel, 20, list(range(6)))  # p = 1/64
    assert v.worse and not v.keep and sel.kept_step == 10
    assert sel.kept_f1 == 1.0


def test_alpha_one_is_the_classic_highest_score_rule() -> None:
    sel = CheckpointSelector(Y, 2, alpha=1.0)
    _offer(sel, 10, [0])
    assert _offer(sel, 20, [0, 1]).worse and sel.kept_step == 10
    assert _offer(sel, 30, [5]).keep and sel.kept_step == 30  # a tie goes to the later


def test_the_top_is_the_reference_so_small_drops_cannot_accumulate() -> None:
    sel = CheckpointSelector(Y, 2)
    _offer(sel, 0, [])
    kept = [_offer(sel, 10 * k, list(range(k))).keep for k in range(1, 9)]
    # each checkpoint is one row worse than the previous; against the top, 5 rows is significant
    assert kept == [True, True, True, True, False, False, False, False]
    assert sel.kept_step == 40


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        CheckpointSelector(Y, 2, alpha=0.0)
    with pytest.raises(ValueError, match="predictions for 50 rows"):
        CheckpointSelector(Y, 2).offer(1, 0.5, Y[:10])
