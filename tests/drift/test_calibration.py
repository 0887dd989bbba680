"""Honest p-values under no shift, power under real shift (real MiniLM on the shared data)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from monitor.drift.frame import DriftFrame
from monitor.drift.stats import ks_test
from monitor.drift.suite import DriftSuite
from tests.drift.conftest import synthetic_frame

ALPHA = 0.05
RESAMPLES = 200
#: Small permutation counts keep 200 resamples fast; (k+1)/(P+1) p-values stay valid.
FAST = {"embedding": {"n_permutations": 200, "per_class_permutations": 0},
        "confidence": {"n_permutations": 300}, "tokenizer": {"n_permutations": 300},
        "class_distribution": {"n_permutations": 500, "n_bootstrap": 10},
        "performance": {"n_bootstrap": 10}, "bbsd": {"n_permutations": 300}}
SIGNALS = ("embedding", "bbsd", "class_distribution", "confidence", "unknown_input", "tokenizer",
           "performance")
CONTINUOUS = ("embedding", "confidence", "bbsd", "unknown_input")
# 3 binomial standard errors above the nominal level over RESAMPLES trials.
VERDICT_MAX = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / RESAMPLES)


def _rates(draw: Callable[[np.random.Generator], tuple[DriftFrame, DriftFrame]],
           seed: int) -> tuple[dict[str, float], float, float]:
    rng = np.random.default_rng(seed)
    hits = {s: 0 for s in SIGNALS}
    tested = {s: 0 for s in SIGNALS}
    verdicts = 0
    n_tok_hits = 0
    for r in range(RESAMPLES):
        ref, cur = draw(rng)
        report = DriftSuite(SIGNALS, alpha=ALPHA, options=FAST, seed=r).fit(ref).compute(cur)
        for s in report.signals:
            assert s.status == "ok", (s.signal, s.details)
            assert s.p_value is not None and 0 < s.p_value <= 1
            tested[s.signal] += 1
            hits[s.signal] += s.p_value < ALPHA
        tok = report.signal("tokenizer")
        assert tok is not None
        n_tok_hits += tok.details["tests"]["n_tokens"]["p_value"] < ALPHA
        verdicts += report.drifted
    return ({s: hits[s] / tested[s] for s in SIGNALS}, verdicts / RESAMPLES,
            n_tok_hits / RESAMPLES)


def _check(rates: dict[str, float], verdict: float, n_tokens_rate: float) -> None:
    for name, rate in rates.items():
        assert rate <= 0.10, f"{name}: false-positive rate {rate:.3f} at alpha {ALPHA}"
    for name in CONTINUOUS:
        assert rates[name] >= 0.01, f"{name}: uselessly conservative ({rates[name]:.3f})"
    assert 0.01 <= n_tokens_rate <= 0.10, f"n_tokens KS rate {n_tokens_rate:.3f}"
    assert verdict <= VERDICT_MAX, f"verdict false-alarm rate {verdict:.3f} > {VERDICT_MAX:.3f}"


@pytest.mark.slow
def test_no_shift_real_minilm_is_calibrated(real_frames: Callable[[str], DriftFrame]) -> None:
    pool = real_frames("amazon")

    def draw(rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        perm = rng.permutation(pool.n)
        return pool.take(perm[:400]), pool.take(perm[400:600])

    _check(*_rates(draw, seed=11))


def test_no_shift_synthetic_is_calibrated() -> None:
    def draw(rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        return synthetic_frame(300, rng, with_probs=True), synthetic_frame(120, rng, with_probs=True)

    _check(*_rates(draw, seed=12))


def test_ks_on_heavily_tied_data_is_neither_liberal_nor_dead() -> None:
    rng = np.random.default_rng(3)
    ps = []
    for _ in range(400):
        x, y = rng.poisson(3, 60).astype(float), rng.poisson(3, 40).astype(float)
        _, p, method = ks_test(x, y, rng=rng, n_permutations=300)
        assert method == "ks_permutation"
        ps.append(p)
    rate = float(np.mean(np.asarray(ps) < ALPHA))
    assert 0.02 <= rate <= 0.09


@pytest.mark.slow
@pytest.mark.parametrize("target", ["yelp", "imdb"])
def test_domain_shift_is_detected_at_n200(real_frames: Callable[[str], DriftFrame],
                                          target: str) -> None:
    ref_pool, cur_pool = real_frames("amazon"), real_frames(target)
    rng = np.random.default_rng(5)
    detected = 0
    for r in range(20):
        ref = ref_pool.take(rng.choice(ref_pool.n, 500, replace=False))
        cur = cur_pool.take(rng.choice(cur_pool.n, 200, replace=False))
        res = DriftSuite(["embedding"], seed=r).fit(ref).compute(cur).signals[0]
        detected += res.drifted
    assert detected / 20 >= 0.95


@pytest.mark.slow
def test_label_prior_shift_is_detected_by_class_distribution(
        real_frames: Callable[[str], DriftFrame]) -> None:
    pool = real_frames("amazon")
    assert pool.label is not None
    rng = np.random.default_rng(6)
    detected = 0
    for r in range(20):
        perm = rng.permutation(pool.n)
        ref_idx, rest = perm[:400], perm[400:]
        pos = rest[pool.label[rest] == "1"]
        neg = rest[pool.label[rest] == "0"]
        cur_idx = np.concatenate([rng.choice(pos, 160, replace=False), rng.choice(neg, 40, replace=False)])
        report = DriftSuite(["class_distribution"], seed=r).fit(pool.take(ref_idx)).compute(
            pool.take(cur_idx))
        res = report.signals[0]
        detected += res.drifted
        est = res.details["bbse"]["estimated_prior"][res.details["bbse"]["classes"].index("1")]
        assert est > 0.6  # BBSE sees through the classifier's errors towards the true 0.8
    assert detected / 20 >= 0.95


@pytest.mark.parametrize("opts", [{"pca_dims": 4}, {"method": "domain_classifier"},
                                  {"method": "centroid"}], ids=["mmd-pca", "domain", "centroid"])
def test_embedding_alternatives_are_valid_under_no_shift(opts: dict[str, object]) -> None:
    rng = np.random.default_rng(13)
    options = {"embedding": {**opts, "n_permutations": 100}} if "method" not in opts or \
        opts["method"] == "domain_classifier" else {"embedding": {**opts, "n_resamples": 100}}
    if "pca_dims" in opts:
        options["embedding"]["per_class_permutations"] = 0
    trials = 100
    hits = 0
    for r in range(trials):
        ref, cur = synthetic_frame(200, rng), synthetic_frame(100, rng)
        res = DriftSuite(["embedding"], options=options, seed=r).fit(ref).compute(cur).signals[0]
        assert res.p_value is not None
        hits += res.p_value < ALPHA
    assert hits / trials <= 0.12
