"""Shared fixtures: offline environment, shared data, tiny BERT models, the real MiniLM."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# tests.cleancheckout: the session fails when it leaves files in the checkout; pytester tests it
pytest_plugins = ["tests.cleancheckout", "pytester"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data``; tests that need it skip nothing: its absence is an error."""
    from monitor.datasets import data_dir as find

    return find()


@pytest.fixture(scope="session")
def minilm_encoder() -> Any:
    """The real all-MiniLM-L6-v2 encoder (masked-mean pooling), loaded once per session."""
    from collectors.encoding import TextEncoder, minilm_path

    return TextEncoder.from_pretrained(minilm_path(), max_length=128, device="cpu")


@pytest.fixture(scope="session")
def minilm_embeddings(minilm_encoder: Any) -> Any:
    """Memoised MiniLM embeddings: ``minilm_embeddings(dataset) -> (n, 384) float32``."""
    cache: dict[str, np.ndarray] = {}

    def embed(ds: Any) -> np.ndarray:
        if ds.name not in cache:
            cache[ds.name] = minilm_encoder.embed(ds.texts)
        return cache[ds.name]

    return embed


def make_tiny_bert(tmp_dir: Path, *, num_labels: int = 2, layers: int = 2) -> Path:
    """Write a tiny random BertForSequenceClassification + WordPiece tokenizer to ``tmp_dir``."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["good", "bad", "great", "awful", "phone", "battery", "food", "movie", "the", "is",
             "a", "not", "very", "service", "love", "hate", "it", "this", "was", "and"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "##s", "##ing", "##ed", ".", ","]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5: the (fast) BertTokenizer takes the vocabulary as a dict
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                     num_labels=num_labels,
                     id2label={i: f"label_{i}" for i in range(num_labels)},
                     label2id={f"label_{i}": i for i in range(num_labels)})
    import torch

    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(str(tmp_dir))
    tok.save_pretrained(str(tmp_dir))
    return tmp_dir


@pytest.fixture()
def tiny_bert_dir(tmp_path: Path) -> Path:
    """A tiny random BERT sequence classifier saved in a temporary directory."""
    return make_tiny_bert(tmp_path / "tiny-bert")
