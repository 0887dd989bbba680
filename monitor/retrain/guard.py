"""The promotion guard as a paired test: promote, reject, or undecided (with the rows still needed).

Pure (numpy + scipy), no I/O. The guard sees, for the same labelled rows, the
candidate's and the active version's predicted classes; what it tests is
per-row *correctness*.

Why per-row correctness and these tests (see docs/promotion.md):

- **Superiority on the production-like slice: exact McNemar.** Only rows where
  exactly one model is right carry information (``b``: only the candidate is
  right, ``c``: only the active version is). Under "equally good" ``b`` given
  ``b + c`` is Binomial(b + c, 1/2): the one-sided p-value is an exact binomial
  tail of two integers. No resampling, no float summation that a thread count
  could reorder, so the same predictions give the same decision on every
  machine; and its power has a closed form (Connor 1987), which is what
  ``rows_needed`` needs. A paired permutation test on macro-F1 would need
  seeded resampling and has no power formula. Macro-F1 is still reported.
- **Non-inferiority on the original data: Tango's score test** (Tango 1998,
  Stat Med 17:891) for a difference of paired proportions, one-sided,
  H0: acc(candidate) − acc(active) ≤ −ε against H1: > −ε. The candidate must
  *show* that it does not forget by more than ε before it is promoted; the
  other tail (``p_forgets``: it loses more than ε) rejects. Neither shown
  leaves it undecided, and the reason says how many original validation
  rows would show it. The confidence interval reported for each slice
  inverts the same score statistic.
- **Out-of-scope confidence: exact sign test**, one-sided, on the rows whose
  review label lies outside the label set: does the candidate give a higher
  max-probability than the active version on more rows than chance?
  Differences within ``tie_tolerance`` count as ties, so float noise cannot
  flip it.

Outcomes (:func:`judge`):

- ``promote``: production superiority p ≤ α, non-inferiority on the original
  data p ≤ α, and (when required) no significant rise of out-of-scope confidence;
- ``reject``: production significantly *worse* (one-sided p ≤ α), significant
  forgetting beyond ε, no original rows at all, or out-of-scope confidence
  significantly higher when required;
- ``undecided``: none of these; ``rows_needed`` says how many labelled
  production rows in total the McNemar test needs at the observed discordance
  and effect for ``power`` (default 80 %) — ``None`` when no effect was
  observed — and ``details["original_rows_needed"]`` how many original
  validation rows non-inferiority needs when that is what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from monitor.drift.performance import macro_f1
from monitor.errors import ConfigError

__all__ = ["Guard", "OosEvidence", "PairedEvidence", "PairedPredictions", "PromotionDecision",
           "anytime_pvalue_worse", "anytime_rows_needed", "forgetting_pvalue", "judge", "mcnemar_evalue",
           "mcnemar_pvalue", "noninferiority_pvalue",
           "noninferiority_rows_needed", "oos_evidence", "paired_evidence", "rows_needed", "score_ci",
           "sign_test_pvalue"]

Outcome = Literal["promote", "reject", "undecided"]


@dataclass(frozen=True, slots=True)
class Guard:
    """Promotion test settings.

    ``alpha``: level of every one-sided test; ``max_forgetting``: the
    non-inferiority margin ε on original-data accuracy; ``power``: target power
    of the rows-needed calculation; ``require_oos_confidence_not_higher``:
    reject a candidate whose confidence on out-of-scope rows rises
    significantly. ``min_improvement`` (δ) belongs to the former fixed-δ guard
    (:func:`monitor.retrain.evaluate.decide`), kept for comparison only.
    """

    alpha: float = 0.05
    max_forgetting: float = 0.02
    power: float = 0.8
    require_oos_confidence_not_higher: bool = False
    tie_tolerance: float = 1e-4
    min_improvement: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ConfigError(f"guard 'alpha': must be in (0, 0.5), got {self.alpha}")
        if not 0.0 <= self.max_forgetting < 1.0:
            raise ConfigError(f"guard 'max_forgetting': must be in [0, 1), got {self.max_forgetting}")
        if not 0.5 <= self.power < 1.0:
            raise ConfigError(f"guard 'power': must be in [0.5, 1), got {self.power}")
        if self.tie_tolerance < 0:
            raise ConfigError(f"guard 'tie_tolerance': must be >= 0, got {self.tie_tolerance}")


@dataclass(frozen=True, slots=True)
class PairedPredictions:
    """One labelled set scored by both models: true and predicted class ids (label order of the version)."""

    y_true: np.ndarray
    candidate: np.ndarray
    active: np.ndarray
    n_classes: int

    def __post_init__(self) -> None:
        for name in ("y_true", "candidate", "active"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        if not self.y_true.shape == self.candidate.shape == self.active.shape or self.y_true.ndim != 1:
            raise ValueError(f"paired predictions: shapes differ: {self.y_true.shape}, "
                             f"{self.candidate.shape}, {self.active.shape}")


# -- the tests ---------------------------------------------------------------------------------
def mcnemar_pvalue(b: int, c: int, *, alternative: Literal["greater", "less", "two-sided"] = "greater"
                   ) -> float:
    """Exact McNemar p-value from the discordant counts.

    ``b``: rows only the candidate gets right; ``c``: rows only the active
    version gets right. ``greater``: H1 the candidate is better (P[B ≥ b]
    under Binomial(b + c, 1/2)); ``less``: it is worse; ``two-sided``: twice
    the smaller tail, capped at 1. No discordant rows give 1.0.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got b={b}, c={c}")
    m = b + c
    if m == 0:
        return 1.0
    if alternative == "greater":
        return float(stats.binom.sf(b - 1, m, 0.5))
    if alternative == "less":
        return float(stats.binom.cdf(b, m, 0.5))
    return float(min(1.0, 2.0 * min(stats.binom.sf(b - 1, m, 0.5), stats.binom.cdf(b, m, 0.5))))


