"""Traffic building: disjoint splits, sizes, order, simulated time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.datasets import TextDataset
from monitor.demo.traffic import TrafficPlan, build_traffic, load_sources
from monitor.errors import ConfigError

START = datetime(2026, 1, 1, tzinfo=UTC)


def _fake_sources(n: int = 400) -> dict[str, TextDataset]:
    return {d: TextDataset(d, [f"{d} sentence {i}" for i in range(n)], [str(i % 2) for i in range(n)])
            for d in ("amazon", "yelp", "imdb", "sst2")}


def _small_plan(**kw: object) -> TrafficPlan:
    base: dict[str, object] = dict(n_train=100, n_validation=20, n_reference=30, window_size=25, n_eval=40,
                                   schedule=("amazon", "amazon", "yelp", "imdb", "sst2", "yelp+imdb"))
    base.update(kw)
    return TrafficPlan(**base)  # type: ignore[arg-type]


def test_splits_are_disjoint_and_sized() -> None:
    data = build_traffic(_small_plan(), _fake_sources(), start=START, seed=1)
    assert (len(data.train), len(data.validation), len(data.reference)) == (100, 20, 30)
    assert len(data.shifted_eval) == 40
    assert [w.domain for w in data.windows] == ["amazon", "amazon", "yelp", "imdb", "sst2", "yelp+imdb"]
    assert all(len(w.texts) == len(w.labels) == 25 for w in data.windows)
    served = [t for w in data.windows for t in w.texts]
    everything = (served + data.train.texts + data.validation.texts + data.reference.texts
                  + data.shifted_eval.texts)
    assert len(set(everything)) == len(everything)
    # every window's texts come from its own domain(s), with their own labels
    for w in data.windows:
        assert all(t.split(" ")[0] in w.domain.split("+") for t in w.texts)
        assert all(lab == str(int(t.rsplit(" ", 1)[1]) % 2) for t, lab in zip(w.texts, w.labels, strict=True))


def test_mixed_windows_are_half_and_half_and_shuffled() -> None:
    data = build_traffic(_small_plan(window_size=40), _fake_sources(), start=START, seed=2)
    mix = data.windows[-1]
    domains = [t.split(" ")[0] for t in mix.texts]
    assert domains.count("yelp") == domains.count("imdb") == 20
    assert domains[:20] != ["yelp"] * 20  # shuffled, not two blocks
    assert mix.shifted and mix.name == "w06-yelp+imdb"


def test_windows_follow_each_other_in_simulated_time() -> None:
    data = build_traffic(_small_plan(window_hours=2.0), _fake_sources(), start=START)
    for i, w in enumerate(data.windows):
        assert w.start == START + timedelta(hours=2 * i)
        assert w.end == w.start + timedelta(hours=2)
        ts = w.timestamps()
        assert len(ts) == len(w.texts)
        assert ts[0] == w.start and ts[-1] < w.end
        assert all(a < b for a, b in itertools.pairwise(ts))
    assert [w.shifted for w in data.windows] == [False, False, True, True, True, True]
    assert data.windows[2].name == "w03-yelp"


def test_seed_decides_the_split() -> None:
    a = build_traffic(_small_plan(), _fake_sources(), start=START, seed=3)
    b = build_traffic(_small_plan(), _fake_sources(), start=START, seed=3)
    c = build_traffic(_small_plan(), _fake_sources(), start=START, seed=4)
    assert a.windows[2].texts == b.windows[2].texts
    assert a.windows[2].texts != c.windows[2].texts


def test_too_small_a_data_set_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"needs 410 amazon sentences for window 2"):
        build_traffic(_small_plan(n_train=310), _fake_sources(400), start=START)


def test_the_original_holdout_is_disjoint_from_everything_else() -> None:
    data = build_traffic(_small_plan(n_original_holdout=40), _fake_sources(), start=START, seed=5)
    assert data.original_holdout is not None and len(data.original_holdout) == 40
    assert all(t.startswith("amazon ") for t in data.original_holdout.texts)
    others = {t for w in data.windows for t in w.texts} | set(data.train.texts) | set(
        data.validation.texts) | set(data.reference.texts)
    assert not others & set(data.original_holdout.texts)


def test_bad_plans_are_rejected() -> None:
    with pytest.raises(ConfigError, match="bad_promotion_window"):
        _small_plan(bad_promotion_window=6)
    with pytest.raises(ConfigError, match="n_original_holdout"):
        _small_plan(n_original_holdout=-1)
    with pytest.raises(ConfigError, match="unknown domain"):
        _small_plan(schedule=("amazon", "twitter"))
    with pytest.raises(ConfigError, match="window_size"):
        _small_plan(window_size=0)
    with pytest.raises(ConfigError, match="timezone"):
        build_traffic(_small_plan(), _fake_sources(), start=datetime(2026, 1, 1))


@pytest.mark.parametrize("plan", [TrafficPlan.full(), TrafficPlan.quick()])
def test_shipped_plans_fit_the_shared_data(plan: TrafficPlan, data_dir: object) -> None:
    data = build_traffic(plan, load_sources(), start=START, seed=0)
    assert len(data.windows) == len(plan.schedule)
    assert plan.bad_promotion_window is not None
    assert data.windows[plan.bad_promotion_window].domain == "yelp+imdb"
    assert {w.domain for w in data.windows} == {"amazon", "yelp", "imdb", "sst2", "yelp+imdb"}
    sst2 = next(w for w in data.windows if w.domain == "sst2")
    # SST-2 is lower-cased and PTB-tokenised: " 's" and " ." are split off
    assert all(t == t.lower() for t in sst2.texts)
    assert np.mean([" ." in t or " ," in t for t in sst2.texts]) > 0.5
    # the home domain's labels are balanced-ish in the training split
    assert 0.35 < np.mean([y == "1" for y in data.train.labels]) < 0.65
