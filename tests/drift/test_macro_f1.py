"""The one macro-F1 (``monitor.drift.performance.macro_f1``): the numbers of both former copies.

The drift signal used to call ``macro_f1(pred, true)`` on label strings and the retrain code
``macro_f1(y_true, y_pred, n_classes)`` on class ids. The kept function takes
``(y_true, y_pred, n_classes=None)``; these tests pin it to sklearn, to the retrain permutation
test's own kernel (``_macro_f1_rows``, unchanged) and to the string path, and show that the two
spellings of one labelling give the same number bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from monitor.drift.performance import PerformanceDrift, macro_f1
from monitor.retrain.metrics import _macro_f1_rows

CASES = [(k, n) for k in (1, 2, 3, 5, 7) for n in (1, 7, 60, 400)]


def _labels(k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, k, n))
    return t, p


@pytest.mark.parametrize(("k", "n"), CASES)
def test_class_ids_match_sklearn_and_the_permutation_kernel(k: int, n: int) -> None:
    t, p = _labels(k, n, seed=100 * k + n)
    got = macro_f1(t, p, k)
    empty = np.zeros(0, dtype=np.int64)
    assert got == float(_macro_f1_rows(empty, empty, t, p[None, :], k)[0])  # bit for bit
    assert got == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)


@pytest.mark.parametrize(("k", "n"), CASES)
def test_label_strings_give_the_class_id_number_in_either_argument_order(k: int, n: int) -> None:
    t, p = _labels(k, n, seed=7 * k + n)
    names = np.array([f"class-{i}" for i in range(k)], dtype=object)
    by_ids = macro_f1(y_true=t, y_pred=p, n_classes=k)
    assert macro_f1(names[t], names[p]) == by_ids
    assert macro_f1(y_true=names[p], y_pred=names[t]) == by_ids  # F1 is symmetric in (true, pred)


def test_absent_classes_empty_input_and_bad_ids() -> None:
    t, p = np.array([0, 0, 1]), np.array([0, 1, 1])
    assert macro_f1(t, p, 2) == macro_f1(t, p, 9)  # classes seen in neither array count for nothing
    assert macro_f1(np.array([], int), np.array([], int), 2) == 0.0
    assert macro_f1(np.array([], dtype=object), np.array([], dtype=object)) == 0.0
    with pytest.raises(ValueError, match="class ids"):
        macro_f1(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="shape"):
        macro_f1(np.array([0, 1]), np.array([0]), 2)


def test_the_performance_signal_reports_sklearn_macro_f1() -> None:
    from monitor.drift.frame import DriftFrame

    rng = np.random.default_rng(3)
    true = rng.choice(["neg", "neu", "pos"], 600)
    pred = np.where(rng.random(600) < 0.8, true, rng.choice(["neg", "neu", "pos"], 600))
    half = 300

    def frame(sl: slice) -> DriftFrame:
        return DriftFrame(predicted_label=pred[sl], confidence=np.full(pred[sl].size, 0.9), label=true[sl])

    res = PerformanceDrift().fit(frame(slice(0, half))).compute(frame(slice(half, None)))
    assert res.method == "realized"
    assert res.details["reference_macro_f1"] == pytest.approx(
        f1_score(true[:half], pred[:half], average="macro"), abs=1e-12)
    assert res.details["current_macro_f1"] == pytest.approx(
        f1_score(true[half:], pred[half:], average="macro"), abs=1e-12)