def mcnemar_evalue(b: int, c: int) -> float:
    """Anytime-valid evidence that the candidate is *worse*: a mixture e-value on the discordant rows.

    ``b``: rows only the candidate gets right; ``c``: rows only the active version (the parent)
    gets right. Given a discordant row, θ = P[it favours the parent]; H0: θ ≤ ½. The e-value is
    the likelihood ratio of θ against ½, averaged over a uniform prior on θ ∈ [½, 1]:
    ``E = 2^(m+1) · B(c+1, b+1) · I_½(b+1, c+1)`` with m = b + c (B the beta function, I the
    regularized incomplete beta). It depends on the counts only, and under H0 it is a
    non-negative supermartingale as rows arrive, so by Ville's inequality
    P[E ≥ 1/α at *any* look] ≤ α: a check that re-runs every window, on growing data, rejects at
    ``E ≥ 1/α`` with its false-rejection rate still ≤ α however often it looks (the exact
    McNemar p-value, re-run every window, is not). No discordant rows give 1.0.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got b={b}, c={c}")
    m = b + c
    if m == 0:
        return 1.0
    from scipy import special

    tail = float(special.betainc(b + 1, c + 1, 0.5))
    if tail <= 0.0:
        return 0.0
    log_e = (m + 1) * math.log(2.0) + float(special.betaln(c + 1, b + 1)) + math.log(tail)
    return math.exp(min(log_e, 700.0))


def anytime_pvalue_worse(b: int, c: int) -> float:
    """``min(1, 1/E)`` for :func:`mcnemar_evalue`: ≤ α at any look with probability ≤ α under H0."""
    return min(1.0, 1.0 / max(mcnemar_evalue(b, c), 1e-300))


def anytime_rows_needed(p_b: float, p_c: float, *, alpha: float = 0.05, limit: int = 1_000_000) -> int | None:
    """Paired rows at which :func:`mcnemar_evalue` reaches ``1/alpha`` when the discordant rows keep
    the observed shares ``p_b``/``p_c`` (plug-in, not a power calculation); ``None`` when the
    candidate is not observed to be worse (``p_c <= p_b``) or ``limit`` rows would not do."""
    psi = p_b + p_c
    if p_c <= p_b or psi <= 0.0:
        return None
    theta = p_c / psi
    m = 1
    while m / psi <= limit:
        c = round(theta * m)
        if mcnemar_evalue(m - c, c) >= 1.0 / alpha:
            return max(1, math.ceil(round(m / psi, 9)))
        m = m + 1 if m < 64 else math.ceil(m * 1.05)
    return None


def _tango_z(n: int, b: int, c: int, delta: float) -> float:
    """Tango's score statistic for H0: (b − c)/n = ``delta`` (difference of paired proportions)."""
    if n <= 0:
        raise ValueError("no rows")
    m = n - b - c
    # constrained MLE of p_c (the active-only cell) under p_b = p_c + delta: root of
    # 2n x^2 - B x - c delta (1 - delta) = 0 inside [max(0, -delta), (1 - delta) / 2]
    big_b = (b + c) - delta * (b + 3 * c + 2 * m)
    disc = big_b * big_b + 8.0 * n * c * delta * (1.0 - delta)
    x = (big_b + math.sqrt(max(disc, 0.0))) / (4.0 * n)
    x = min(max(x, max(0.0, -delta)), (1.0 - delta) / 2.0)
    var = n * (2.0 * x + delta - delta * delta)
    diff = b - c - n * delta
    if var <= 0.0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def noninferiority_pvalue(n: int, b: int, c: int, margin: float) -> float:
    """One-sided p-value of H0: acc(candidate) − acc(active) ≤ −``margin`` (Tango's score test).

    Small values show the candidate is no worse than ``margin``. With
    ``margin == 0`` it is a (score) test of superiority.
    """
    if not 0 <= b + c <= n:
        raise ValueError(f"need 0 <= b + c <= n, got b={b}, c={c}, n={n}")
    return float(stats.norm.sf(_tango_z(n, b, c, -margin)))


