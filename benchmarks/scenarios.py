"""Real-text shift scenarios shared by the drift, diagnosis and alert-fatigue benchmarks.

Every text is embedded with the real MiniLM once and cached under ``.bench/`` (git-ignored),
keyed by the pool name and size, so re-runs skip encoding. Two stand-in classifiers sit on the
embeddings (logistic regression, like a fine-tuned head):

* a **sentiment** model trained on the SST-2 dev rows; its pools are the UCI review sets, the
  SST-2 test rows, SMS messages, and SST-2 test rows passed through an *injected preprocessing
  bug* (markup, upstream truncation, mojibake, a serving ``max_length`` of 16);
* an **intent** model trained on BANKING77 train rows of 67 intents; its pools are BANKING77
  test rows of those intents (in scope) and of the 10 held-out intents (out of scope).

Each scenario has a known kind (``none``, ``covariate``, ``label_prior``, ``out_of_scope``,
``input_format``) for the diagnosis benchmark.

    python benchmarks/scenarios.py      # fill the embedding cache (minutes on a shared CPU)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.drift.frame import DriftFrame  # noqa: E402

CACHE = Path(os.environ.get("SHIFTWATCH_BENCH_CACHE", ROOT / ".bench"))
#: BANKING77 intents held out of the intent model's training: its out-of-scope traffic.
HELD_OUT_INTENTS = 10
BANKING_TRAIN_ROWS = 3000


def _markup(t: str) -> str:
    return f'<div class="review-body"><p>{t}</p><br/></div>&nbsp;<span class="meta">Read more</span>'


def _truncate(t: str) -> str:
    return t[:40]


def _mojibake(t: str) -> str:
    curly = t.replace("'", "\u2019").replace('"', "\u201c").replace(" -- ", " \u2014 ")
    curly = curly + " \u2026" if "\u2019" not in curly else curly
    return curly.encode("utf-8").decode("cp1252", errors="replace")


BUGS: dict[str, Callable[[str], str]] = {"markup": _markup, "truncate": _truncate,
                                         "mojibake": _mojibake}


def _embed_cached(name: str, texts: list[str], max_length: int = 128) -> dict[str, np.ndarray]:
    from collectors.encoding import token_stats

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{len(texts)}-L{max_length}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    encoder = _encoder(max_length)
    stats = token_stats(encoder.tokenizer, texts, max_length)
    print(f"  embedding {name}: {len(texts)} texts (max_length {max_length})", flush=True)
    out = {"emb": encoder.embed(texts), "n_tokens": stats.n_tokens, "n_unk": stats.n_unk,
           "truncated": stats.truncated, "n_chars": stats.n_chars}
    np.savez(path, **out)
    return out


@cache
def _encoder(max_length: int) -> Any:
    from collectors.encoding import TextEncoder, minilm_path

    return TextEncoder.from_pretrained(minilm_path(), max_length=max_length, device="cpu")


def _frame(a: dict[str, np.ndarray], probs: np.ndarray, classes: np.ndarray, texts: list[str],
           labels: list[str]) -> DriftFrame:
    return DriftFrame(
        predicted_label=classes.astype(object)[probs.argmax(axis=1)],
        confidence=probs.max(axis=1).astype(np.float64), probs=probs.astype(np.float32),
        embedding=a["emb"].astype(np.float32), n_tokens=a["n_tokens"].astype(np.float64),
        n_unk=a["n_unk"].astype(np.float64), truncated=a["truncated"].astype(np.float64),
        n_chars=a["n_chars"].astype(np.float64), text=np.asarray(texts, dtype=object),
        label=np.asarray(labels, dtype=object))


@cache
def load_pools() -> dict[str, DriftFrame]:
    """Every pool as a DriftFrame with real MiniLM embeddings and a stand-in model's outputs."""
    from sklearn.linear_model import LogisticRegression

    from monitor import datasets

    sst_dev, sst_test = datasets.sst2("dev"), datasets.sst2("test")
    sms = datasets.sms_spam().sample(1000, np.random.default_rng(0))
    raw = {"amazon": datasets.uci("amazon"), "yelp": datasets.uci("yelp"),
           "imdb": datasets.uci("imdb"), "sst2": sst_test, "sms": sms}
    arrays = {k: _embed_cached(k, ds.texts) for k, ds in raw.items()}
    bug_src = sst_test.subset(np.arange(800))
    for bug, fn in BUGS.items():
        texts = [fn(t) for t in bug_src.texts]
        raw[f"sst2_{bug}"] = datasets.TextDataset(f"sst2_{bug}", texts, bug_src.labels)
        arrays[f"sst2_{bug}"] = _embed_cached(f"sst2_{bug}", texts)
    raw["sst2_maxlen16"] = bug_src
    arrays["sst2_maxlen16"] = _embed_cached("sst2_maxlen16", bug_src.texts, max_length=16)
    dev = _embed_cached("sst2dev", sst_dev.texts)
    sent = LogisticRegression(max_iter=1000).fit(dev["emb"], np.asarray(sst_dev.labels))
    pools = {k: _frame(arrays[k], sent.predict_proba(arrays[k]["emb"]), sent.classes_,
                       raw[k].texts, raw[k].labels) for k in raw}

    train, test = datasets.banking77("train"), datasets.banking77("test")
    intents = sorted(set(train.labels))
    held = set(np.random.default_rng(77).choice(intents, HELD_OUT_INTENTS, replace=False).tolist())
    keep = [i for i, lab in enumerate(train.labels) if lab not in held]
    tr = train.subset(np.random.default_rng(1).choice(keep, BANKING_TRAIN_ROWS, replace=False))
    tr_a = _embed_cached("banking_train", tr.texts)
    intent = LogisticRegression(max_iter=2000, C=10.0).fit(tr_a["emb"], np.asarray(tr.labels))
    te_a = _embed_cached("banking_test", test.texts)
    te_probs = intent.predict_proba(te_a["emb"])
    te = _frame(te_a, te_probs, intent.classes_, test.texts, test.labels)
    lab = np.asarray(test.labels, dtype=object)
    out_mask = np.isin(lab, sorted(held))
    pools["banking_in"] = te.take(np.flatnonzero(~out_mask))
    pools["banking_out"] = te.take(np.flatnonzero(out_mask))
    return pools


