"""The demo's data: a training split for v1, a held-out reference, and traffic windows.

Everything comes from the shared labelled data sets (:mod:`monitor.datasets`):
UCI Amazon sentences are the model's home domain; Yelp and IMDb sentences are
the drift; one window of SST-2 sentences (lower-cased, PTB-tokenised: "it 's
a charming ... .") shows the tokenizer signal. Every split is disjoint, so a
text is never both trained on and served, nor served twice.

Pure computation apart from reading the data files; seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from monitor import datasets
from monitor.datasets import TextDataset
from monitor.errors import ConfigError

__all__ = ["HOME_DOMAIN", "MIX_DOMAIN", "DemoData", "TrafficPlan", "TrafficWindow", "build_traffic",
           "load_sources"]

HOME_DOMAIN = "amazon"
MIX_DOMAIN = "yelp+imdb"  # half Yelp, half IMDb, shuffled: the new normal after the drift
_DOMAINS = ("amazon", "yelp", "imdb", "sst2", MIX_DOMAIN)




def _schedule(n_mix: int) -> tuple[str, ...]:
    """In-domain twice; drift to Yelp, then IMDb (the policy retrains on the second window in a
    row); the new mixed normal ``n_mix`` times, the last of them served by a deliberately bad
    version force-promoted before it (the rollback rule fires); then SST-2's lower-cased,
    tokenised text (the tokenizer signal)."""
    return ("amazon", "amazon", "yelp", "imdb", *([MIX_DOMAIN] * n_mix), "sst2")


# full: 3 mixed windows of 200 rows before the bad one; quick: 10 of 100 rows, so that a candidate
# kept in shadow sees about 1,000 labelled rows ingested after it (the paired test asked for
# about 900 in a measured run: docs/demo.md) before the bad promotion
_FULL_MIX, _QUICK_MIX = 4, 11


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """Sizes and order of the demo's data.

    ``schedule`` names the domain of each traffic window in serving order;
    each window spans ``window_hours`` simulated hours. ``yelp+imdb`` windows
    are half Yelp, half IMDb, shuffled. Ground truth for ``label_fraction``
    of each window arrives before its check, ``shadow_label_fraction`` while
    a retrained candidate waits in shadow (its paired test needs hundreds
    of labelled rows ingested after it). ``n_original_holdout`` more held-out
    home-domain rows join the original validation split (the guard's
    forgetting test needs hundreds of them); ``bad_promotion_window`` is the
    index of the window a deliberately bad version is force-promoted before
    (``None``: no bad-promotion stage).
    """

    n_train: int
    n_validation: int
    n_reference: int
    window_size: int
    n_eval: int
    schedule: tuple[str, ...]
    window_hours: float = 1.0
    label_fraction: float = 0.5  # share of each window whose ground truth arrives before its check
    shadow_label_fraction: float = 1.0  # that share while a candidate waits in shadow
    production_share: float = 0.5  # retrain: share of labelled production rows in the training mix
    n_original_holdout: int = 0
    bad_promotion_window: int | None = None

    @classmethod
    def full(cls) -> TrafficPlan:
        """The full story: 200-row windows, 350 Amazon training sentences."""
        return cls(n_train=350, n_validation=100, n_reference=150, window_size=200, n_eval=200,
                   schedule=_schedule(_FULL_MIX), bad_promotion_window=3 + _FULL_MIX)

    @classmethod
    def quick(cls) -> TrafficPlan:
        """The same story with smaller splits and windows, and a retrain on production rows only
        (fewer training steps; CI)."""
        return cls(n_train=250, n_validation=60, n_reference=100, window_size=100, n_eval=100,
                   schedule=_schedule(_QUICK_MIX), production_share=1.0, n_original_holdout=390,
                   bad_promotion_window=3 + _QUICK_MIX)

    def __post_init__(self) -> None:
        for name in ("n_train", "n_validation", "n_reference", "window_size", "n_eval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"traffic plan: {name} must be positive")
        if self.n_original_holdout < 0:
            raise ConfigError("traffic plan: n_original_holdout must be >= 0")
        if self.bad_promotion_window is not None and not 0 < self.bad_promotion_window < len(self.schedule):
            raise ConfigError("traffic plan: bad_promotion_window must index a window after the first")
        unknown = [d for d in self.schedule if d not in _DOMAINS]
        if unknown:
            raise ConfigError(f"traffic plan: unknown domain(s) {unknown} (choose from {_DOMAINS})")
        if not 0.0 < self.production_share <= 1.0:
            raise ConfigError("traffic plan: production_share must be in (0, 1]")
        if not 0.0 <= self.label_fraction <= 1.0:
            raise ConfigError("traffic plan: label_fraction must be in [0, 1]")
        if not 0.0 <= self.shadow_label_fraction <= 1.0:
            raise ConfigError("traffic plan: shadow_label_fraction must be in [0, 1]")
        if not self.window_hours > 0:
            raise ConfigError("traffic plan: window_hours must be positive")


@dataclass(frozen=True, slots=True)
class TrafficWindow:
    """One window of served traffic: texts, their true labels and a simulated time span."""

    index: int
    domain: str
    texts: list[str]
    labels: list[str]
    start: datetime
    end: datetime

    @property
    def shifted(self) -> bool:
        """True when the window is not from the model's home domain."""
        return self.domain != HOME_DOMAIN

    @property
    def name(self) -> str:
        """A short name such as ``w03-yelp`` (1-based)."""
        return f"w{self.index + 1:02d}-{self.domain}"

    def timestamps(self) -> list[datetime]:
        """One timestamp per text, evenly spread over ``[start, end)``, increasing."""
        n = len(self.texts)
        step = (self.end - self.start) / max(n, 1)
        return [self.start + i * step for i in range(n)]