def forgetting_pvalue(n: int, b: int, c: int, margin: float) -> float:
    """One-sided p-value of H0: acc(candidate) − acc(active) ≥ −``margin`` (the other tail of Tango's test).

    Small values show the candidate *forgets*: it loses more than ``margin``.
    """
    if not 0 <= b + c <= n:
        raise ValueError(f"need 0 <= b + c <= n, got b={b}, c={c}, n={n}")
    return float(stats.norm.cdf(_tango_z(n, b, c, -margin)))


def score_ci(n: int, b: int, c: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided ``level`` interval of acc(candidate) − acc(active), inverting Tango's score test."""
    z = float(stats.norm.ppf(0.5 + level / 2.0))

    def solve(target: float) -> float:  # Z(delta) decreases in delta: bisect Z(delta) = target
        lo, hi = -1.0 + 1e-12, 1.0 - 1e-12
        for _ in range(80):
            mid = (lo + hi) / 2.0
            if _tango_z(n, b, c, mid) > target:
                lo = mid
            else:
                hi = mid
        return round((lo + hi) / 2.0, 10)

    return solve(z), solve(-z)


def rows_needed(p_b: float, p_c: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Labelled rows a one-sided McNemar test at ``alpha`` needs for ``power`` (Connor 1987).

    ``p_b``/``p_c``: shares of rows only the candidate / only the active version
    gets right. The sign of the effect does not matter (rows to show
    superiority, or inferiority). ``None`` when there is no effect.
    """
    psi, d = p_b + p_c, abs(p_b - p_c)
    if d <= 0.0 or psi <= 0.0:
        return None
    za, zb = float(stats.norm.isf(alpha)), float(stats.norm.isf(1.0 - power))
    n = (za * math.sqrt(psi) + zb * math.sqrt(max(psi - d * d, 0.0))) ** 2 / (d * d)
    return max(1, math.ceil(round(n, 9)))


def noninferiority_rows_needed(p_b: float, p_c: float, margin: float, *, alpha: float = 0.05,
                               power: float = 0.8) -> int | None:
    """Rows a one-sided non-inferiority test with ``margin`` needs for ``power`` at the observed shares.

    Normal approximation: ``(z_α + z_β)² (ψ − θ²) / (θ + margin)²`` with θ = p_b − p_c, ψ = p_b + p_c;
    ``None`` when the observed loss is already at or beyond the margin (no number of rows shows it).
    """
    theta, psi = p_b - p_c, p_b + p_c
    if theta + margin <= 0.0:
        return None
    za, zb = float(stats.norm.isf(alpha)), float(stats.norm.isf(1.0 - power))
    var = max(psi - theta * theta, 1e-9)
    return max(1, math.ceil(round((za + zb) ** 2 * var / (theta + margin) ** 2, 9)))


def sign_test_pvalue(higher: int, lower: int) -> float:
    """One-sided exact sign test: P[X ≥ higher] for X ~ Binomial(higher + lower, 1/2); 1.0 when both are 0."""
    return mcnemar_pvalue(higher, lower, alternative="greater")


# -- evidence ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PairedEvidence:
    """Both models on one labelled set: counts, accuracies, the effect, its interval and p-values.

    ``effect`` = accuracy(candidate) − accuracy(active); ``p_better`` and
    ``p_worse`` are one-sided exact McNemar p-values; ``p_noninferior`` is the
    score test against the margin (original data only).
    """

    slice: str
    n: int
    candidate_only: int
    active_only: int
    candidate_accuracy: float
    active_accuracy: float
    candidate_macro_f1: float
    active_macro_f1: float
    effect: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_better: float
    p_worse: float
    p_noninferior: float | None = None
    p_forgets: float | None = None
    margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def paired_evidence(name: str, pairs: PairedPredictions, *, level: float = 0.95,
                    margin: float | None = None) -> PairedEvidence:
    """Count, test and summarise ``pairs`` (see :class:`PairedEvidence`)."""
    n = int(pairs.y_true.size)
    if n == 0:
        raise ValueError(f"{name}: no labelled rows to compare on")
    right_c = pairs.candidate == pairs.y_true
    right_a = pairs.active == pairs.y_true
    b = int(np.sum(right_c & ~right_a))
    c = int(np.sum(~right_c & right_a))
    lo, hi = score_ci(n, b, c, level)
    return PairedEvidence(
        slice=name, n=n, candidate_only=b, active_only=c,
        candidate_accuracy=int(right_c.sum()) / n, active_accuracy=int(right_a.sum()) / n,
        candidate_macro_f1=macro_f1(pairs.y_true, pairs.candidate, pairs.n_classes),
        active_macro_f1=macro_f1(pairs.y_true, pairs.active, pairs.n_classes),
        effect=(b - c) / n, ci_low=lo, ci_high=hi, ci_level=level,
        p_better=mcnemar_pvalue(b, c, alternative="greater"),
        p_worse=mcnemar_pvalue(b, c, alternative="less"),
        p_noninferior=None if margin is None else noninferiority_pvalue(n, b, c, margin),
        p_forgets=None if margin is None else forgetting_pvalue(n, b, c, margin), margin=margin)


@dataclass(frozen=True, slots=True)
class OosEvidence:
    """Mean max-probability of both models on rows labelled outside the label set, and the sign test."""

    n: int
    labels: dict[str, int]
    candidate_mean_confidence: float
    active_mean_confidence: float
    n_higher: int
    n_lower: int
    p_higher: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def oos_evidence(candidate_confidence: Sequence[float] | np.ndarray,
                 active_confidence: Sequence[float] | np.ndarray, *, labels: Sequence[str] = (),
                 tie_tolerance: float = 1e-4) -> OosEvidence | None:
    """Compare the two models' confidence on out-of-scope rows; ``None`` when there are none."""
    cand = np.asarray(candidate_confidence, dtype=np.float64)
    act = np.asarray(active_confidence, dtype=np.float64)
    if cand.shape != act.shape:
        raise ValueError(f"confidence shapes differ: {cand.shape}, {act.shape}")
    if cand.size == 0:
        return None
    diff = cand - act
    higher, lower = int(np.sum(diff > tie_tolerance)), int(np.sum(diff < -tie_tolerance))
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    return OosEvidence(n=int(cand.size), labels=dict(sorted(counts.items())),
                       candidate_mean_confidence=round(float(np.mean(cand)), 6),
                       active_mean_confidence=round(float(np.mean(act)), 6),
                       n_higher=higher, n_lower=lower, p_higher=sign_test_pvalue(higher, lower))


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """The guard's outcome with all of its evidence (``to_dict`` for the registry, CLI and notifications)."""

    outcome: Outcome
    reasons: tuple[str, ...]
    alpha: float
    production: PairedEvidence | None
    original: PairedEvidence | None
    oos: OosEvidence | None = None
    rows_needed: int | None = None
    more_rows_needed: int | None = None
    test: str = "exact McNemar (production) + Tango score non-inferiority (original)"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        """True for ``promote``."""
        return self.outcome == "promote"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"outcome": self.outcome, "reasons": list(self.reasons), "alpha": self.alpha,
                "test": self.test, "rows_needed": self.rows_needed,
                "more_rows_needed": self.more_rows_needed,
                "production": self.production.to_dict() if self.production else None,
                "original": self.original.to_dict() if self.original else None,
                "oos": self.oos.to_dict() if self.oos else None, "details": dict(self.details)}


def _fmt(ev: PairedEvidence) -> str:
    return (f"accuracy {ev.active_accuracy:.4f} -> {ev.candidate_accuracy:.4f} "
            f"({ev.effect:+.4f}, {ev.ci_level:.0%} CI [{ev.ci_low:+.4f}, {ev.ci_high:+.4f}]; "
            f"n={ev.n}, only candidate right {ev.candidate_only}, only active right {ev.active_only}; "
            f"macro-F1 {ev.active_macro_f1:.4f} -> {ev.candidate_macro_f1:.4f})")


def judge(production: PairedPredictions | None, original: PairedPredictions | None, guard: Guard, *,
          oos: OosEvidence | None = None, active_exists: bool = True) -> PromotionDecision:
    """Decide promote / reject / undecided for a candidate (see the module docstring).

    ``production``: the production-like labelled slice (never trained on);
    ``original``: held-out original data (``None``: no forgetting check
    possible, which rejects). Without an active version there is nothing to
    beat and the candidate is promoted.
    """
    a = guard.alpha
    if not active_exists:
        return PromotionDecision("promote", ("no active version to compare with",), a, None, None, oos)
    if production is None or production.y_true.size == 0:
        return PromotionDecision("undecided", ("no labelled production rows to test on",), a, None,
                                 None, oos)
    prod = paired_evidence("production", production, level=1.0 - 2 * a)
    orig = (paired_evidence("original", original, level=1.0 - 2 * a, margin=guard.max_forgetting)
            if original is not None and original.y_true.size else None)
    reasons: list[str] = [f"production: {_fmt(prod)}; one-sided exact McNemar "
                          f"p(better)={prod.p_better:.4g}, p(worse)={prod.p_worse:.4g} at alpha={a:g}"]
    reject: list[str] = []
    waiting: list[str] = []
    original_needed: int | None = None
    if orig is None:
        reject.append("no original validation rows: forgetting cannot be checked")
    else:
        assert orig.p_noninferior is not None and orig.p_forgets is not None
        ok = orig.p_noninferior <= a
        reasons.append(f"original: {_fmt(orig)}; non-inferiority (margin {guard.max_forgetting:g}) "
                       f"p={orig.p_noninferior:.4g}, p(forgets beyond the margin)={orig.p_forgets:.4g}")
        if orig.p_forgets <= a:
            reject.append(f"forgets: significantly worse than the margin {guard.max_forgetting:g} on the "
                          f"original data (p={orig.p_forgets:.4g})")
        elif not ok:
            original_needed = noninferiority_rows_needed(
                orig.candidate_only / orig.n, orig.active_only / orig.n, guard.max_forgetting, alpha=a,
                power=guard.power)
            hint = (f"; about {original_needed} original validation rows would show it at the observed "
                    "effect (register a larger validation split)" if original_needed is not None else "")
            waiting.append(f"forgetting beyond {guard.max_forgetting:g} not excluded on the original data "
                           f"(p={orig.p_noninferior:.4g} > {a:g}, n={orig.n}{hint})")
    if prod.p_worse <= a:
        reject.append(f"significantly worse on production (p={prod.p_worse:.4g} <= {a:g})")
    if oos is not None:
        line = (f"out-of-scope rows: n={oos.n}, mean confidence {oos.active_mean_confidence:.3f} -> "
                f"{oos.candidate_mean_confidence:.3f} (higher on {oos.n_higher}, lower on {oos.n_lower}; "
                f"sign test p(higher)={oos.p_higher:.4g})")
        reasons.append(line)
        if guard.require_oos_confidence_not_higher and oos.p_higher <= a:
            reject.append(f"confidence on out-of-scope rows rose significantly (p={oos.p_higher:.4g})")
    needed = rows_needed(prod.candidate_only / prod.n, prod.active_only / prod.n, alpha=a, power=guard.power)
    more = None if needed is None else max(needed - prod.n, 0)
    details = {"original_rows_needed": original_needed}
    if reject:
        return PromotionDecision("reject", (*reasons, "reject: " + "; ".join(reject)), a, prod, orig,
                                 oos, needed, more, details=details)
    if prod.p_better > a:
        if needed is None:
            waiting.append("both models are right on the same production rows: no effect to detect")
        else:
            more = max(needed - prod.n, 1)
            waiting.append(f"at the observed effect {prod.effect:+.4f} the test needs about {needed} "
                           f"labelled production rows for {guard.power:.0%} power ({more} more)")
    if not waiting:
        done = "promote: significantly better on production, no forgetting beyond the margin"
        return PromotionDecision("promote", (*reasons, done), a, prod, orig, oos, needed, more,
                                 details=details)
    why = "undecided: " + "; ".join(waiting) + "; the candidate stays in shadow"
    return PromotionDecision("undecided", (*reasons, why), a, prod, orig, oos, needed, more, details=details)