def unlabelled(f: DriftFrame) -> DriftFrame:
    """Current windows carry no ground truth yet (it arrives late in production)."""
    return DriftFrame(predicted_label=f.predicted_label, confidence=f.confidence, probs=f.probs,
                      embedding=f.embedding, n_tokens=f.n_tokens, n_unk=f.n_unk, truncated=f.truncated,
                      n_chars=f.n_chars, text=f.text)


def concat(a: DriftFrame, b: DriftFrame) -> DriftFrame:
    """Rows of ``a`` then rows of ``b``."""
    def cat(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or y is None else np.concatenate([x, y])

    return DriftFrame(predicted_label=np.concatenate([a.predicted_label, b.predicted_label]),
                      confidence=np.concatenate([a.confidence, b.confidence]), probs=cat(a.probs, b.probs),
                      embedding=cat(a.embedding, b.embedding), n_tokens=cat(a.n_tokens, b.n_tokens),
                      n_unk=cat(a.n_unk, b.n_unk), truncated=cat(a.truncated, b.truncated),
                      n_chars=cat(a.n_chars, b.n_chars), text=cat(a.text, b.text),
                      label=cat(a.label, b.label))


Draw = Callable[[dict[str, DriftFrame], int, np.random.Generator], tuple[DriftFrame, DriftFrame]]


def same(src: str, n_ref: int) -> Draw:
    """Reference and current drawn without overlap from one pool (no shift)."""
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        perm = rng.permutation(p[src].n)
        return p[src].take(perm[:n_ref]), p[src].take(perm[n_ref:n_ref + n])
    return draw


def mixture(src: str, dst: str, share: float, n_ref: int) -> Draw:
    """Current = ``1 - share`` fresh rows of ``src`` + ``share`` rows of ``dst`` (1.0: all dst).

    When ``dst`` holds the same texts as ``src`` (an injected bug), the bugged rows are the
    versions of texts not in the reference."""
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        perm = rng.permutation(p[src].n)
        k = round(share * n)
        if dst.startswith(src + "_"):  # bugged copies of src rows 0..799: reference from the rest
            ref = p[src].take(perm[perm >= p[dst].n][:n_ref])
            rest = perm[perm < p[dst].n]
            bugged = p[dst].take(rest[:k])
            clean = p[src].take(rest[k:n])
        else:
            ref = p[src].take(perm[:n_ref])
            bugged = p[dst].take(rng.choice(p[dst].n, k, replace=False))
            clean = p[src].take(perm[n_ref:n_ref + n - k])
        return ref, concat(clean, bugged)
    return draw


def prior(src: str, positive: str, share: float, n_ref: int) -> Draw:
    """Current windows with ``share`` of true class ``positive`` (classes keep their texts)."""
    def draw(p: dict[str, DriftFrame], n: int, rng: np.random.Generator) -> tuple[DriftFrame, DriftFrame]:
        f = p[src]
        assert f.label is not None
        perm = rng.permutation(f.n)
        rest = perm[n_ref:]
        pos, neg = rest[f.label[rest] == positive], rest[f.label[rest] != positive]
        k = round(share * n)
        cur = np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, n - k, replace=False)])
        return f.take(perm[:n_ref]), f.take(cur)
    return draw


