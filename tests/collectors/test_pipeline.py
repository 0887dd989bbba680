"""instrument_pipeline / instrument_model: records from the serving call's own forward pass,
results unchanged — on a tiny random BERT, and (slow) on the real MiniLM."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collectors import Collector, DuckDBSink, Sink, instrument_model, instrument_pipeline
from collectors.encoding import TextEncoder
from monitor.store import Store
from tests.conftest import make_tiny_bert

TEXTS = ["the movie was good", "zzzz qqq good", " ".join(["good"] * 30), "bad battery"]


class ListSink(Sink):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        self.records.extend(dict(r) for r in records)
        return len(records)


def _pipeline(path: Path) -> Any:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(str(path)),
                    device="cpu")


class CountingModel:
    """Counts forward passes of a module (to prove there is no second one)."""

    def __init__(self, model: Any) -> None:
        self.n = 0
        model.register_forward_pre_hook(lambda *a: setattr(self, "n", self.n + 1))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", num_labels=3)


def test_pipeline_results_unchanged_one_forward_and_records_match_the_encoder(tiny_dir: Path) -> None:
    bare, pipe = _pipeline(tiny_dir), _pipeline(tiny_dir)
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    wrapped = instrument_pipeline(pipe, col, model_name="tiny", model_version="v1", max_length=16,
                                  log_text=True, source="web")
    counter = CountingModel(pipe.model)
    for kwargs in ({}, {"top_k": None}, {"batch_size": 3}):
        assert wrapped(TEXTS, **kwargs) == bare(TEXTS, **kwargs)
    assert wrapped(TEXTS[0]) == bare(TEXTS[0])
    assert counter.n == 4 + 4 + 2 + 1  # one pass per text, then batches of 3 and 1: nothing extra
    col.close()
    assert len(sink.records) == 3 * len(TEXTS) + 1 and wrapped.failures == 0

    # the embedding is of what the model saw (the pipeline does not truncate at 16); the token
    # statistics are reported against max_length=16
    expected = TextEncoder(bare.model, bare.tokenizer, max_length=64, device="cpu").encode(TEXTS)
    for run in range(3):
        recs = sink.records[run * len(TEXTS):(run + 1) * len(TEXTS)]
        np.testing.assert_allclose(np.array([r["embedding"] for r in recs]), expected.embeddings,
                                   rtol=1e-4, atol=1e-5)
    recs = sink.records[:len(TEXTS)]
    assert expected.probs is not None
    np.testing.assert_allclose(np.array([r["probs"] for r in recs]), expected.probs, rtol=1e-4, atol=1e-6)
    assert [r["n_tokens"] for r in recs] == expected.stats.n_tokens.tolist() == [6, 5, 32, 4]
    assert [r["truncated"] for r in recs] == [False, False, True, False]
    assert [r["n_unk"] for r in recs] == [0, 2, 0, 0]
    results = bare(TEXTS)
    assert [r["predicted_label"] for r in recs] == [x["label"] for x in results]
    assert [r["confidence"] for r in recs] == pytest.approx([x["score"] for x in results], abs=1e-5)
    assert recs[0]["text"] == TEXTS[0] and recs[0]["source"] == "web"
    assert recs[0]["text_sha256"] == hashlib.sha256(TEXTS[0].encode()).hexdigest()
    assert all(r["latency_ms"] > 0 for r in recs)

    wrapped.close()
    wrapped(TEXTS)  # hooks removed: nothing captured, nothing logged, no failure
    assert wrapped.failures == 1  # ... the call itself notices there was nothing to log


def test_plain_model_and_tokenizer_pair(tiny_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    with torch.inference_mode():
        want = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    store = Store(tmp_path / "db.duckdb")
    col = Collector(DuckDBSink(store), flush_interval_s=3600)
    pair = instrument_model(model, tokenizer, col, model_name="tiny", model_version="v1")
    with torch.inference_mode():
        got = pair.model(**pair.tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
        pair.model(**tokenizer(TEXTS[:2], padding=True, return_tensors="pt"))  # tokenized elsewhere
        # truncated by the caller: the counts are of the text before truncation
        pair.model(**pair.tokenizer([TEXTS[2]], truncation=True, max_length=8, return_tensors="pt"))
    torch.testing.assert_close(got, want)
    col.close()
    rows = store.read_window("tiny").to_pylist()
    assert len(rows) == len(TEXTS) + 3 and pair.failures == 0
    with_text = [r for r in rows if r["text_sha256"] is not None]
    assert len(with_text) == len(TEXTS) + 1
    counts = sorted((r["n_tokens"], r["truncated"]) for r in with_text)
    assert counts == [(4, False), (5, False), (6, False), (32, False), (32, True)]
    assert sum(r["n_tokens"] is None and r["embedding"] is not None for r in rows) == 2
    pair.close()
    store.close()


def test_not_a_classification_pipeline_is_refused(tiny_dir: Path) -> None:
    pipe = _pipeline(tiny_dir)
    pipe.task = "token-classification"
    with pytest.raises(TypeError, match="text-classification"):
        instrument_pipeline(pipe, Collector(ListSink(), start=False), model_name="m", model_version="v")


@pytest.mark.slow
def test_real_minilm_pipeline_outputs_identical_and_records_stored(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from collectors.encoding import minilm_path

    torch.manual_seed(0)  # the classifier head on top of MiniLM is freshly initialised
    path = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    texts = ["I loved this phone, the battery lasts for days", "terrible service, never again",
             "the package arrived on tuesday", "gr8 product!!! would buy agian"]
    bare = pipe(texts, top_k=None)
    store = Store(tmp_path / "db.duckdb")
    col = Collector(DuckDBSink(store), flush_interval_s=3600)
    wrapped = instrument_pipeline(pipe, col, model_name="minilm-clf", model_version="v1")
    assert wrapped(texts, top_k=None) == bare
    col.close()
    by_hash = {r["text_sha256"]: r for r in store.read_window("minilm-clf").to_pylist()}
    rows = [by_hash[hashlib.sha256(t.encode()).hexdigest()] for t in texts]  # one ts: order by text
    emb = np.array([r["embedding"] for r in rows], dtype=np.float32)
    ref = TextEncoder(model, tokenizer, max_length=256, device="cpu").embed(texts)
    np.testing.assert_allclose(emb, ref, rtol=1e-4, atol=1e-5)  # the MiniLM sentence embedding
    assert emb.shape == (4, 384) and all(r["n_tokens"] > 5 for r in rows)
    store.close()
