"""Drift signals from merged partials: the same DriftReport as ``shiftwatch drift``.

Every test uses every row of the window, through statistics that merge:

* ``embedding`` / ``rff_hotelling`` — :class:`monitor.drift.rff.RFFHotellingDrift`
  on the per-class RFF moments (per-class tests in details);
* ``class_distribution`` / ``chi2`` — Pearson's chi-square on the exact
  predicted-class counts (Jensen–Shannon distance in details);
* ``confidence`` / ``ks_binned`` — the two-sample KS distance between the
  100-bin confidence histograms. The binned distance is never above the exact
  one, so the asymptotic p-value (Stephens' correction) is conservative;
* ``unknown_input`` / ``entropy_distance`` — one-sided tests, Bonferroni-combined,
  as the single-node :class:`monitor.drift.unknown.UnknownInputDrift`: prediction
  entropy higher (Mann–Whitney U on the 100-bin normalised-entropy histograms, every
  row; rows of one bin count as ties, which only makes the test conservative) and
  rows farther from every reference class centroid (the single-node distance test on
  the merged bottom-k samples: a uniform sample of each window);
* ``tokenizer`` / ``bonferroni`` — two-proportion z tests of the share of rows
  with an ``[UNK]`` (``unk_rows``) and of truncated rows (``truncation_rate``, the
  single-node name of the same quantity), and binned KS on ``n_tokens`` (exact
  integer bins), Bonferroni-combined.

Informational, outside the verdict: :func:`sketch_comparisons` compares the KLL
sketches of the unbounded columns (``latency_ms``, ``n_chars``) with a two-sample
KS on the sketches' CDFs that subtracts both sketches' rank-error bounds from the
distance before testing (conservative, so valid), and reports p50/p95/p99.

The verdict is weighted Holm at ``alpha`` over these p-values, as in the single-node
suite, and the report's ``diagnosis`` is :func:`monitor.drift.diagnosis.diagnose` of
it, as for ``shiftwatch drift``: the sub-test names the diagnosis reads (per-class
embedding tests, ``entropy`` and ``distance``, the format sub-tests ``unk_rows`` and
``truncation_rate``) are the ones it knows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.drift.base import DriftResult
from monitor.drift.frame import DriftFrame
from monitor.drift.names import Signal
from monitor.drift.rff import RFFHotellingDrift
from monitor.drift.stats import bonferroni_min
from monitor.drift.suite import DriftReport, holm_verdict
from monitor.drift.unknown import UnknownInputDrift
from monitor.lake.kll import KLLSketch, sketch_ks
from monitor.lake.partials import Partial

__all__ = ["FLEET_SIGNALS", "QUANTILES", "mann_whitney_binned", "report_from_partials",
           "sketch_comparisons"]

#: The signals a fleet check computes from mergeable partials (a subset of the suite's).
FLEET_SIGNALS: tuple[str, ...] = (Signal.EMBEDDING.value, Signal.CLASS_DISTRIBUTION.value,
                                  Signal.CONFIDENCE.value, Signal.UNKNOWN_INPUT.value,
                                  Signal.TOKENIZER.value)
#: Quantiles reported for each sketched column.
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def _result(signal: str, method: str, *, statistic: float | None, p_value: float | None,
            alpha: float, n_ref: int, n_cur: int, details: dict[str, Any],
            min_rows: int) -> DriftResult:
    if n_ref < min_rows or n_cur < min_rows or p_value is None:
        return DriftResult(signal=signal, method=method, statistic=None, p_value=None,
                           threshold=alpha, drifted=False, n_reference=n_ref, n_current=n_cur,
                           status="insufficient_data",
                           details={"min_rows": min_rows, **details,
                                    "reason": details.get("reason",
                                                          f"needs at least {min_rows} rows on "
                                                          "each side")})
    return DriftResult(signal=signal, method=method, statistic=statistic, p_value=p_value,
                       threshold=alpha, drifted=p_value < alpha, n_reference=n_ref,
                       n_current=n_cur, details=details)


def ks_binned(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """KS distance between two histograms on the same bins and its asymptotic p-value."""
    from scipy.stats import kstwobign

    n, m = float(a.sum()), float(b.sum())
    d = float(np.max(np.abs(np.cumsum(a) / n - np.cumsum(b) / m)))
    en = math.sqrt(n * m / (n + m))
    return d, float(kstwobign.sf((en + 0.12 + 0.11 / en) * d))


def mann_whitney_binned(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """One-sided Mann–Whitney U test that ``cur`` is stochastically greater than ``ref``,
    from histograms on the same ordered bins (rows of a bin are ties): (U / (m n), p-value,
    normal approximation with tie and continuity corrections)."""
    from scipy.stats import norm

    r, c = ref.astype(np.float64), cur.astype(np.float64)
    m, n = float(r.sum()), float(c.sum())
    if m == 0 or n == 0:
        return 0.5, 1.0
    u = float((c * (np.cumsum(r) - r + 0.5 * r)).sum())
    total = m + n
    t = r + c
    var = m * n / 12.0 * ((total + 1) - float((t ** 3 - t).sum()) / (total * (total - 1)))
    if var <= 0:
        return u / (m * n), 1.0
    z = (u - m * n / 2.0 - 0.5) / math.sqrt(var)
    return u / (m * n), float(norm.sf(z))


def _unknown_input(ref: Partial, cur: Partial, alpha: float, min_rows: int) -> DriftResult:
    tests: dict[str, dict[str, Any]] = {}
    n_ref = int(ref.entropy_hist.sum()) if ref.entropy_hist is not None else 0
    n_cur = int(cur.entropy_hist.sum()) if cur.entropy_hist is not None else 0
    if ref.entropy_hist is not None and cur.entropy_hist is not None and min(n_ref, n_cur) >= min_rows:
        stat, p = mann_whitney_binned(ref.entropy_hist, cur.entropy_hist)
        centres = (np.arange(ref.entropy_hist.size) + 0.5) / ref.entropy_hist.size
        tests["entropy"] = {"test": "mann_whitney_binned_greater", "statistic": stat, "p_value": p,
                            "reference_mean": float(centres @ ref.entropy_hist / n_ref),
                            "current_mean": float(centres @ cur.entropy_hist / n_cur),
                            "entropy": "normalised by log(classes)", "rows": [n_ref, n_cur]}
    if ref.sample_embedding is not None and cur.sample_embedding is not None:
        def frame(part: Partial) -> DriftFrame:
            assert part.sample_embedding is not None
            k = part.sample_embedding.shape[0]
            return DriftFrame(predicted_label=part.sample_label.astype(object),
                              confidence=np.zeros(k), embedding=part.sample_embedding)

        res = UnknownInputDrift(threshold=alpha, min_rows=min_rows).fit(frame(ref)).compute(frame(cur))
        dist = (res.details.get("tests") or {}).get("distance")
        if res.status == "ok" and dist is not None:
            tests["distance"] = {**dist, "sample_rows": [int(ref.sample_embedding.shape[0]),
                                                         int(cur.sample_embedding.shape[0])]}
    if not tests:
        return _result("unknown_input", "entropy_distance", statistic=None, p_value=None,
                       alpha=alpha, n_ref=n_ref, n_cur=n_cur, min_rows=min_rows,
                       details={"reason": "needs probs or sampled embeddings on both sides"})
    p = bonferroni_min([t["p_value"] for t in tests.values()])
    lead = min(tests, key=lambda k: tests[k]["p_value"])
    return _result("unknown_input", "entropy_distance", statistic=float(tests[lead]["statistic"]),
                   p_value=p, alpha=alpha, n_ref=n_ref or ref.n, n_cur=n_cur or cur.n,
                   min_rows=min_rows,
                   details={"combination": "bonferroni", "statistic_of": lead, "tests": tests})


def _two_proportion(x1: int, n1: int, x2: int, n2: int) -> float:
    from scipy.stats import norm

    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * norm.sf(abs(x1 / n1 - x2 / n2) / se))


def _class_distribution(ref: Partial, cur: Partial, alpha: float, min_rows: int) -> DriftResult:
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    labels = sorted(set(ref.class_counts) | set(cur.class_counts))
    table = np.array([[ref.class_counts.get(lab, 0) for lab in labels],
                      [cur.class_counts.get(lab, 0) for lab in labels]], dtype=np.float64)
    details: dict[str, Any] = {"labels": labels,
                               "reference_share": (table[0] / max(table[0].sum(), 1)).tolist(),
                               "current_share": (table[1] / max(table[1].sum(), 1)).tolist()}
    stat = p = None
    if len(labels) > 1 and ref.n and cur.n:
        res = chi2_contingency(table, correction=False)
        stat, p = float(res.statistic), float(res.pvalue)
        details["js_distance"] = float(jensenshannon(table[0], table[1], base=2))
        details["unseen_labels"] = [lab for lab in labels if lab not in ref.class_counts]
    elif ref.n and cur.n:
        stat, p = 0.0, 1.0
    return _result("class_distribution", "chi2", statistic=stat, p_value=p, alpha=alpha,
                   n_ref=ref.n, n_cur=cur.n, details=details, min_rows=min_rows)


def _confidence(ref: Partial, cur: Partial, alpha: float, min_rows: int) -> DriftResult:
    stat = p = None
    details: dict[str, Any] = {"bins": int(ref.conf_hist.size)}
    if ref.n and cur.n:
        stat, p = ks_binned(ref.conf_hist, cur.conf_hist)
        centres = (np.arange(ref.conf_hist.size) + 0.5) / ref.conf_hist.size
        details["mean_drop"] = float(centres @ ref.conf_hist / ref.n - centres @ cur.conf_hist
                                     / cur.n)
    return _result("confidence", "ks_binned", statistic=stat, p_value=p, alpha=alpha,
                   n_ref=ref.n, n_cur=cur.n, details=details, min_rows=min_rows)


def _tokenizer(ref: Partial, cur: Partial, alpha: float, min_rows: int) -> DriftResult:
    n_r, n_c = ref.n_tok_rows, cur.n_tok_rows
    if ref.ntok_hist is None or cur.ntok_hist is None or min(n_r, n_c) == 0:
        return _result("tokenizer", "bonferroni", statistic=None, p_value=None, alpha=alpha,
                       n_ref=n_r, n_cur=n_c, min_rows=min_rows,
                       details={"reason": "no n_tokens on one side"})
    d, p_len = ks_binned(ref.ntok_hist, cur.ntok_hist)
    tests: dict[str, dict[str, Any]] = {
        "unk_rows": {"test": "two_proportion",
                     "p_value": _two_proportion(ref.n_unk_rows, n_r, cur.n_unk_rows, n_c),
                     "reference": ref.n_unk_rows / n_r, "current": cur.n_unk_rows / n_c},
        "truncation_rate": {"test": "two_proportion",
                            "p_value": _two_proportion(ref.n_truncated, n_r, cur.n_truncated, n_c),
                            "reference": ref.n_truncated / n_r, "current": cur.n_truncated / n_c},
        "n_tokens": {"p_value": p_len, "ks": d},
    }
    best = min(tests, key=lambda k: float(tests[k]["p_value"]))
    p = min(1.0, len(tests) * float(tests[best]["p_value"]))
    return _result("tokenizer", "bonferroni", statistic=float(tests[best]["p_value"]), p_value=p,
                   alpha=alpha, n_ref=n_r, n_cur=n_c, min_rows=min_rows,
                   details={"tests": tests, "statistic_of": best})


def report_from_partials(reference: Partial, current: Partial, *, alpha: float = 0.01,
                         min_rows: int = 20) -> DriftReport:
    """The DriftReport of a merged current window against a merged reference."""
    results = [
        _embedding(reference, current, alpha, min_rows),
        _class_distribution(reference, current, alpha, min_rows),
        _confidence(reference, current, alpha, min_rows),
        _unknown_input(reference, current, alpha, min_rows),
        _tokenizer(reference, current, alpha, min_rows),
    ]
    drifted, verdict = holm_verdict(results, alpha)
    return DriftReport(n_reference=reference.n, n_current=current.n, drifted=drifted,
                       signals=tuple(results), alpha=alpha, verdict=verdict)


def _embedding(ref: Partial, cur: Partial, alpha: float, min_rows: int) -> DriftResult:
    fmap = ref.feature_map
    n_ref = sum(m.n for m in ref.rff.values())
    n_cur = sum(m.n for m in cur.rff.values())
    if fmap is None or cur.rff_spec is None:
        return _result("embedding", "rff_hotelling", statistic=None, p_value=None, alpha=alpha,
                       n_ref=n_ref, n_cur=n_cur, min_rows=min_rows,
                       details={"reason": "no embeddings on one side"})
    if cur.rff_spec != ref.rff_spec:
        return DriftResult(signal="embedding", method="rff_hotelling", statistic=None,
                           p_value=None, threshold=alpha, drifted=False, n_reference=n_ref,
                           n_current=n_cur, status="error",
                           details={"error": f"feature maps differ: reference {ref.rff_spec}, "
                                             f"current {cur.rff_spec}"})
    calc = RFFHotellingDrift.from_moments(fmap, ref.rff, threshold=alpha, min_rows=min_rows)
    return calc.compare(cur.rff)


def _quantiles(sketch: KLLSketch) -> dict[str, float]:
    values = sketch.quantile(list(QUANTILES.values()))
    return {name: float(v) for name, v in zip(QUANTILES, values, strict=True)}


def sketch_comparisons(reference: Partial, current: Partial, *, alpha: float = 0.01,
                       min_rows: int = 20) -> dict[str, Any]:
    """Per sketched column of ``current``: its quantiles and, when the reference has the
    column too, the error-aware sketch KS test (``method`` ``ks_sketch``). Informational:
    these never enter the verdict or the diagnosis."""
    out: dict[str, Any] = {}
    ref_sk = reference.sketches or {}
    for col, cur in sorted((current.sketches or {}).items()):
        ref = ref_sk.get(col)
        entry: dict[str, Any] = {"method": "ks_sketch", "informational": True,
                                 "threshold": alpha, "n_current": cur.n,
                                 "n_reference": ref.n if ref is not None else 0,
                                 "quantiles": {"current": _quantiles(cur)},
                                 "rank_error": {"current": cur.epsilon}}
        if ref is not None:
            entry["quantiles"]["reference"] = _quantiles(ref)
            entry["rank_error"]["reference"] = ref.epsilon
        if ref is None or min(ref.n, cur.n) < min_rows:
            entry.update(status="insufficient_data", statistic=None, p_value=None,
                         drifted=False)
        else:
            ks = sketch_ks(ref, cur)
            entry.update(status="ok", statistic=ks["statistic"],
                         error_allowance=ks["allowance"], p_value=ks["p_value"],
                         p_value_naive=ks["p_value_naive"], drifted=ks["p_value"] < alpha)
        out[col] = entry
    return out
