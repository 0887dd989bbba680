"""The all-rows embedding test: Hotelling's T² on mergeable random-Fourier-feature moments.

The MMD test (:mod:`monitor.drift.embedding`) caps each side at ``max_rows``
because its kernel matrix is quadratic in the rows. Its kernel, though, has an
explicit finite approximation (Rahimi & Recht 2007): with ``w ~ N(0, 2γI)``
and ``b ~ U(0, 2π)``, ``φ(x) = sqrt(2/D) cos(Wx + b)`` gives
``φ(x)·φ(y) ≈ exp(-γ‖x − y‖²)``, and the squared MMD is the squared distance
between the two *mean* feature vectors. A mean needs only the count, the sum
and (for its covariance) the sum of outer products: :class:`RFFMoments`, which
add, so a window of any size, split over any number of files, replicas or
Spark partitions, merges exactly. The test is Hotelling's two-sample T² on
the two mean vectors, with the pooled covariance of the features, and its
F-distribution p-value: every row of the window counts, in ``O(n·D²)`` time
and ``O(D²)`` memory.

The feature map is fixed before any data is seen (:class:`RFFMap`): the
embedding is L2-normalised (sentence embeddings are compared by angle), and
γ = 1/2, i.e. a unit-bandwidth RBF kernel on the unit sphere, whose chord
distances lie in [0, 2] (MiniLM sentence pairs sit near √1.6, so the kernel is
neither flat nor spiky). ``W`` and ``b`` come from a seeded generator, so
every writer of a partial and every reader of the lake computes the same
features; the map's :attr:`RFFMap.spec` names it and merging refuses to mix
specs.

Per predicted class moments are kept too (their sum is the window's), so the
details say which classes moved: a pure label-prior shift moves the overall
mean while every class stays in place.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.drift.base import DriftCalculator, DriftResult
from monitor.drift.embedding import check_matrix
from monitor.drift.frame import DriftFrame
from monitor.errors import CalculatorError

__all__ = ["RFFHotellingDrift", "RFFMap", "RFFMoments", "class_moments", "hotelling",
           "merge_class_moments"]

#: Eigenvalues of the pooled covariance below this fraction of the largest are dropped
#: (their directions carry no variance; the F test then uses the remaining rank).
_RANK_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class RFFMap:
    """A fixed random-Fourier-feature map for ``dim``-dimensional embeddings."""

    dim: int
    n_features: int = 64
    seed: int = 0
    gamma: float = 0.5

    def __post_init__(self) -> None:
        if self.dim < 1 or self.n_features < 2:
            raise CalculatorError("rff: dim must be >= 1 and n_features >= 2")
        if not self.gamma > 0:
            raise CalculatorError("rff: gamma must be positive")

    @property
    def spec(self) -> str:
        """A stable name of this map; partials built with different maps never merge."""
        return f"rff1:d={self.dim}:D={self.n_features}:seed={self.seed}:gamma={self.gamma:g}"

    @classmethod
    def from_spec(cls, spec: str) -> RFFMap:
        """Rebuild a map from :attr:`spec`."""
        try:
            head, *fields = spec.split(":")
            if head != "rff1":
                raise ValueError(head)
            kv = dict(f.split("=", 1) for f in fields)
            return cls(dim=int(kv["d"]), n_features=int(kv["D"]), seed=int(kv["seed"]),
                       gamma=float(kv["gamma"]))
        except (ValueError, KeyError) as exc:
            raise CalculatorError(f"rff: malformed feature-map spec '{spec}'") from exc

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Features of the rows of ``x`` (n, dim) as an (n, n_features) float64 matrix."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise CalculatorError(f"rff: expected embeddings of dimension {self.dim}, "
                                  f"got shape {x.shape}")
        w, b = _weights(self.dim, self.n_features, self.seed, self.gamma)
        u = np.asarray(x, dtype=np.float64)
        norms = np.linalg.norm(u, axis=1, keepdims=True)
        u = u / np.where(norms > 0, norms, 1.0)
        out: np.ndarray = math.sqrt(2.0 / self.n_features) * np.cos(u @ w.T + b)
        return out


@functools.lru_cache(maxsize=16)
def _weights(dim: int, n_features: int, seed: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    w = rng.normal(scale=math.sqrt(2.0 * gamma), size=(n_features, dim))
    b = rng.uniform(0.0, 2.0 * math.pi, size=n_features)
    w.setflags(write=False)
    b.setflags(write=False)
    return w, b


@dataclass(frozen=True, slots=True)
class RFFMoments:
    """Count, sum and sum of outer products of feature vectors: exactly mergeable."""

    n: int
    total: np.ndarray  # (D,) float64
    outer: np.ndarray  # (D, D) float64

    @classmethod
    def zeros(cls, n_features: int) -> RFFMoments:
        return cls(0, np.zeros(n_features), np.zeros((n_features, n_features)))

    @classmethod
    def of(cls, features: np.ndarray) -> RFFMoments:
        """Moments of the rows of a feature matrix."""
        f = np.asarray(features, dtype=np.float64)
        return cls(int(f.shape[0]), f.sum(axis=0), f.T @ f)

    def __add__(self, other: RFFMoments) -> RFFMoments:
        if self.total.shape != other.total.shape:
            raise CalculatorError("rff: cannot merge moments of different feature counts")
        return RFFMoments(self.n + other.n, self.total + other.total, self.outer + other.outer)

    @property
    def mean(self) -> np.ndarray:
        out: np.ndarray = self.total / max(self.n, 1)
        return out

    def scatter(self) -> np.ndarray:
        """Sum of squared deviations from the mean, ``Σ (φ − μ)(φ − μ)ᵀ``."""
        mu = self.mean
        out: np.ndarray = self.outer - self.n * np.outer(mu, mu)
        return out


def class_moments(features: np.ndarray, labels: np.ndarray) -> dict[str, RFFMoments]:
    """Per-predicted-class moments (their sum is the moments of all rows)."""
    out: dict[str, RFFMoments] = {}
    labs = np.asarray([str(v) for v in labels], dtype=object)
    for lab in sorted(set(labs.tolist())):
        out[lab] = RFFMoments.of(features[labs == lab])
    return out


def merge_class_moments(parts: list[Mapping[str, RFFMoments]], n_features: int
                        ) -> dict[str, RFFMoments]:
    """Add per-class moments of several parts, class by class (labels in sorted order)."""
    labels = sorted({lab for p in parts for lab in p})
    out: dict[str, RFFMoments] = {}
    for lab in labels:
        acc = RFFMoments.zeros(n_features)
        for p in parts:
            if lab in p:
                acc = acc + p[lab]
        out[lab] = acc
    return out


def total_moments(by_class: Mapping[str, RFFMoments], n_features: int) -> RFFMoments:
    """All rows' moments from per-class moments."""
    acc = RFFMoments.zeros(n_features)
    for lab in sorted(by_class):
        acc = acc + by_class[lab]
    return acc


