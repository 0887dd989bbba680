"""The promotion guard's tests: known answers, the margin, rows needed, the three outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from monitor.errors import ConfigError
from monitor.retrain.guard import (
    Guard,
    PairedPredictions,
    judge,
    mcnemar_pvalue,
    noninferiority_pvalue,
    oos_evidence,
    paired_evidence,
    rows_needed,
    score_ci,
    sign_test_pvalue,
)


def _pairs(n: int, b: int, c: int, *, n_wrong_both: int = 0) -> PairedPredictions:
    """``n`` rows of two classes: ``b`` only the candidate right, ``c`` only the active, the rest both right
    except ``n_wrong_both``."""
    y = np.zeros(n, dtype=int)
    cand = np.zeros(n, dtype=int)
    act = np.zeros(n, dtype=int)
    act[:b] = 1
    cand[b:b + c] = 1
    cand[b + c:b + c + n_wrong_both] = 1
    act[b + c:b + c + n_wrong_both] = 1
    return PairedPredictions(y, cand, act, 2)


def test_exact_mcnemar_known_answers() -> None:
    # b=10, c=2: P[X >= 10 | X ~ Bin(12, 1/2)] = (66 + 12 + 1) / 4096
    assert mcnemar_pvalue(10, 2) == pytest.approx(79 / 4096, abs=1e-15)
    assert mcnemar_pvalue(2, 10, alternative="less") == pytest.approx(79 / 4096, abs=1e-15)
    assert mcnemar_pvalue(10, 2, alternative="two-sided") == pytest.approx(2 * 79 / 4096, abs=1e-15)
    assert mcnemar_pvalue(0, 0) == 1.0 and mcnemar_pvalue(3, 3, alternative="two-sided") == 1.0
    # matches scipy's exact binomial test
    assert mcnemar_pvalue(17, 6) == pytest.approx(stats.binomtest(17, 23, 0.5, alternative="greater").pvalue)
    assert sign_test_pvalue(5, 0) == pytest.approx(1 / 32)


def _brute_z(n: int, b: int, c: int, d: float) -> float:
    """Tango's statistic with the constrained MLE found numerically (the closed form must agree)."""
    m = n - b - c

    def nll(x: float) -> float:
        ll = (b * math.log(x + d) if b else 0.0) + (c * math.log(x) if c else 0.0)
        return -ll - m * math.log(1 - 2 * x - d)

    x = optimize.minimize_scalar(nll, bounds=(max(0.0, -d) + 1e-12, (1 - d) / 2 - 1e-12), method="bounded",
                                 options={"xatol": 1e-13}).x
    return (b - c - n * d) / math.sqrt(n * (2 * x + d - d * d))


@pytest.mark.parametrize(("n", "b", "c"), [(100, 10, 5), (60, 2, 1), (200, 3, 12), (500, 40, 41)])
def test_noninferiority_is_tangos_score_test(n: int, b: int, c: int) -> None:
    p = noninferiority_pvalue(n, b, c, 0.02)
    assert p == pytest.approx(float(stats.norm.sf(_brute_z(n, b, c, -0.02))), abs=1e-6)


def test_noninferiority_at_the_margin() -> None:
    # observed difference exactly -margin: the statistic is 0, p = 1/2 whatever n
    for n in (100, 1000, 10000):
        b, c = n // 20, n // 20 + n // 50  # effect -0.02
        assert noninferiority_pvalue(n, b, c, 0.02) == pytest.approx(0.5, abs=1e-9)
    # the same small observed loss passes a wider margin and fails a narrower one
    assert noninferiority_pvalue(1000, 50, 55, 0.05) < 0.05 < noninferiority_pvalue(1000, 50, 55, 0.0)
    # more rows with the same shares make the evidence stronger
    assert noninferiority_pvalue(2000, 100, 100, 0.02) < noninferiority_pvalue(200, 10, 10, 0.02)


def test_forgetting_is_the_other_tail() -> None:
    from monitor.retrain.guard import forgetting_pvalue

    for n, b, c in ((100, 10, 5), (300, 5, 30)):
        assert forgetting_pvalue(n, b, c, 0.02) + noninferiority_pvalue(n, b, c, 0.02) == pytest.approx(1.0)
    assert forgetting_pvalue(300, 5, 30, 0.02) < 0.05 < forgetting_pvalue(100, 10, 5, 0.02)


def test_score_interval_inverts_the_test() -> None:
    lo, hi = score_ci(100, 10, 5, 0.90)
    assert lo < 0.05 < hi
    # at the lower end the one-sided test against that margin sits at 5 %
    assert noninferiority_pvalue(100, 10, 5, -lo) == pytest.approx(0.05, abs=1e-6)


