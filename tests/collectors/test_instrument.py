"""InstrumentedClassifier on a tiny random BERT (built here) and on the real MiniLM."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collectors import Collector, DuckDBSink, InstrumentedClassifier, Sink
from monitor.store import Store
from tests.conftest import make_tiny_bert


class ListSink(Sink):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        self.records.extend(dict(r) for r in records)
        return len(records)

    def send_errors(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors.extend(dict(e) for e in errors)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = make_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    return model, AutoTokenizer.from_pretrained(str(path))


TEXTS = ["the movie was good", "zzzz qqq good", " ".join(["good"] * 30)]


def test_predictions_shapes_and_token_stats(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    clf = InstrumentedClassifier(model, tok, col, model_name="tiny", model_version="v1", max_length=16,
                                 source="test")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    preds = clf.predict(TEXTS, labels=["label_0", None, "label_2"], ts=when)
    col.close()

    assert [p.n_tokens for p in preds] == [6, 5, 32]  # [CLS] + words + [SEP], before truncation
    assert [p.n_unk for p in preds] == [0, 2, 0]  # zzzz, qqq
    assert [p.truncated for p in preds] == [False, False, True]
    assert [p.n_chars for p in preds] == [len(t) for t in TEXTS]
    for p in preds:
        assert p.probs.shape == (3,) and p.embedding.shape == (32,)
        assert p.probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert p.label == f"label_{int(p.probs.argmax())}" and p.confidence == pytest.approx(p.probs.max())
        assert p.latency_ms > 0

    recs = sink.records
    assert [r["event_id"] for r in recs] == [p.event_id for p in preds]
    assert len({r["event_id"] for r in recs}) == 3
    assert all(r["text"] is None for r in recs)  # raw text is off by default
    assert recs[1]["text_sha256"] == hashlib.sha256(TEXTS[1].encode()).hexdigest()
    assert [r["label"] for r in recs] == ["label_0", None, "label_2"]
    assert recs[0]["ts"] == when and recs[0]["source"] == "test" and recs[0]["n_unk"] == 0


def test_caller_event_ids_are_the_records_ids(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    clf = InstrumentedClassifier(model, tok, col, model_name="tiny", model_version="v1", max_length=16)
    preds = clf.predict(TEXTS, event_ids=["req-1", "req-2", "req-3"])
    col.close()
    assert [p.event_id for p in preds] == ["req-1", "req-2", "req-3"]
    assert [r["event_id"] for r in sink.records] == ["req-1", "req-2", "req-3"]
    with pytest.raises(ValueError, match="2 event ids for 3 texts"):
        clf.predict(TEXTS, event_ids=["a", "b"])


def test_records_are_valid_store_rows_and_text_is_opt_in(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    with Store(":memory:") as store:
        col = Collector(DuckDBSink(store), flush_interval_s=3600)
        clf = InstrumentedClassifier(model, tok, col, model_name="tiny", model_version="v1", log_text=True)
        clf.predict(TEXTS)
        col.close()
        rows = store.read_window("tiny").to_pylist()
        assert len(rows) == 3 and col.stats().rejected == 0
        assert sorted(r["text"] for r in rows) == sorted(TEXTS)
        assert store.embedding_dims() == {("tiny", "v1"): 32}


def test_pooling_choices_differ(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    col = Collector(ListSink(), flush_interval_s=3600)
    embs = {}
    for pooling in ("mean", "cls", "pooler"):
        clf = InstrumentedClassifier(model, tok, col, model_name="t", model_version="v", pooling=pooling)
        embs[pooling] = clf.predict(["good movie"])[0].embedding
    col.close()
    assert not np.allclose(embs["mean"], embs["cls"])
    assert not np.allclose(embs["cls"], embs["pooler"])  # BERT has a pooler: tanh(dense(cls))


def test_wraps_a_text_classification_pipeline(tiny: tuple[Any, Any]) -> None:
    from transformers import pipeline

    model, tok = tiny
    pipe = pipeline("text-classification", model=model, tokenizer=tok)
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    clf = InstrumentedClassifier.from_pipeline(pipe, col, model_name="tiny", model_version="v1")
    pred = clf.predict(["good movie"])[0]
    col.close()
    expected = pipe("good movie")[0]
    assert pred.label == expected["label"] and pred.confidence == pytest.approx(expected["score"], abs=1e-5)
    assert len(sink.records) == 1


def test_failure_is_reported_and_reraised(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    clf = InstrumentedClassifier(model, tok, col, model_name="tiny", model_version="v1")
    with pytest.raises((TypeError, ValueError)):
        clf.predict([None])  # type: ignore[list-item]
    col.close()
    assert sink.errors and sink.errors[0]["model_name"] == "tiny" and sink.records == []
    assert sink.errors[0]["kind"] in {"tokenizer", "model"}


def test_rejects_a_bare_encoder(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    bare = BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                intermediate_size=8))
    with pytest.raises(TypeError, match="ForSequenceClassification"):
        InstrumentedClassifier(bare, None, Collector(ListSink(), start=False), model_name="x",
                               model_version="1")


@pytest.mark.slow
def test_real_minilm_with_a_fresh_head(minilm_encoder: Any) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    from collectors.encoding import minilm_path

    path = minilm_path()
    model = BertForSequenceClassification.from_pretrained(str(path), num_labels=2)
    tok = AutoTokenizer.from_pretrained(str(path))
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    clf = InstrumentedClassifier(model, tok, col, model_name="minilm", model_version="v0", device="cpu")
    texts = ["hello world", "the battery died after two days ☃"]
    preds = clf.predict(texts)
    col.close()
    assert [p.embedding.shape for p in preds] == [(384,), (384,)]
    assert [p.probs.shape for p in preds] == [(2,), (2,)]
    assert preds[0].n_tokens == 4 and preds[0].n_unk == 0
    assert preds[1].n_unk == 1  # the snowman is not in the uncased vocabulary
    # the head is new, the encoder is MiniLM: embeddings equal the bare encoder's
    np.testing.assert_allclose(np.stack([p.embedding for p in preds]), minilm_encoder.embed(texts),
                               atol=1e-4)