@dataclass(frozen=True, slots=True)
class DemoData:
    """Everything the story serves or trains on; all splits disjoint."""

    train: TextDataset
    validation: TextDataset
    reference: TextDataset
    windows: tuple[TrafficWindow, ...]
    shifted_eval: TextDataset  # held-out Yelp + IMDb, never served: accuracy before/after
    home_eval: TextDataset  # held-out Amazon (the reference texts): forgetting check
    original_holdout: TextDataset | None = None  # more held-out Amazon for the guard's forgetting test


def load_sources(directory: str | Path | None = None) -> dict[str, TextDataset]:
    """The four demo domains: UCI Amazon, Yelp, IMDb and SST-2 (test split)."""
    return {
        "amazon": datasets.uci("amazon", directory),
        "yelp": datasets.uci("yelp", directory),
        "imdb": datasets.uci("imdb", directory),
        "sst2": datasets.sst2("test", directory),
    }


class _Pool:
    """Draws disjoint, shuffled slices from one data set."""

    def __init__(self, ds: TextDataset, rng: np.random.Generator) -> None:
        self.ds = ds
        self.order = rng.permutation(len(ds))
        self.used = 0

    def take(self, n: int, what: str) -> TextDataset:
        if self.used + n > len(self.order):
            raise ConfigError(
                f"traffic plan needs {self.used + n} {self.ds.name} sentences for {what}, "
                f"the data set has {len(self.order)}"
            )
        idx = self.order[self.used:self.used + n]
        self.used += n
        return self.ds.subset(idx)


def build_traffic(
    plan: TrafficPlan,
    sources: dict[str, TextDataset],
    *,
    start: datetime,
    seed: int = 0,
) -> DemoData:
    """Split the sources into the plan's disjoint parts; windows start at ``start``.

    Raises :class:`ConfigError` when a data set is too small for the plan or
    a domain is missing from ``sources``.
    """
    if start.tzinfo is None:
        raise ConfigError("traffic start time must be timezone-aware (UTC)")
    needed = {HOME_DOMAIN, "yelp", "imdb", *plan.schedule} - {MIX_DOMAIN}
    missing = sorted(needed - set(sources))
    if missing:
        raise ConfigError(f"traffic sources lack domain(s): {', '.join(missing)}")
    rng = np.random.default_rng(seed)
    pools = {name: _Pool(sources[name], rng) for name in sorted(needed)}
    home = pools[HOME_DOMAIN]
    train = home.take(plan.n_train, "training")
    validation = home.take(plan.n_validation, "validation")
    reference = home.take(plan.n_reference, "the reference set")
    half = plan.n_eval // 2
    shifted_eval = _concat("yelp+imdb-eval", [pools["yelp"].take(half, "evaluation"),
                                              pools["imdb"].take(plan.n_eval - half, "evaluation")])
    span = timedelta(hours=plan.window_hours)
    windows: list[TrafficWindow] = []
    for i, domain in enumerate(plan.schedule):
        what = f"window {i + 1}"
        if domain == MIX_DOMAIN:
            half = plan.window_size // 2
            mixed = _concat(domain, [pools["yelp"].take(half, what),
                                     pools["imdb"].take(plan.window_size - half, what)])
            part = mixed.subset(rng.permutation(len(mixed)))
        else:
            part = pools[domain].take(plan.window_size, what)
        windows.append(TrafficWindow(i, domain, part.texts, part.labels,
                                     start + i * span, start + (i + 1) * span))
    holdout = home.take(plan.n_original_holdout, "the original validation split")
    return DemoData(train=train, validation=validation, reference=reference, windows=tuple(windows),
                    shifted_eval=shifted_eval, home_eval=reference, original_holdout=holdout)


def _concat(name: str, parts: Sequence[TextDataset]) -> TextDataset:
    return TextDataset(name, [t for p in parts for t in p.texts], [y for p in parts for y in p.labels])