@dataclass(frozen=True, slots=True)
class HotellingResult:
    """Hotelling's two-sample T² and its F test."""

    t2: float
    f: float
    df1: int
    df2: int
    p_value: float
    mmd2: float  # squared distance of the mean features (the RFF estimate of MMD²)


def hotelling(a: RFFMoments, b: RFFMoments) -> HotellingResult | None:
    """Two-sample Hotelling T² on the feature means; ``None`` when the rows are too few:
    fewer than ``2D + 1`` in all, for ``D`` features (the covariance must be estimated
    with at least as many residual degrees of freedom as it has dimensions)."""
    n_a, n_b = a.n, b.n
    if n_a < 2 or n_b < 2 or n_a + n_b < 2 * a.total.size + 1:
        return None
    pooled = (a.scatter() + b.scatter()) / (n_a + n_b - 2)
    pooled = (pooled + pooled.T) / 2.0
    vals, vecs = np.linalg.eigh(pooled)
    top = float(vals[-1]) if vals.size else 0.0
    if not top > 0:
        return None
    keep = vals > _RANK_TOL * top
    rank = int(keep.sum())
    df2 = n_a + n_b - rank - 1
    if df2 < 1:
        return None
    delta = a.mean - b.mean
    proj = vecs[:, keep].T @ delta
    t2 = (n_a * n_b / (n_a + n_b)) * float(np.sum(proj**2 / vals[keep]))
    f = t2 * df2 / (rank * (n_a + n_b - 2))
    from scipy.stats import f as f_dist

    p = float(f_dist.sf(f, rank, df2))
    return HotellingResult(t2=t2, f=f, df1=rank, df2=df2, p_value=p,
                           mmd2=float(delta @ delta))


