"""The KLL sketch: order-independent merges, ranks within its own error bound, serialisation,
and a KS test on sketches that stays calibrated because it subtracts that bound."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import CalculatorError
from monitor.lake.kll import KLLSketch, ks_critical, merge_sketches, sketch_ks


def _exact_cdf(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(values), grid, side="right") / values.size


def _same(a: KLLSketch, b: KLLSketch) -> bool:
    return ((a.k, a.n, a.err, a.compactions) == (b.k, b.n, b.err, b.compactions)
            and len(a.levels) == len(b.levels)
            and all(np.array_equal(x, y) for x, y in zip(a.levels, b.levels, strict=True)))


def _parts(rng: np.random.Generator, n: int, cuts: int) -> list[np.ndarray]:
    values = rng.lognormal(3.0, 0.8, n)
    edges = np.sort(rng.choice(np.arange(1, n), size=cuts - 1, replace=False))
    return np.split(values, edges)


def test_merge_does_not_depend_on_the_order_of_its_inputs() -> None:
    rng = np.random.default_rng(0)
    sketches = [KLLSketch.from_values(p, k=32) for p in _parts(rng, 6000, 11)]
    merged = merge_sketches(sketches)
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(sketches))
        assert _same(merge_sketches([sketches[i] for i in order]), merged)
    # the build sorts its input: the order of the rows does not matter either
    values = np.concatenate([rng.normal(size=500), rng.lognormal(size=700)])
    assert _same(KLLSketch.from_values(values, k=16), KLLSketch.from_values(values[::-1], k=16))


@pytest.mark.parametrize("k", [8, 64, 500])
def test_ranks_stay_within_the_tracked_error_bound(k: int) -> None:
    rng = np.random.default_rng(k)
    parts = _parts(rng, 20000, 13)
    values = np.concatenate(parts)
    grid = np.quantile(values, np.linspace(0, 1, 2001))
    built = [KLLSketch.from_values(p, k=k) for p in parts]
    once = merge_sketches(built)
    staged = merge_sketches([merge_sketches(built[:4]), merge_sketches(built[4:9]),
                             *built[9:]])
    whole = KLLSketch.from_values(values, k=k)
    for sk in (once, staged, whole):
        assert sk.n == values.size and sk.size <= sk.k * len(sk.levels)
        err = np.max(np.abs(sk.cdf(grid) - _exact_cdf(values, grid)))
        assert err <= sk.epsilon + 1e-12
    assert whole.epsilon < 2 / k and once.epsilon < 4 / k
    # quantiles: the exact rank of the returned item is within err of q * n
    q = np.array([0.01, 0.5, 0.95, 0.99])
    ranks = np.searchsorted(np.sort(values), once.quantile(q), side="right")
    assert np.all(np.abs(ranks - q * values.size) <= once.err + 1)


def test_small_inputs_are_exact_and_bad_inputs_are_refused() -> None:
    sk = KLLSketch.from_values([3.0, np.nan, 1.0, 2.0, np.inf], k=8)
    assert (sk.n, sk.err, sk.epsilon) == (3, 0, 0.0)
    assert sk.quantile([0.0, 0.5, 1.0]).tolist() == [1.0, 2.0, 3.0]
    assert sk.cdf([0.5, 1.0, 2.5, 9.0]).tolist() == [0.0, 1 / 3, 2 / 3, 1.0]
    with pytest.raises(CalculatorError, match="different k"):
        merge_sketches([sk, KLLSketch.from_values([1.0], k=16)])
    with pytest.raises(CalculatorError, match="empty"):
        KLLSketch.from_values([], k=8).quantile(0.5)


def test_row_round_trip_is_exact() -> None:
    rng = np.random.default_rng(3)
    sk = merge_sketches([KLLSketch.from_values(p, k=16) for p in _parts(rng, 3000, 5)])
    assert _same(KLLSketch.from_row(sk.to_row()), sk)
    row = sk.to_row()
    row["n"] = int(row["n"]) + 1  # type: ignore[call-overload]
    with pytest.raises(CalculatorError, match="sum to n"):
        KLLSketch.from_row(row)


def _rejections(k: int, n: int, trials: int, alpha: float, scale: float = 1.0
                ) -> tuple[int, int, int]:
    """(naive sketch KS, error-aware sketch KS, exact KS on the raw values) rejections over
    ``trials`` windows: reference one sketch, current merged from 8 partitions."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(1000 + k)
    naive = aware = exact = 0
    for _ in range(trials):
        ref_v = rng.lognormal(3.0, 0.6, n)
        cur_v = scale * rng.lognormal(3.0, 0.6, n)
        ref = KLLSketch.from_values(ref_v, k=k)
        cur = merge_sketches([KLLSketch.from_values(p, k=k) for p in np.array_split(cur_v, 8)])
        ks = sketch_ks(ref, cur)
        naive += ks["p_value_naive"] < alpha
        aware += ks["p_value"] < alpha
        exact += ks_2samp(ref_v, cur_v).pvalue < alpha
    return naive, aware, exact


def test_error_aware_sketch_ks_is_calibrated_where_the_naive_one_is_not() -> None:
    alpha, trials = 0.05, 200
    naive, aware, _ = _rejections(k=24, n=4000, trials=trials, alpha=alpha)
    # a small sketch's distance error alone crosses the critical value: naive is miscalibrated
    assert naive > 2 * alpha * trials
    assert aware <= alpha * trials
    naive, aware, _ = _rejections(k=1024, n=4000, trials=trials, alpha=alpha)
    assert aware <= alpha * trials and naive <= 2 * alpha * trials


def test_error_aware_sketch_ks_keeps_power_at_the_default_size() -> None:
    _, aware, exact = _rejections(k=4096, n=4000, trials=40, alpha=0.05, scale=1.06)
    assert exact >= 30 and aware >= exact - 4
    assert ks_critical(50000, 50000, 0.05) == pytest.approx(1.358 * np.sqrt(2 / 50000), rel=0.01)
