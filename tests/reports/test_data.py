"""Report data: PCA projection, histograms, class shares, window columns, examples."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from reports.distributions import class_shares, histogram
from reports.examples import pick_examples
from reports.projection import project
from reports.window import embeddings, scalar_columns
from tests.reports.synthetic import records


def test_projection_shape_cap_and_determinism() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5000, 12)).astype(np.float32)
    cur = rng.normal(size=(300, 12)).astype(np.float32)
    p = project(ref, cur, max_points=1000, fit_cap=2000, seed=3)
    assert p.reference.shape == (1000, 2)
    assert p.current.shape == (300, 2)
    assert p.current_index.tolist() == list(range(300))
    q = project(ref, cur, max_points=1000, fit_cap=2000, seed=3)
    np.testing.assert_array_equal(p.reference, q.reference)
    assert 0 < p.explained[1] <= p.explained[0] < 1


def test_projection_is_fitted_on_the_reference_and_shows_a_shift_along_its_main_axis() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(800, 6)) * np.array([10, 1, 1, 1, 1, 1])
    cur = rng.normal(size=(400, 6)) * np.array([10, 1, 1, 1, 1, 1]) + np.array([25, 0, 0, 0, 0, 0])
    p = project(ref, cur, seed=0)
    assert p.explained[0] > 0.9
    assert abs(p.reference[:, 0].mean()) < 1.5
    assert p.current[:, 0].mean() == pytest.approx(25, abs=2.5)


def test_projection_rejects_mismatched_widths() -> None:
    with pytest.raises(ValueError, match="equal widths"):
        project(np.zeros((5, 3)), np.zeros((5, 4)))


def test_histogram_shares_sum_to_one_on_shared_edges() -> None:
    h = histogram(np.array([0.1, 0.2, 0.95, 0.97]), np.array([0.5, 0.55]), bins=10, value_range=(0, 1))
    assert len(h.edges) == 11 and h.edges[0] == 0.0 and h.edges[-1] == 1.0
    assert sum(h.reference) == pytest.approx(1.0) and sum(h.current) == pytest.approx(1.0)
    assert h.current[5] == pytest.approx(1.0)


def test_histogram_of_integers_has_one_bin_per_value() -> None:
    h = histogram(np.array([3.0, 4.0, 4.0]), np.array([5.0, 5.0]), integer=True)
    assert h.edges == (2.5, 3.5, 4.5, 5.5)
    assert h.reference == pytest.approx((1 / 3, 2 / 3, 0.0))
    assert h.current == pytest.approx((0.0, 0.0, 1.0))
    zeros = histogram(np.zeros(4), np.zeros(3), bins=10)
    assert zeros.edges[0] == 0.0 and zeros.edges[-1] == 1.0 and zeros.reference[0] == 1.0


def test_class_shares_cover_labels_of_both_sides() -> None:
    c = class_shares(["a", "a", "b"], ["b", "c", "c", "c"])
    assert c.labels == ("a", "b", "c")
    assert c.reference_counts == (2, 1, 0) and c.current_counts == (0, 1, 3)
    assert c.current == pytest.approx((0.0, 0.25, 0.75))


def test_window_columns_entropy_unk_rate_and_embeddings() -> None:
    t = records(50, start=datetime(2026, 1, 1, tzinfo=UTC), shift=0.8, seed=2)
    cols = scalar_columns(t)
    assert set(cols) == {"confidence", "entropy", "predicted_label", "n_tokens", "unk_rate", "truncated"}
    probs = np.asarray(t["probs"].to_pylist())
    expected = -(probs * np.log(probs)).sum(axis=1)
    np.testing.assert_allclose(cols["entropy"], expected, rtol=1e-5)
    n_unk = np.asarray(t["n_unk"].to_pylist(), dtype=float)
    np.testing.assert_allclose(cols["unk_rate"], n_unk / cols["n_tokens"])
    emb = embeddings(t)
    assert emb is not None and emb.shape == (50, 16)
    no_emb = t.set_column(t.schema.get_field_index("embedding"), "embedding",
                          pa.nulls(50, t["embedding"].type))
    assert embeddings(no_emb) is None
    assert "entropy" not in scalar_columns(t.drop_columns(["probs"]))


def test_examples_show_text_only_when_logged_else_a_hash_prefix() -> None:
    conf = np.array([0.9, 0.4, 0.6])
    items = pick_examples(np.argsort(conf), event_ids=["e0", "e1", "e2"], texts=[None, "hello", None],
                          hashes=["ab" * 32, "cd" * 32, None], labels=["x", "y", "z"], confidence=conf,
                          scores=conf, k=2)
    assert [(e.event_id, e.shown, e.is_text) for e in items] == [("e1", "hello", True),
                                                               ("e2", "(no text logged)", False)]
    (first,) = pick_examples(np.array([0]), event_ids=["e0"], texts=[None], hashes=["ab" * 32],
                             labels=["x"], confidence=conf[:1])
    assert first.shown == "sha256:abababababab" and first.score is None