class RFFHotellingDrift(DriftCalculator):
    """Embedding drift on every row: Hotelling's T² on random-Fourier-feature means.

    Fitting keeps the reference's per-class moments only, so it is also built
    straight from merged partials with :meth:`from_moments`; :meth:`compare`
    tests current moments from any source.
    """

    signal = "embedding"
    method = "rff_hotelling"

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20, n_features: int = 64,
                 rff_seed: int = 0, gamma: float = 0.5, per_class_min_rows: int = 20,
                 seed: int = 0) -> None:
        super().__init__(threshold=threshold, min_rows=min_rows)
        if n_features < 2:
            raise CalculatorError("embedding (rff_hotelling): n_features must be at least 2")
        self.n_features = n_features
        self.rff_seed = rff_seed
        self.gamma = gamma
        self.per_class_min_rows = per_class_min_rows
        self.seed = seed  # accepted for the suite's uniform interface; the test is deterministic
        self._map: RFFMap | None = None
        self._ref: dict[str, RFFMoments] = {}

    @classmethod
    def from_moments(cls, feature_map: RFFMap, reference: Mapping[str, RFFMoments],
                     **kwargs: Any) -> RFFHotellingDrift:
        """A fitted calculator from a reference's per-class moments (e.g. merged partials)."""
        calc = cls(n_features=feature_map.n_features, rff_seed=feature_map.seed,
                   gamma=feature_map.gamma, **kwargs)
        calc._map = feature_map
        calc._ref = dict(reference)
        calc._n_reference = sum(m.n for m in reference.values())
        return calc

    @property
    def feature_map(self) -> RFFMap | None:
        """The fitted feature map (``None`` before fitting)."""
        return self._map

    def _count(self, frame: DriftFrame) -> int:
        return 0 if frame.embedding is None else int(frame.embedding.shape[0])

    def _fit(self, reference: DriftFrame) -> None:
        x = check_matrix(reference.embedding, "reference", cast=False)
        self._map = RFFMap(dim=int(x.shape[1]), n_features=self.n_features, seed=self.rff_seed,
                           gamma=self.gamma)
        self._ref = class_moments(self._map.transform(x), reference.predicted_label)

    def _compute(self, current: DriftFrame) -> DriftResult:
        if self._map is None:
            raise CalculatorError("embedding (rff_hotelling): fitted reference has no embeddings")
        y = check_matrix(current.embedding, "current", cast=False)
        if y.shape[1] != self._map.dim:
            raise CalculatorError(f"embedding dimension mismatch: reference has {self._map.dim}, "
                                  f"current has {y.shape[1]}")
        return self.compare(class_moments(self._map.transform(y), current.predicted_label))

    def compare(self, current: Mapping[str, RFFMoments]) -> DriftResult:
        """Test current per-class moments against the reference's."""
        if self._map is None:
            raise CalculatorError("embedding (rff_hotelling): call fit() before compare()")
        D = self._map.n_features
        ref_all = total_moments(self._ref, D)
        cur_all = total_moments(current, D)
        if ref_all.n < self.min_rows or cur_all.n < self.min_rows:
            return self.result(statistic=None, p_value=None, drifted=False, n_current=cur_all.n,
                               status="insufficient_data",
                               details={"min_rows": self.min_rows,
                                        "reason": f"needs at least {self.min_rows} rows on each side"})
        res = hotelling(ref_all, cur_all)
        if res is None:
            return self.result(statistic=None, p_value=None, drifted=False, n_current=cur_all.n,
                               status="insufficient_data",
                               details={"reason": f"needs at least {2 * D + 1} rows in all "
                                                  f"for {D} features"})
        details: dict[str, Any] = {
            "feature_map": self._map.spec, "t2": res.t2, "f": res.f, "df": [res.df1, res.df2],
            "mmd2_rff": res.mmd2, "rows_used": [ref_all.n, cur_all.n],
            "per_class": self._per_class(current),
        }
        return self.result(statistic=res.t2, p_value=res.p_value,
                           drifted=res.p_value < self.threshold, n_current=cur_all.n,
                           details=details)

    def _per_class(self, current: Mapping[str, RFFMoments]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for lab in sorted(set(self._ref) | set(current)):
            r = self._ref.get(lab)
            c = current.get(lab)
            n_r, n_c = (r.n if r else 0), (c.n if c else 0)
            entry: dict[str, Any] = {"n_reference": n_r, "n_current": n_c}
            res = (hotelling(r, c) if r is not None and c is not None
                   and min(n_r, n_c) >= self.per_class_min_rows else None)
            if res is None:
                entry["status"] = "insufficient_data"
            else:
                entry.update({"t2": res.t2, "p_value": res.p_value, "mmd2_rff": res.mmd2,
                              "status": "ok"})
            out[lab] = entry
        return out


