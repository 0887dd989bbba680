"""Histograms and class shares of a reference and a current window (pure numpy)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ClassShares", "Histogram", "class_shares", "histogram"]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Shared bin edges and the share of each side's rows per bin (each side sums to 1)."""

    edges: tuple[float, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


def histogram(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
    integer: bool = False,
) -> Histogram:
    """Histogram both sides on common edges (``value_range`` or the pooled finite range);
    ``integer`` data spanning at most 60 values gets one bin per value."""
    ref = reference[np.isfinite(reference)]
    cur = current[np.isfinite(current)]
    if value_range is None:
        pooled = np.concatenate([ref, cur])
        lo, hi = (float(pooled.min()), float(pooled.max())) if pooled.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        value_range = (lo, hi)
    if integer and value_range[1] - value_range[0] <= 60:
        # integer data (token counts): one bin per value, centred on it
        edges = np.arange(np.floor(value_range[0]) - 0.5, np.ceil(value_range[1]) + 1.0, 1.0)
        value_range = (float(edges[0]), float(edges[-1]))
    else:
        edges = np.linspace(value_range[0], value_range[1], bins + 1)

    def shares(x: np.ndarray) -> tuple[float, ...]:
        counts, _ = np.histogram(np.clip(x, value_range[0], value_range[1]), bins=edges)
        total = counts.sum()
        return tuple(float(c / total) if total else 0.0 for c in counts)

    return Histogram(tuple(float(e) for e in edges), shares(ref), shares(cur))


@dataclass(frozen=True, slots=True)
class ClassShares:
    """Per label (sorted by reference share, then name): counts and shares on both sides."""

    labels: tuple[str, ...]
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]

    @property
    def reference(self) -> tuple[float, ...]:
        total = sum(self.reference_counts) or 1
        return tuple(c / total for c in self.reference_counts)

    @property
    def current(self) -> tuple[float, ...]:
        total = sum(self.current_counts) or 1
        return tuple(c / total for c in self.current_counts)


def class_shares(reference: Sequence[str], current: Sequence[str]) -> ClassShares:
    """Label counts of both windows over the union of their labels."""
    ref, cur = Counter(reference), Counter(current)
    labels = sorted(set(ref) | set(cur), key=lambda lab: (-ref.get(lab, 0), -cur.get(lab, 0), lab))
    return ClassShares(tuple(labels), tuple(ref.get(lab, 0) for lab in labels),
                       tuple(cur.get(lab, 0) for lab in labels))
