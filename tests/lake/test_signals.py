"""Fleet signals: the binned Mann–Whitney test, and the same diagnosis as ``shiftwatch drift``."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from monitor.drift.frame import DriftFrame
from monitor.drift.rff import RFFMap
from monitor.drift.suite import DriftSuite
from monitor.lake.partials import PartialKey, merge_partials, partial_from_frame
from monitor.lake.signals import mann_whitney_binned, report_from_partials

CLASSES = np.array(["neg", "pos"], dtype=object)


def test_binned_mann_whitney_equals_scipy_on_tied_integer_data() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.3):
        ref = rng.poisson(4.0, size=700)
        cur = rng.poisson(4.0 + shift, size=500)
        bins = max(ref.max(), cur.max()) + 1
        u, p = mann_whitney_binned(np.bincount(ref, minlength=bins), np.bincount(cur, minlength=bins))
        want = mannwhitneyu(cur, ref, alternative="greater", method="asymptotic", use_continuity=True)
        assert u * ref.size * cur.size == pytest.approx(float(want.statistic))
        assert p == pytest.approx(float(want.pvalue), rel=1e-9)
    assert mann_whitney_binned(np.zeros(3), np.ones(3)) == (0.5, 1.0)


def _frame(n: int, rng: np.random.Generator, *, prior: float = 0.5, shift: float = 0.0,
           truncated: float = 0.05, unknown: float = 0.0) -> DriftFrame:
    """Two classes apart on axis 1; ``shift`` moves every row on axis 0 (a new domain);
    ``unknown`` is the share of rows far from both classes that the model hesitates on."""
    pos = rng.random(n) < prior
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    emb[:, 1] += np.where(pos, 2.0, -2.0)
    emb[:, 0] += shift
    conf = 0.5 + 0.5 * rng.beta(6, 1.5, size=n)
    far = rng.random(n) < unknown
    emb[far] = rng.normal(size=(int(far.sum()), 8)).astype(np.float32)
    emb[far, 2] += 6.0
    conf[far] = 0.5 + 0.1 * rng.random(int(far.sum()))
    p_pos = np.where(pos, conf, 1 - conf)
    n_tok = (rng.poisson(18, size=n) + 2).astype(np.float64)
    return DriftFrame(
        predicted_label=CLASSES[pos.astype(int)], confidence=conf,
        probs=np.stack([1 - p_pos, p_pos], axis=1).astype(np.float32), embedding=emb,
        n_tokens=n_tok, n_unk=rng.binomial(n_tok.astype(int), 0.005).astype(np.float64),
        truncated=(rng.random(n) < truncated).astype(np.float64),
        event_id=np.array([f"e{rng.integers(2**62)}-{i}" for i in range(n)], dtype=object))


@pytest.mark.parametrize(("case", "kind"), [
    ({}, "none"),
    ({"shift": 0.5}, "covariate"),
    ({"prior": 0.75}, "label_prior"),
    ({"truncated": 0.25}, "input_format"),
    ({"unknown": 0.3}, "out_of_scope"),
])
def test_fleet_diagnosis_is_the_single_node_one(case: dict[str, float], kind: str) -> None:
    rng = np.random.default_rng(11)
    ref, cur = _frame(3000, rng), _frame(2000, rng, **case)
    fmap = RFFMap(dim=8, n_features=32, seed=0)
    # the current window as four replica partials, merged: what fleet drift tests
    parts = [partial_from_frame(PartialKey("m", "1", "2026-12-01", "00", f"r{i}"),
                                DriftFrame(**{f.name: (None if getattr(cur, f.name) is None
                                                       else getattr(cur, f.name)[i::4])
                                              for f in fields(cur)}),  # type: ignore[arg-type]
                                feature_map=fmap) for i in range(4)]
    merged = merge_partials(parts, PartialKey("m", "1", "2026-12-01", "00", "*"))
    fleet = report_from_partials(partial_from_frame(PartialKey("reference", "", "", "", ""), ref,
                                                    feature_map=fmap), merged, alpha=0.01)
    single = DriftSuite(alpha=0.01, seed=0).fit(ref).compute(cur)  # what `shiftwatch drift` runs
    assert single.diagnosis().kind == kind
    assert fleet.diagnosis().kind == kind, fleet.diagnosis().to_dict()
    assert fleet.to_dict()["diagnosis"]["kind"] == kind

