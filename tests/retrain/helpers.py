"""Synthetic labelled sentences over the tiny BERT vocabulary (seeded)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.registry import Preprocessing, Registry
from monitor.retrain.trainer import Examples
from monitor.settings import Settings, load_settings
from monitor.store import Store

POS = ("good", "great", "love")
NEG = ("bad", "awful", "hate")


def sentences(n: int, *, seed: int, domain: str = "phone", labels: tuple[str, str] = ("neg", "pos"),
              noise: float = 0.0) -> Examples:
    """``n`` sentences whose sentiment word decides the label (``noise`` = share of flipped labels)."""
    rnd = random.Random(seed)
    texts: list[str] = []
    labs: list[str] = []
    for _ in range(n):
        y = rnd.random() < 0.5
        word = rnd.choice(POS if y else NEG)
        texts.append(f"the {domain} is {word}" if rnd.random() < 0.7 else f"{word} {domain} it was")
        if rnd.random() < noise:
            y = not y
        labs.append(labels[int(y)])
    return Examples(texts, labs)


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def label_rows(store: Store, first: int, n: int) -> None:
    """Log production rows ``first .. first+n-1`` (food-domain sentences) of model m v1, each with
    its true label as delayed ground truth."""
    prod = sentences(first + n, seed=2, domain="food")
    ids = range(first, first + n)
    store.insert_predictions([
        {"event_id": f"e{i}", "ts": T0 + timedelta(seconds=i), "model_name": "m", "model_version": "v1",
         "predicted_label": "neg", "confidence": 0.5, "text": prod.texts[i]} for i in ids])
    store.insert_labels([{"event_id": f"e{i}", "label": prod.labels[i]} for i in ids])


def retrain_world(tmp_path: Path, n_labelled: int = 160, *,
                  on_disk: bool = False) -> tuple[Store, Settings, Registry]:
    """A store with an active tiny v1 of model m (registered with its original training file)
    and ``n_labelled`` labelled production rows: what a retrain needs."""
    from tests.conftest import make_tiny_bert

    settings = load_settings(db_path=tmp_path / "db.duckdb", registry_dir=tmp_path / "reg")
    store = Store(settings.db_path if on_disk else ":memory:")
    reg = Registry(store, settings.registry_dir)
    orig = sentences(300, seed=1)
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("\n".join(json.dumps({"text": t, "label": y})
                                    for t, y in zip(orig.texts, orig.labels, strict=True)), encoding="utf-8")
    reg.register("m", make_tiny_bert(tmp_path / "v1"), preprocessing=Preprocessing(32, labels=("neg", "pos")),
                 status="active", train_file=train_file)
    label_rows(store, 0, n_labelled)
    return store, settings, reg


def flip_head(src: Path, dst: Path) -> Path:
    """A copy of the classifier in ``src`` whose head predicts the opposite class on every row (a
    two-class head with its rows swapped): what a candidate trained on flipped labels learns."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(src))
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight.flip(0))
        model.classifier.bias.copy_(model.classifier.bias.flip(0))
    model.save_pretrained(str(dst))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(dst))
    return dst
