"""A deterministic, mergeable KLL-style quantile sketch for unbounded values (latency).

The sketch is a hierarchy of compactors, as in KLL (Karnin, Lang, Liberty 2016):
level ``h`` holds sorted items of weight ``2**h``, at most ``k`` of them. A level
over capacity is *compacted*: its items (all but the largest when their number is
odd) are paired in sorted order and one item of each pair moves up with double
weight. Two choices differ from the randomised KLL, so that the DuckDB and Spark
engines write bit-identical partials and the bound below is a guarantee, not a
probability:

* the offset (keep the first or the second item of each pair) alternates per
  level, from a compaction counter that the sketch carries, instead of a coin;
* a sketch is built from its values *sorted* and in one batch, and a merge
  concatenates every input's levels (sorted again) before compacting: the result
  depends only on the multiset of inputs, never on their order. (Merging in stages,
  ``merge(merge(a, b), c)``, gives another, equally bounded, sketch.)

**Error bound.** One compaction at level ``h`` changes the rank of any query
``x`` (the weight of items ``<= x``) by 0 or ``2**h``, for all ``x`` at once, so the
sketch tracks ``err``, the sum of ``2**h`` over every compaction in its history, and
``|rank_sketch(x) - rank_exact(x)| <= err`` for every ``x``. ``epsilon = err / n``
bounds the CDF error uniformly. A batch build compacts each level at most once
while the level holds more than ``k`` items, so its ``epsilon < 2 / k``; one merge
adds less than ``2 / k`` more. A window merged once from built partials therefore
has ``epsilon < 4 / k`` (``DEFAULT_K`` is chosen from that; docs/fleet.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.errors import CalculatorError

__all__ = ["DEFAULT_K", "KLLSketch", "ks_critical", "merge_sketches", "sketch_ks"]

#: Items per level. Chosen before measuring: a window's ``epsilon < 4 / k`` per side, and
#: ``2 * 4 / 4096 < 0.002`` is under a quarter of the 5 % two-sample KS critical value at
#: 50,000 rows per side (0.0086), so the error-aware KS test loses little power there.
DEFAULT_K = 4096


@dataclass(frozen=True, slots=True, eq=False)
class KLLSketch:
    """Quantile summary of ``n`` values; ``levels[h]`` holds sorted items of weight ``2**h``.

    Build one with :meth:`from_values` and combine with :func:`merge_sketches`."""

    k: int
    n: int
    levels: tuple[np.ndarray, ...]
    compactions: tuple[int, ...]
    err: int

    @classmethod
    def from_values(cls, values: np.ndarray | Sequence[float], k: int = DEFAULT_K) -> KLLSketch:
        """The sketch of ``values`` (non-finite values are dropped), built from them sorted."""
        if k < 2:
            raise CalculatorError(f"KLL sketch needs k >= 2, got {k}")
        arr = np.asarray(values, dtype=np.float64)
        arr = np.sort(arr[np.isfinite(arr)], kind="stable")
        return _compress(k, [arr], [0], 0)

    @property
    def epsilon(self) -> float:
        """Bound on ``sup_x |CDF_sketch(x) - CDF_exact(x)|`` (0 for an empty sketch)."""
        return self.err / self.n if self.n else 0.0

    @property
    def size(self) -> int:
        """Items held."""
        return int(sum(lv.size for lv in self.levels))

    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        items = np.concatenate([*self.levels, np.zeros(0)])
        weights = np.concatenate([np.full(lv.size, 2 ** h, dtype=np.float64)
                                  for h, lv in enumerate(self.levels)] + [np.zeros(0)])
        order = np.argsort(items, kind="stable")
        return items[order], np.cumsum(weights[order])

    def cdf(self, x: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Estimated share of values ``<= x`` (within ``epsilon`` of the exact share)."""
        if self.n == 0:
            raise CalculatorError("CDF of an empty sketch")
        items, cum = self._weighted()
        idx = np.searchsorted(items, np.atleast_1d(np.asarray(x, dtype=np.float64)),
                              side="right")
        return np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0) / self.n

    def quantile(self, q: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """The smallest item whose estimated rank is at least ``q * n`` (its exact rank is
        within ``err`` of that)."""
        if self.n == 0:
            raise CalculatorError("quantile of an empty sketch")
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if np.any((qs < 0) | (qs > 1)):
            raise CalculatorError("quantiles must be in [0, 1]")
        items, cum = self._weighted()
        idx = np.searchsorted(cum, qs * self.n, side="left")
        return items[np.clip(idx, 0, items.size - 1)]

    def to_row(self) -> dict[str, Any]:
        """Parquet-friendly fields: items (level order), level sizes, counters, n, err, k."""
        return {"k": self.k, "n": self.n, "err": self.err,
                "sizes": [int(lv.size) for lv in self.levels],
                "compactions": list(self.compactions),
                "items": np.concatenate([*self.levels, np.zeros(0)]).tolist()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> KLLSketch:
        """Inverse of :meth:`to_row`."""
        sizes = [int(s) for s in row["sizes"]]
        items = np.asarray(row["items"], dtype=np.float64)
        if sum(sizes) != items.size or len(sizes) != len(row["compactions"]):
            raise CalculatorError("malformed KLL sketch row")
        bounds = np.cumsum([0, *sizes])
        levels = tuple(items[a:b] for a, b in itertools.pairwise(bounds))
        sketch = cls(k=int(row["k"]), n=int(row["n"]), levels=levels,
                     compactions=tuple(int(c) for c in row["compactions"]), err=int(row["err"]))
        if sum(lv.size * 2 ** h for h, lv in enumerate(levels)) != sketch.n:
            raise CalculatorError("KLL sketch row: level weights do not sum to n")
        return sketch


def _compress(k: int, levels: list[np.ndarray], compactions: list[int], err: int) -> KLLSketch:
    """Compact every level holding more than ``k`` items, bottom up (levels are sorted)."""
    h = 0
    while h < len(levels):
        buf = levels[h]
        if buf.size > k:
            odd = buf.size % 2
            body = buf[:buf.size - odd]
            up = body[compactions[h] % 2::2]
            levels[h] = buf[buf.size - odd:].copy()
            compactions[h] += 1
            err += 2 ** h
            if h + 1 == len(levels):
                levels.append(np.zeros(0))
                compactions.append(0)
            levels[h + 1] = np.sort(np.concatenate([levels[h + 1], up]), kind="stable")
        h += 1
    n = int(sum(lv.size * 2 ** i for i, lv in enumerate(levels)))
    return KLLSketch(k=k, n=n, levels=tuple(levels), compactions=tuple(compactions), err=err)


def merge_sketches(sketches: Sequence[KLLSketch]) -> KLLSketch:
    """One sketch of the union: every level concatenated and sorted, then compacted. The
    result does not depend on the order of ``sketches``; all must share ``k``."""
    if not sketches:
        raise CalculatorError("nothing to merge")
    ks = {s.k for s in sketches}
    if len(ks) > 1:
        raise CalculatorError(f"KLL sketches with different k do not merge: {sorted(ks)}")
    depth = max(len(s.levels) for s in sketches)
    levels = [np.sort(np.concatenate([s.levels[h] for s in sketches if h < len(s.levels)]
                                     + [np.zeros(0)]), kind="stable") for h in range(depth)]
    compactions = [sum(s.compactions[h] for s in sketches if h < len(s.compactions))
                   for h in range(depth)]
    return _compress(ks.pop(), levels, compactions, sum(s.err for s in sketches))


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Two-sample KS critical distance at ``alpha`` (Stephens-corrected asymptotic form, the
    one :func:`monitor.lake.signals.ks_binned` inverts)."""
    from scipy.stats import kstwobign

    en = float(np.sqrt(n * m / (n + m)))
    return float(kstwobign.isf(alpha) / (en + 0.12 + 0.11 / en))


def sketch_ks(ref: KLLSketch, cur: KLLSketch) -> dict[str, float]:
    """Two-sample KS from two sketches: the sketch distance ``D``, the allowance
    ``epsilon_ref + epsilon_cur`` (the exact distance is at least ``D`` minus it), the naive
    p-value of ``D`` and the conservative p-value of ``max(D - allowance, 0)``, both from the
    Stephens-corrected asymptotic distribution at the two sample sizes."""
    from scipy.stats import kstwobign

    if ref.n == 0 or cur.n == 0:
        raise CalculatorError("KS of an empty sketch")
    grid = np.unique(np.concatenate([*ref.levels, *cur.levels]))
    d = float(np.max(np.abs(ref.cdf(grid) - cur.cdf(grid))))
    allowance = ref.epsilon + cur.epsilon
    en = float(np.sqrt(ref.n * cur.n / (ref.n + cur.n)))
    lam = en + 0.12 + 0.11 / en
    return {"statistic": d, "allowance": allowance,
            "p_value_naive": float(kstwobign.sf(lam * d)),
            "p_value": float(kstwobign.sf(lam * max(d - allowance, 0.0)))}
