"""Known answers and edge cases of every signal, the suite and the Holm verdict."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from monitor.drift.class_distribution import bbse_prior
from monitor.drift.frame import DriftFrame
from monitor.drift.performance import isotonic_fit, macro_f1
from monitor.drift.shift import shift_scores
from monitor.drift.stats import bonferroni_min, chi_square_counts, holm, ks_test, perm_pvalue
from monitor.drift.suite import DriftReport, DriftSuite
from monitor.errors import CalculatorError, ConfigError
from tests.drift.conftest import synthetic_frame

SIGNALS = ("embedding", "class_distribution", "confidence", "tokenizer", "performance")


def test_holm_known_answer() -> None:
    h = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert h.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert h.rejected == (True, False, False, True)
    assert holm([], 0.05).any is False


def test_permutation_pvalue_is_never_zero() -> None:
    assert perm_pvalue(np.zeros(99), 5.0) == pytest.approx(0.01)
    assert perm_pvalue(np.zeros(99), 0.0) == 1.0
    assert bonferroni_min([0.01, 0.5, 0.2]) == pytest.approx(0.03)


def test_chi_square_switches_to_monte_carlo_for_small_counts() -> None:
    rng = np.random.default_rng(0)
    _, p, method, dof = chi_square_counts({"a": 50, "b": 48, "c": 2}, {"a": 20, "b": 20, "d": 3},
                                          rng=rng)
    assert method == "chi2_monte_carlo" and dof == 3 and 0 < p <= 1
    _, p2, method2, _ = chi_square_counts({"a": 500, "b": 500}, {"a": 100, "b": 100}, rng=rng)
    assert method2 == "chi2" and p2 == pytest.approx(1.0)


def test_ks_uses_scipy_without_ties_and_permutation_with_them() -> None:
    rng = np.random.default_rng(1)
    _, _, m1 = ks_test(rng.normal(size=50), rng.normal(size=40), rng=rng)
    _, _, m2 = ks_test(np.repeat([1.0, 2.0], 25), np.repeat([1.0, 3.0], 20), rng=rng)
    assert m1 == "ks_exact" and m2 == "ks_permutation"


def test_identical_windows_give_zero_statistics_and_no_drift() -> None:
    frame = synthetic_frame(300, np.random.default_rng(2))
    report = DriftSuite(SIGNALS, seed=1).fit(frame).compute(frame)
    assert not report.drifted
    for s in report.signals:
        assert s.status == "ok", s
        assert s.statistic == pytest.approx(0.0, abs=1e-9), s.signal
        assert not s.drifted
    emb = report.signal("embedding")
    assert emb is not None and emb.p_value == 1.0


def test_shifted_embeddings_are_detected_with_per_class_details() -> None:
    rng = np.random.default_rng(3)
    ref, cur = synthetic_frame(400, rng), synthetic_frame(200, rng, shift=1.0)
    for method in ("mmd", "domain_classifier", "centroid"):
        suite = DriftSuite(["embedding"], options={"embedding": {"method": method}})
        res = suite.fit(ref).compute(cur).signals[0]
        assert res.method == method and res.drifted, (method, res)
    res = DriftSuite(["embedding"]).fit(ref).compute(cur).signals[0]
    assert set(res.details["per_class"]) == {"a", "b", "c", "d"}
    assert res.details["per_class"]["a"]["p_value"] < 0.01
    assert res.details["per_class"]["d"]["status"] == "insufficient_data"


def test_pca_option_and_alternatives_stay_quiet_without_shift() -> None:
    rng = np.random.default_rng(4)
    ref, cur = synthetic_frame(300, rng), synthetic_frame(150, rng)
    for opts in ({"pca_dims": 4}, {"method": "domain_classifier"}, {"method": "centroid"}):
        res = DriftSuite(["embedding"], options={"embedding": opts}).fit(ref).compute(cur).signals[0]
        assert res.status == "ok" and res.p_value is not None and res.p_value > 0.01, opts


def test_one_row_is_insufficient_data_never_silent() -> None:
    rng = np.random.default_rng(5)
    ref, cur = synthetic_frame(300, rng), synthetic_frame(1, rng)
    report = DriftSuite(SIGNALS).fit(ref).compute(cur)
    assert not report.drifted
    assert report.verdict["status"] == "insufficient_data"
    for s in report.signals:
        assert s.status == "insufficient_data" and s.details["min_rows"] >= 1


def test_all_identical_embeddings_and_single_class() -> None:
    n = 100
    emb = np.ones((n, 8), dtype=np.float32)
    frame = DriftFrame(predicted_label=np.array(["x"] * n, dtype=object),
                       confidence=np.full(n, 0.9), embedding=emb)
    report = DriftSuite(["embedding", "class_distribution", "confidence"]).fit(frame).compute(frame)
    for s in report.signals:
        assert s.status == "ok" and s.statistic == 0.0 and s.p_value == 1.0 and not s.drifted


def test_unseen_labels_are_counted() -> None:
    rng = np.random.default_rng(6)
    ref = synthetic_frame(300, rng, prior=(0.5, 0.5))
    cur = synthetic_frame(100, rng, prior=(0.4, 0.3, 0.3))
    res = DriftSuite(["class_distribution"]).fit(ref).compute(cur).signals[0]
    assert res.details["unseen_labels"] == ["c"]
    assert res.drifted and res.details["psi"] > 0.1 and res.details["js_distance"] > 0.1


def test_nan_input_and_mismatched_dims_raise_calculator_error() -> None:
    table = pa.table({"predicted_label": ["a", "b"], "confidence": [0.9, float("nan")]})
    with pytest.raises(CalculatorError, match="NaN"):
        DriftFrame.from_arrow(table)
    rng = np.random.default_rng(7)
    ref = synthetic_frame(100, rng)
    bad = synthetic_frame(100, rng, d=8)
    suite = DriftSuite(["embedding"]).fit(ref)
    with pytest.raises(CalculatorError, match="dimension mismatch"):
        suite.compute(bad)
    nan = synthetic_frame(100, rng)
    assert nan.embedding is not None
    nan.embedding[3, 2] = np.nan
    with pytest.raises(CalculatorError, match="NaN"):
        suite.compute(nan)
    with pytest.raises(CalculatorError, match="fit"):
        DriftSuite(["embedding"]).compute(ref)


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="unknown drift signal"):
        DriftSuite(["nope"])
    with pytest.raises(ConfigError, match="unknown method"):
        DriftSuite(["embedding"], options={"embedding": {"method": "tsne"}})
    with pytest.raises(ConfigError, match="unknown option"):
        DriftSuite(["confidence"], options={"confidence": {"bins": 3}})


def test_verdict_is_holm_and_report_round_trips() -> None:
    rng = np.random.default_rng(8)
    ref, cur = synthetic_frame(300, rng), synthetic_frame(150, rng, shift=1.0)
    report = DriftSuite(SIGNALS, alpha=0.01).fit(ref).compute(cur)
    assert report.drifted and "embedding" in report.verdict["drifted_signals"]
    tests = {t["signal"]: t for t in report.verdict["tests"]}
    assert set(tests) == set(SIGNALS)
    assert all(t["adjusted_p_value"] >= t["p_value"] for t in tests.values())
    again = DriftReport.from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()


def test_tokenizer_flags_unk_truncation_and_odd_characters() -> None:
    rng = np.random.default_rng(9)
    n = 200
    texts_ref = np.array(["plain ascii text"] * n, dtype=object)
    texts_cur = np.array(["caf\u00e9 \ufffd <br/>"] * 60 + ["plain"] * (n - 60), dtype=object)
    base = dict(predicted_label=np.array(["a"] * n, dtype=object), confidence=np.full(n, 0.9))
    ref = DriftFrame(**base, n_tokens=rng.poisson(10, n) + 2.0, n_unk=np.zeros(n),
                     truncated=np.zeros(n), n_chars=np.full(n, 40.0), text=texts_ref)
    cur = DriftFrame(**base, n_tokens=rng.poisson(30, n) + 2.0, n_unk=rng.binomial(3, 0.5, n) * 1.0,
                     truncated=(rng.random(n) < 0.3) * 1.0, n_chars=np.full(n, 40.0), text=texts_cur)
    res = DriftSuite(["tokenizer"]).fit(ref).compute(cur).signals[0]
    assert res.drifted
    tests = res.details["tests"]
    assert set(tests) == {"unk_rate", "truncation_rate", "n_tokens", "chars_per_token",
                          "length_cap", "replacement_char", "non_ascii", "markup"}
    assert all(t["p_value"] < 0.01 for k, t in tests.items() if k != "length_cap")
    assert tests["length_cap"]["p_value"] == 1.0  # both windows sit at 40 characters


def test_tokenizer_length_cap_flags_a_pile_up_at_one_length() -> None:
    rng = np.random.default_rng(4)
    n = 200
    base = dict(predicted_label=np.array(["a"] * n, dtype=object), confidence=np.full(n, 0.9))
    chars = rng.integers(10, 200, n).astype(np.float64)
    ref = DriftFrame(**base, n_chars=chars, n_tokens=np.round(chars / 4) + 2)
    capped = np.minimum(rng.integers(10, 200, n), 40).astype(np.float64)  # cut upstream at 40
    cur = DriftFrame(**base, n_chars=capped, n_tokens=np.round(capped / 4) + 2)
    tests = DriftSuite(["tokenizer"]).fit(ref).compute(cur).signals[0].details["tests"]
    assert tests["length_cap"]["length"] == 40.0 and tests["length_cap"]["p_value"] < 1e-6
    same = DriftSuite(["tokenizer"]).fit(ref).compute(ref).signals[0].details["tests"]
    assert same["length_cap"]["p_value"] == 1.0


def test_performance_realized_and_cbpe() -> None:
    rng = np.random.default_rng(10)
    ref = synthetic_frame(400, rng)
    good = synthetic_frame(200, rng)
    res = DriftSuite(["performance"]).fit(ref).compute(good).signals[0]
    assert res.method == "realized" and not res.drifted
    assert good.label is not None
    broken = DriftFrame(predicted_label=good.predicted_label, confidence=good.confidence,
                        label=np.where(rng.random(200) < 0.5, "b", "c").astype(object))
    res = DriftSuite(["performance"]).fit(ref).compute(broken).signals[0]
    assert res.drifted and res.details["current_accuracy"] < res.details["reference_accuracy"]
    unlabelled = DriftFrame(predicted_label=good.predicted_label, confidence=good.confidence * 0.5)
    res = DriftSuite(["performance"]).fit(ref).compute(unlabelled).signals[0]
    assert res.method == "cbpe" and res.p_value is None
    lo, hi = res.details["ci"]
    assert lo <= res.details["estimated_accuracy"] <= hi
    assert res.details["estimated_accuracy"] < res.details["reference_accuracy"]
    no_labels = DriftFrame(predicted_label=ref.predicted_label, confidence=ref.confidence)
    res = DriftSuite(["performance"]).fit(no_labels).compute(good).signals[0]
    assert res.status == "insufficient_data"


def test_isotonic_macro_f1_and_bbse_known_answers() -> None:
    xs, fs = isotonic_fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
    assert list(fs) == [0.0, 0.5, 0.5, 1.0] and list(xs) == [0.1, 0.2, 0.3, 0.4]
    assert macro_f1(np.array(["a", "b"]), np.array(["a", "b"])) == 1.0
    # A classifier that is right 90 % of the time on both classes; current true prior 0.8/0.2.
    rng = np.random.default_rng(11)
    true_ref = rng.choice(["p", "n"], 4000)
    pred_ref = np.where(rng.random(4000) < 0.9, true_ref, np.where(true_ref == "p", "n", "p"))
    true_cur = rng.choice(["p", "n"], 4000, p=[0.8, 0.2])
    pred_cur = np.where(rng.random(4000) < 0.9, true_cur, np.where(true_cur == "p", "n", "p"))
    est = bbse_prior(pred_ref, true_ref, pred_cur)
    assert est["estimated_prior"][est["classes"].index("p")] == pytest.approx(0.8, abs=0.03)


def test_shift_scores_rank_shifted_rows_higher() -> None:
    rng = np.random.default_rng(12)
    ref = rng.normal(size=(400, 16))
    cur = np.vstack([rng.normal(size=(50, 16)), rng.normal(size=(50, 16)) + 2.0])
    s = shift_scores(ref, cur, seed=0)
    assert s.shape == (100,) and ((s >= 0) & (s <= 1)).all()
    assert s[50:].mean() > s[:50].mean() + 0.3
    with pytest.raises(CalculatorError):
        shift_scores(ref, cur[:, :8])


def test_cuda_request_falls_back_to_cpu_without_a_gpu() -> None:
    from monitor.drift.embedding import _cuda_available

    rng = np.random.default_rng(13)
    ref, cur = synthetic_frame(100, rng), synthetic_frame(60, rng)
    res = DriftSuite(["embedding"], options={"embedding": {"device": "cuda"}}).fit(ref).compute(cur)
    assert res.signals[0].status == "ok"
    cpu = DriftSuite(["embedding"], options={"embedding": {"device": "cpu"}}).fit(ref).compute(cur)
    if not _cuda_available():
        assert res.signals[0].p_value == cpu.signals[0].p_value
