"""Training data assembly: labelled production rows, mixing, stratified slices, refusal."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import RetrainError
from monitor.retrain.data import (
    assemble,
    labelled_production,
    load_examples,
    mix,
    split_original,
    stratified_split,
)
from monitor.retrain.trainer import Examples
from monitor.store import Store
from tests.retrain.helpers import sentences


def _log(store: Store, n: int, *, text: bool = True) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.insert_predictions([
        {"event_id": f"e{i}", "ts": t0 + timedelta(seconds=i), "model_name": "m", "model_version": "v1",
         "predicted_label": "neg", "confidence": 0.6, "text": f"text {i}" if text else None}
        for i in range(n)])


def test_labelled_production_merges_delayed_and_review_labels() -> None:
    store = Store(":memory:")
    _log(store, 6)
    store.insert_labels([{"event_id": "e0", "label": "pos"}, {"event_id": "e1", "label": "neg"},
                         {"event_id": "e5", "label": "unknown-class"}])
    store.fetchall_sql("INSERT INTO review_queue (event_id, model_name, reason, status, label) VALUES "
                       "('e2', 'm', 'low_confidence', 'labeled', 'pos'), "
                       "('e3', 'm', 'low_confidence', 'pending', NULL)")
    got = labelled_production(store, "m", ["neg", "pos"])
    assert list(zip(got.texts, got.labels, strict=True)) == [("text 0", "pos"), ("text 1", "neg"),
                                                              ("text 2", "pos")]


def test_rows_without_text_do_not_count() -> None:
    store = Store(":memory:")
    _log(store, 3, text=False)
    store.insert_labels([{"event_id": f"e{i}", "label": "pos"} for i in range(3)])
    assert len(labelled_production(store, "m", ["neg", "pos"])) == 0


def test_refuses_too_few_labelled_rows_saying_how_many_are_needed() -> None:
    prod = sentences(40, seed=1)
    orig = sentences(100, seed=2)
    with pytest.raises(RetrainError, match=r"at least 100 labelled production rows.*found 40 \(60 more"):
        assemble(prod, orig, orig, labels=["neg", "pos"], min_labelled=100)
    one_class = sentences(200, seed=1, labels=("pos", "pos"))
    with pytest.raises(RetrainError, match="need at least two classes"):
        assemble(one_class, orig, orig, labels=["neg", "pos"], min_labelled=100)


def test_mixing_keeps_all_production_rows_at_the_configured_share() -> None:
    base = sentences(200, seed=1, domain="food")
    prod = Examples([f"{t} #{i}" for i, t in enumerate(base.texts)], base.labels)
    orig = sentences(5000, seed=2)
    data = assemble(prod, orig, sentences(50, seed=3), labels=["neg", "pos"], production_share=0.2,
                    production_val_fraction=0.25, min_labelled=100, seed=0)
    assert len(data.production_val) == 50 and data.n_production_train == 150
    assert data.n_original_train == 600 and len(data.train) == 750
    assert data.production_share == pytest.approx(0.2)
    assert sum("food" in t for t in data.train.texts) == 150
    assert not set(data.production_val.texts) & set(data.train.texts)
    small, n_orig = mix(sentences(30, seed=4), sentences(100, seed=5), 0.2)
    assert n_orig == 30 and len(small) == 130  # not enough original rows: all are used


def test_stratified_split_keeps_class_proportions() -> None:
    ex = sentences(400, seed=7)
    held, rest = stratified_split(ex, 0.25, seed=0)
    assert len(held) + len(rest) == 400
    c_all, c_held = Counter(ex.labels), Counter(held.labels)
    for lab in c_all:
        assert c_held[lab] == round(0.25 * c_all[lab])
    assert stratified_split(ex, 0.25, seed=0) == (held, rest)


def test_load_examples_jsonl_split_column_and_csv(tmp_path: Path) -> None:
    j = tmp_path / "d.jsonl"
    j.write_text('{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg", "split": "val"}\n\n',
                 encoding="utf-8")
    train, val = load_examples(j)
    assert (train.texts, val.texts if val else None) == (["a"], ["b"])
    c = tmp_path / "d.csv"
    c.write_text("text,label\n\"hello, world\",pos\nbye,neg\n", encoding="utf-8")
    train, val = load_examples(c)
    assert train.texts == ["hello, world", "bye"] and val is None
    tr2, va2 = split_original(sentences(100, seed=1), None, val_fraction=0.2)
    assert (len(tr2), len(va2)) == (80, 20)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "", "label": "pos"}\n', encoding="utf-8")
    with pytest.raises(RetrainError, match="row 1"):
        load_examples(bad)
