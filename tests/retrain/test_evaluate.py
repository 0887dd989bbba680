"""Promotion guard decided both ways on constructed metrics; macro-F1 known answers."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift.performance import macro_f1
from monitor.retrain.evaluate import Guard, decide
from monitor.retrain.metrics import accuracy

GUARD = Guard(min_improvement=0.02, max_forgetting=0.01)


def test_promotes_when_production_improves_and_original_holds() -> None:
    d = decide({"production": 0.85, "original": 0.905}, {"production": 0.70, "original": 0.91}, GUARD)
    assert d.promote
    assert d.metrics["production_gain"] == pytest.approx(0.15)
    assert d.metrics["original_drop"] == pytest.approx(0.005)


def test_rejects_too_small_a_gain() -> None:
    d = decide({"production": 0.71, "original": 0.95}, {"production": 0.70, "original": 0.91}, GUARD)
    assert not d.promote
    assert "not enough" in d.reasons[0] and "forgetting" not in d.reasons[1]


def test_rejects_catastrophic_forgetting_even_with_a_big_gain() -> None:
    d = decide({"production": 0.95, "original": 0.80}, {"production": 0.70, "original": 0.91}, GUARD)
    assert not d.promote
    assert d.reasons[1].endswith("forgetting") and "not enough" not in d.reasons[0]


def test_thresholds_are_inclusive_and_no_active_promotes() -> None:
    active = {"production": 0.70, "original": 0.91}
    assert decide({"production": 0.72, "original": 0.90}, active, GUARD).promote
    d = decide({"production": 0.5, "original": 0.5}, None, GUARD)
    assert d.promote and "no active version" in d.reasons[0]


def test_macro_f1_known_answers() -> None:
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fn1 -> 0
    assert macro_f1(y, p, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(y, y, 3) == 1.0 and accuracy(y, p) == pytest.approx(0.6)
    assert macro_f1(np.array([], int), np.array([], int), 2) == 0.0
