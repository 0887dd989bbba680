"""Partials merge exactly: split a window any way, merge, and get the whole window's statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

from monitor.drift.frame import DriftFrame
from monitor.drift.rff import RFFMap
from monitor.lake.partials import (
    PartialKey,
    merge_partials,
    partial_from_frame,
    partials_from_arrow,
    partials_to_arrow,
)
from tests.lake.conftest import T0, record_table

KEY = PartialKey("m", "1", "2026-11-30", "00", "r")


def _frame(table: pa.Table) -> DriftFrame:
    return DriftFrame.from_arrow(table)


def test_merged_parts_equal_the_whole() -> None:
    rng = np.random.default_rng(0)
    table = record_table(900, rng, start=T0, prior=(0.5, 0.3, 0.2))
    fmap = RFFMap(dim=16, n_features=32)
    whole = partial_from_frame(KEY, _frame(table), feature_map=fmap, sample_k=100)
    cuts = [0, 17, 400, 401, 900]
    parts = [partial_from_frame(KEY, _frame(table.slice(a, b - a)), feature_map=fmap,
                                sample_k=100) for a, b in itertools.pairwise(cuts)]
    merged = merge_partials(parts[::-1], KEY)  # order of the parts does not matter
    assert merged.n == whole.n == 900
    assert merged.class_counts == whole.class_counts
    assert np.array_equal(merged.conf_hist, whole.conf_hist)
    assert merged.entropy_hist is not None and whole.entropy_hist is not None
    assert np.array_equal(merged.entropy_hist, whole.entropy_hist)
    assert merged.ntok_hist is not None and whole.ntok_hist is not None
    assert np.array_equal(merged.ntok_hist, whole.ntok_hist)
    assert (merged.n_unk_rows, merged.n_truncated, merged.n_tok_rows) == (
        whole.n_unk_rows, whole.n_truncated, whole.n_tok_rows)
    assert sorted(merged.rff) == sorted(whole.rff)
    for lab, mom in whole.rff.items():
        assert merged.rff[lab].n == mom.n
        np.testing.assert_allclose(merged.rff[lab].total, mom.total, rtol=1e-12)
        np.testing.assert_allclose(merged.rff[lab].outer, mom.outer, rtol=1e-11, atol=1e-12)
    # bottom-k of the union is the bottom-k of the whole: the same rows, in hash order
    assert np.array_equal(merged.sample_hash, whole.sample_hash)
    assert merged.sample_embedding is not None and whole.sample_embedding is not None
    assert np.array_equal(merged.sample_embedding, whole.sample_embedding)
    assert list(merged.sample_label) == list(whole.sample_label)


def test_bottom_k_sample_is_uniform_and_counts_resent_rows_once() -> None:
    rng = np.random.default_rng(1)
    table = record_table(2000, rng, start=T0)
    fmap = RFFMap(dim=16, n_features=8)
    p = partial_from_frame(KEY, _frame(table), feature_map=fmap, sample_k=200)
    again = partial_from_frame(KEY, _frame(table.slice(0, 500)), feature_map=fmap, sample_k=200)
    merged = merge_partials([p, again], KEY)  # the first 500 rows were sent twice
    assert np.array_equal(merged.sample_hash, p.sample_hash)
    assert np.all(np.diff(merged.sample_hash.astype(np.float64)) > 0)
    # the sample is not biased towards early rows: its positions spread over the window
    ids = table["event_id"].to_pylist()
    from monitor.lake.partials import event_hashes

    pos = np.flatnonzero(np.isin(event_hashes(ids), merged.sample_hash))
    assert pos.size == 200 and 700 < pos.mean() < 1300


def test_arrow_round_trip_keeps_every_statistic() -> None:
    rng = np.random.default_rng(2)
    fmap = RFFMap(dim=16, n_features=16)
    p = partial_from_frame(KEY, _frame(record_table(300, rng, start=T0)), feature_map=fmap,
                           files=("predictions/x.parquet",), sample_k=50)
    (back,) = partials_from_arrow(partials_to_arrow([p]))
    assert back.key == p.key and back.files == p.files and back.n == p.n
    assert back.class_counts == p.class_counts and back.rff_spec == p.rff_spec
    for lab in p.rff:
        assert np.array_equal(back.rff[lab].outer, p.rff[lab].outer)
    assert back.sample_embedding is not None and p.sample_embedding is not None
    assert np.array_equal(back.sample_embedding, p.sample_embedding)


def test_partials_of_different_feature_maps_refuse_to_merge() -> None:
    import pytest

    from monitor.errors import CalculatorError

    rng = np.random.default_rng(3)
    frame = _frame(record_table(100, rng, start=T0))
    a = partial_from_frame(KEY, frame, feature_map=RFFMap(dim=16, n_features=8, seed=0))
    b = partial_from_frame(KEY, frame, feature_map=RFFMap(dim=16, n_features=8, seed=1))
    with pytest.raises(CalculatorError, match="different feature maps"):
        merge_partials([a, b], KEY)


def test_unbounded_columns_are_sketched_and_survive_the_round_trip() -> None:
    from monitor.lake.kll import KLLSketch

    rng = np.random.default_rng(4)
    table = record_table(900, rng, start=T0)
    frame = _frame(table)
    fmap = RFFMap(dim=16, n_features=8)
    parts = [partial_from_frame(KEY, _frame(table.slice(a, b - a)), feature_map=fmap, kll_k=64)
             for a, b in itertools.pairwise([0, 300, 650, 900])]
    merged = merge_partials(parts, KEY)
    assert merged.sketches is not None and sorted(merged.sketches) == ["latency_ms", "n_chars"]
    again = merge_partials(parts[::-1], KEY).sketches  # same sketches whatever the order
    assert again is not None and all(
        np.array_equal(a, b) for c in merged.sketches
        for a, b in zip(merged.sketches[c].levels, again[c].levels, strict=True))
    lat = merged.sketches["latency_ms"]
    assert lat.n == 900 and 0 < lat.epsilon < 4 / 64
    assert frame.latency_ms is not None
    grid = np.quantile(frame.latency_ms, np.linspace(0, 1, 201))
    exact = np.searchsorted(np.sort(frame.latency_ms), grid, side="right") / 900
    assert np.max(np.abs(lat.cdf(grid) - exact)) <= lat.epsilon
    (back,) = partials_from_arrow(partials_to_arrow([merged]))
    assert back.sketches is not None and sorted(back.sketches) == sorted(merged.sketches)
    for col, sk in merged.sketches.items():
        b: KLLSketch = back.sketches[col]
        assert (b.k, b.n, b.err, b.compactions) == (sk.k, sk.n, sk.err, sk.compactions)
        assert all(np.array_equal(x, y) for x, y in zip(b.levels, sk.levels, strict=True))
    # a partials file written before the sketches reads back as "not computed" (recomputed)
    old = partials_to_arrow([merged]).drop_columns(
        [c for c in partials_to_arrow([merged]).column_names if c.startswith("kll_")])
    (legacy,) = partials_from_arrow(old)
    assert legacy.sketches is None and merge_partials([legacy, back], KEY).sketches is None