@dataclass(frozen=True)
class Scenario:
    """A named way to draw (reference, current) windows, with its known kind."""

    name: str
    draw: Draw
    kind: str

    @property
    def shift(self) -> bool:
        return self.kind != "none"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("no-shift amazon (ref 500)", same("amazon", 500), "none"),
    Scenario("no-shift sst2 (ref 1000)", same("sst2", 1000), "none"),
    Scenario("no-shift banking77 (ref 1000)", same("banking_in", 1000), "none"),
    Scenario("amazon -> yelp", mixture("amazon", "yelp", 1.0, 500), "covariate"),
    Scenario("amazon -> imdb", mixture("amazon", "imdb", 1.0, 500), "covariate"),
    Scenario("sst2 -> imdb", mixture("sst2", "imdb", 1.0, 1000), "covariate"),
    Scenario("amazon + 25% sms mixture", mixture("amazon", "sms", 0.25, 500), "covariate"),
    Scenario("amazon + 25% yelp mixture", mixture("amazon", "yelp", 0.25, 500), "covariate"),
    Scenario("label prior 80% positive (sst2)", prior("sst2", "1", 0.8, 1000), "label_prior"),
    Scenario("banking77 + 10% held-out intents", mixture("banking_in", "banking_out", 0.10, 1000),
             "out_of_scope"),
    Scenario("banking77 + 30% held-out intents", mixture("banking_in", "banking_out", 0.30, 1000),
             "out_of_scope"),
    Scenario("sst2 markup bug (all rows)", mixture("sst2", "sst2_markup", 1.0, 1000), "input_format"),
    Scenario("sst2 upstream truncation (all rows)", mixture("sst2", "sst2_truncate", 1.0, 1000),
             "input_format"),
    Scenario("sst2 mojibake (all rows)", mixture("sst2", "sst2_mojibake", 1.0, 1000), "input_format"),
    Scenario("sst2 max_length 16 (all rows)", mixture("sst2", "sst2_maxlen16", 1.0, 1000),
             "input_format"),
)


def scenario(name: str) -> Scenario:
    """The scenario called ``name``."""
    return next(s for s in SCENARIOS if s.name == name)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pools = load_pools()
    for k, f in pools.items():
        print(f"{k:16s} {f.n:5d} rows")
