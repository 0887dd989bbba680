"""Drift-test fixtures: real MiniLM frames of the shared sentiment data, seeded synthetic frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from monitor.drift.frame import DriftFrame


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """The drift tests run thousands of small matrix products: on a shared 2-core machine
    BLAS threads only contend, so tests use one (results do not depend on it)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _frame_from(texts: list[str], labels: list[str], emb: np.ndarray, probs: np.ndarray,
                stats: Any) -> DriftFrame:
    classes = np.array(["0", "1"], dtype=object)
    return DriftFrame(
        predicted_label=classes[probs.argmax(axis=1)],
        confidence=probs.max(axis=1).astype(np.float64),
        probs=probs.astype(np.float32),
        embedding=emb.astype(np.float32),
        n_tokens=stats.n_tokens.astype(np.float64),
        n_unk=stats.n_unk.astype(np.float64),
        truncated=stats.truncated.astype(np.float64),
        n_chars=stats.n_chars.astype(np.float64),
        text=np.asarray(texts, dtype=object),
        label=np.asarray(labels, dtype=object),
    )


@pytest.fixture(scope="session")
def real_frames(minilm_encoder: Any, minilm_embeddings: Any) -> Callable[[str], DriftFrame]:
    """``real_frames(name)`` for ``amazon`` (all 1,000 rows), ``yelp`` (600 rows) and ``imdb``
    (300 rows): DriftFrames with real MiniLM embeddings and tokenizer stats, and the predictions
    of a logistic-regression sentiment "model" trained on the Yelp rows (a stand-in for the
    fine-tuned classifier: real, imperfect, domain-sensitive confidences). Subsets keep the
    embedding cost of the test session small on a 2-core machine."""
    from sklearn.linear_model import LogisticRegression

    from collectors.encoding import token_stats
    from monitor import datasets

    def subset(ds: datasets.TextDataset, n: int) -> datasets.TextDataset:
        idx = np.random.default_rng(0).choice(len(ds), size=n, replace=False)
        sub = ds.subset(idx)
        return datasets.TextDataset(f"{ds.name}-drift{n}", sub.texts, sub.labels)

    sets = {"amazon": datasets.uci("amazon"), "yelp": subset(datasets.uci("yelp"), 600),
            "imdb": subset(datasets.uci("imdb"), 300)}
    clf = LogisticRegression(C=1.0, max_iter=1000)
    clf.fit(minilm_embeddings(sets["yelp"]), np.asarray(sets["yelp"].labels))
    cache: dict[str, DriftFrame] = {}

    def get(name: str) -> DriftFrame:
        if name not in cache:
            ds = sets[name]
            emb = minilm_embeddings(ds)
            probs = clf.predict_proba(emb)
            stats = token_stats(minilm_encoder.tokenizer, ds.texts, minilm_encoder.max_length)
            cache[name] = _frame_from(ds.texts, ds.labels, emb, probs, stats)
        return cache[name]

    return get


def synthetic_frame(n: int, rng: np.random.Generator, *, d: int = 16, shift: float = 0.0,
                    prior: tuple[float, ...] = (0.6, 0.3, 0.07, 0.03),
                    with_probs: bool = False) -> DriftFrame:
    """Seeded synthetic records with the awkward parts of real traffic: rare classes, tied
    (rounded) confidences, integer token counts, rare UNKs and truncation; ``with_probs`` adds
    a probability vector (the confidence on the predicted class, the rest spread unevenly)."""
    classes = np.array(["a", "b", "c", "d"], dtype=object)[: len(prior)]
    pred = rng.choice(classes, size=n, p=np.asarray(prior) / sum(prior))
    emb = rng.normal(size=(n, d)).astype(np.float32) + 1.0  # a shared mean direction, as in real
    emb[:, 0] += shift  # sentence embeddings (cosine distances of centroids are meaningful)
    conf = np.round(rng.beta(6, 1.5, size=n), 2)
    n_tok = rng.poisson(18, size=n) + 2
    labels = np.where(rng.random(n) < conf, pred, "a").astype(object)
    probs = None
    if with_probs:
        k = len(prior)
        rest = rng.dirichlet(np.ones(k - 1), size=n) * (1 - conf)[:, None]
        probs = np.empty((n, k), dtype=np.float32)
        idx = np.searchsorted(classes, pred)
        for i in range(n):
            probs[i, idx[i]] = conf[i]
            probs[i, np.arange(k) != idx[i]] = rest[i]
    return DriftFrame(predicted_label=pred, confidence=conf, embedding=emb, probs=probs,
                      n_tokens=n_tok.astype(np.float64),
                      n_unk=rng.binomial(n_tok, 0.005).astype(np.float64),
                      truncated=(n_tok > 26).astype(np.float64),
                      n_chars=(n_tok * rng.uniform(3.5, 5.5, size=n)).round().astype(np.float64),
                      label=labels)