def test_rows_needed_falls_as_the_effect_grows_and_rises_with_power() -> None:
    psi = 0.2
    needed = [rows_needed(psi / 2 + d / 2, psi / 2 - d / 2) for d in (0.01, 0.02, 0.05, 0.1, 0.15)]
    assert all(isinstance(x, int) for x in needed)
    assert needed == sorted(needed, reverse=True) and len(set(needed)) == len(needed)
    assert rows_needed(0.1, 0.1) is None
    assert rows_needed(0.12, 0.08, power=0.9) > rows_needed(0.12, 0.08, power=0.8)  # type: ignore[operator]
    # Connor's formula by hand: z_a = 1.6449, z_b = 0.8416, psi = 0.15, d = 0.05
    za, zb = stats.norm.isf(0.05), stats.norm.isf(0.2)
    by_hand = (za * math.sqrt(0.15) + zb * math.sqrt(0.15 - 0.0025)) ** 2 / 0.0025
    assert rows_needed(0.1, 0.05) == math.ceil(by_hand)
    assert rows_needed(0.05, 0.1) == rows_needed(0.1, 0.05)  # to show the candidate worse


def test_rows_needed_gives_the_promised_power() -> None:
    """At the rows it asks for, the exact test detects the effect in about 80 % of seeded samples."""
    rng = np.random.default_rng(0)
    p_b, p_c = 0.09, 0.04
    n = rows_needed(p_b, p_c)
    assert n is not None
    cells = rng.multinomial(n, [p_b, p_c, 1 - p_b - p_c], size=2000)
    power = np.mean([mcnemar_pvalue(int(b), int(c)) <= 0.05 for b, c, _ in cells])
    assert 0.72 <= power <= 0.9


def test_three_outcomes() -> None:
    g = Guard()
    original = _pairs(2000, 40, 40)  # no forgetting, many rows: non-inferior
    better = judge(_pairs(400, 40, 10), original, g)
    assert better.outcome == "promote" and better.promote
    worse = judge(_pairs(400, 10, 40), original, g)
    assert worse.outcome == "reject" and "significantly worse" in worse.reasons[-1]
    close = judge(_pairs(100, 6, 3), original, g)
    assert close.outcome == "undecided" and close.rows_needed is not None and close.rows_needed > 100
    assert close.more_rows_needed == close.rows_needed - 100
    assert f"about {close.rows_needed}" in close.reasons[-1]
    same = judge(_pairs(100, 0, 0), original, g)
    assert same.outcome == "undecided" and same.rows_needed is None
    forgets = judge(_pairs(400, 40, 10), _pairs(2000, 20, 120), g)
    assert forgets.outcome == "reject" and "forgets" in forgets.reasons[-1]
    # better on production, but 100 original rows cannot exclude a 2-point loss: undecided, not rejected
    unsure = judge(_pairs(400, 40, 10), _pairs(100, 3, 3), g)
    assert unsure.outcome == "undecided" and "not excluded on the original data" in unsure.reasons[-1]
    assert unsure.details["original_rows_needed"] > 100
    assert judge(_pairs(400, 40, 10), None, g).outcome == "reject"
    assert judge(None, None, g, active_exists=False).outcome == "promote"


def test_out_of_scope_confidence_can_be_required_not_to_rise() -> None:
    rng = np.random.default_rng(1)
    act = rng.uniform(0.4, 0.6, 60)
    cand = act + 0.2
    ev = oos_evidence(cand, act, labels=["refund"] * 50 + ["other"] * 10)
    assert ev is not None and ev.n_higher == 60 and ev.p_higher < 1e-10
    assert ev.labels == {"other": 10, "refund": 50}
    assert ev.candidate_mean_confidence > ev.active_mean_confidence
    good = (_pairs(400, 40, 10), _pairs(2000, 40, 40))
    assert judge(*good, Guard(), oos=ev).outcome == "promote"  # reported, not required
    strict = judge(*good, Guard(require_oos_confidence_not_higher=True), oos=ev)
    assert strict.outcome == "reject" and "out-of-scope" in strict.reasons[-1]
    # float noise below the tolerance is a tie, not a rise
    tiny = oos_evidence(act + 1e-7, act)
    assert tiny is not None and (tiny.n_higher, tiny.p_higher) == (0, 1.0)
    assert oos_evidence([], []) is None


def test_evidence_and_dict_form() -> None:
    ev = paired_evidence("production", _pairs(50, 8, 2, n_wrong_both=5), margin=0.02)
    assert (ev.n, ev.candidate_only, ev.active_only) == (50, 8, 2)
    assert ev.effect == pytest.approx(6 / 50) and ev.candidate_accuracy == pytest.approx(43 / 50)
    assert ev.ci_low < ev.effect < ev.ci_high and ev.p_noninferior is not None
    d = judge(_pairs(400, 40, 10), _pairs(2000, 40, 40), Guard()).to_dict()
    assert d["outcome"] == "promote" and d["production"]["n"] == 400 and d["original"]["margin"] == 0.02
    assert set(d) >= {"reasons", "alpha", "rows_needed", "test", "oos"}
    with pytest.raises(ConfigError, match="alpha"):
        Guard(alpha=0.7)


def test_decision_depends_only_on_the_counts() -> None:
    """Same correctness pattern in another row order or another class coding: the same decision."""
    a = _pairs(300, 25, 9, n_wrong_both=20)
    perm = np.random.default_rng(3).permutation(300)
    b = PairedPredictions(1 - a.y_true[perm], 1 - a.candidate[perm], 1 - a.active[perm], 2)
    orig = _pairs(1000, 30, 30)
    assert judge(a, orig, Guard()).to_dict() == judge(b, orig, Guard()).to_dict()
