"""The all-rows RFF/Hotelling embedding test: kernel approximation, exact merging, calibration
on real MiniLM embeddings, and power against the 1k-subsample MMD at large n."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from monitor.drift.frame import DriftFrame
from monitor.drift.rff import RFFHotellingDrift, RFFMap, RFFMoments, class_moments, hotelling
from monitor.drift.suite import DriftSuite
from monitor.errors import CalculatorError
from tests.drift.conftest import synthetic_frame

ALPHA = 0.05


def _max_fpr(trials: int, alpha: float = ALPHA) -> float:
    """Three binomial standard errors above the nominal level."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def test_features_approximate_the_rbf_kernel_on_the_sphere() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8))
    fmap = RFFMap(dim=8, n_features=4096, seed=1)
    f = fmap.transform(x)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.exp(-0.5 * ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1))
    assert np.abs(f @ f.T - exact).max() < 0.08
    # the map is a pure function of its spec
    again = RFFMap.from_spec(fmap.spec).transform(x)
    assert np.array_equal(f, again)


def test_moments_merge_exactly() -> None:
    rng = np.random.default_rng(1)
    f = RFFMap(dim=6, n_features=16).transform(rng.normal(size=(500, 6)))
    whole = RFFMoments.of(f)
    parts = RFFMoments.of(f[:100]) + RFFMoments.of(f[100:333]) + RFFMoments.of(f[333:])
    assert parts.n == whole.n
    np.testing.assert_allclose(parts.total, whole.total, rtol=1e-12)
    np.testing.assert_allclose(parts.outer, whole.outer, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(parts.scatter(), (f - f.mean(0)).T @ (f - f.mean(0)), atol=1e-9)


def test_too_few_rows_for_the_features_is_insufficient_not_silent() -> None:
    rng = np.random.default_rng(2)
    calc = RFFHotellingDrift(n_features=64, min_rows=5)
    calc.fit(synthetic_frame(30, rng))
    res = calc.compute(synthetic_frame(20, rng))
    assert res.status == "insufficient_data" and res.p_value is None
    assert hotelling(RFFMoments.zeros(4), RFFMoments.zeros(4)) is None


def test_dimension_mismatch_raises() -> None:
    rng = np.random.default_rng(3)
    calc = RFFHotellingDrift().fit(synthetic_frame(200, rng, d=16))
    with pytest.raises(CalculatorError, match="dimension"):
        calc.compute(synthetic_frame(200, rng, d=8))


def test_no_shift_synthetic_is_calibrated_and_not_dead() -> None:
    rng = np.random.default_rng(4)
    trials = 300
    ps = np.array([RFFHotellingDrift(n_features=32).fit(synthetic_frame(600, rng))
                   .compute(synthetic_frame(300, rng)).p_value for _ in range(trials)],
                  dtype=float)
    rate = float((ps < ALPHA).mean())
    assert rate <= _max_fpr(trials), rate
    assert rate >= 0.01, f"uselessly conservative ({rate:.3f})"


@pytest.mark.slow
def test_no_shift_real_minilm_is_calibrated(real_frames: Callable[[str], DriftFrame]) -> None:
    """Resampled halves of the same real MiniLM pool: FPR <= alpha (within 3 SE), at equal
    and at unequal sizes, with the default 64 features on 384-d embeddings."""
    pool = real_frames("amazon")
    assert pool.embedding is not None
    fmap = RFFMap(dim=pool.embedding.shape[1])
    feats, labels = fmap.transform(pool.embedding), pool.predicted_label
    rng = np.random.default_rng(5)
    trials = 200
    for n_ref, n_cur in ((500, 500), (800, 200)):
        hits = 0
        for _ in range(trials):
            perm = rng.permutation(pool.n)
            ref, cur = perm[:n_ref], perm[n_ref:n_ref + n_cur]
            calc = RFFHotellingDrift.from_moments(fmap, class_moments(feats[ref], labels[ref]),
                                                  per_class_min_rows=10**9)
            res = calc.compare(class_moments(feats[cur], labels[cur]))
            assert res.status == "ok" and res.p_value is not None
            hits += res.p_value < ALPHA
        rate = hits / trials
        assert rate <= _max_fpr(trials), (n_ref, n_cur, rate)
        assert rate >= 0.01, (n_ref, n_cur, rate)
    # the frame path gives the same answer as the moments path
    perm = rng.permutation(pool.n)
    direct = RFFHotellingDrift().fit(pool.take(perm[:500])).compute(pool.take(perm[500:]))
    via = RFFHotellingDrift.from_moments(fmap, class_moments(feats[perm[:500]], labels[perm[:500]]))
    assert direct.p_value == pytest.approx(via.compare(
        class_moments(feats[perm[500:]], labels[perm[500:]])).p_value, rel=1e-9)


@pytest.mark.slow
def test_real_domain_shift_is_detected(real_frames: Callable[[str], DriftFrame]) -> None:
    amazon, yelp = real_frames("amazon"), real_frames("yelp")
    calc = RFFHotellingDrift().fit(amazon)
    res = calc.compute(yelp.take(np.arange(200)))
    assert res.drifted and res.p_value is not None and res.p_value < 1e-6


def test_all_rows_beats_the_subsampled_mmd_at_large_n() -> None:
    """A small mean shift in 50k-row windows: the all-rows test finds it, the MMD on 1,000
    rows per side mostly does not (the issue's measurement, on a smaller scale)."""
    rng = np.random.default_rng(6)
    hits_rff = hits_mmd = 0
    trials = 4
    for t in range(trials):
        ref = synthetic_frame(20_000, rng, d=16)
        cur = synthetic_frame(20_000, rng, d=16, shift=0.08)
        hits_rff += bool(RFFHotellingDrift(threshold=0.01).fit(ref).compute(cur).drifted)
        suite = DriftSuite(["embedding"], alpha=0.01, seed=t,
                           options={"embedding": {"n_permutations": 200,
                                                  "per_class_permutations": 0,
                                                  "all_rows_past_max": False}})
        hits_mmd += bool(suite.fit(ref).compute(cur).drifted)
    assert hits_rff == trials
    assert hits_mmd <= trials // 2


def test_suite_uses_the_all_rows_test_past_max_rows() -> None:
    rng = np.random.default_rng(7)
    ref, small, big = (synthetic_frame(1500, rng), synthetic_frame(300, rng),
                       synthetic_frame(1200, rng))
    suite = DriftSuite(["embedding"], options={"embedding": {"max_rows": 500,
                                                             "n_permutations": 100,
                                                             "per_class_permutations": 0}})
    suite.fit(ref)
    small_res, big_res = suite.compute(small).signals[0], suite.compute(big).signals[0]
    assert small_res.method == "mmd"
    assert big_res.method == "rff_hotelling" and big_res.n_current == 1200
