"""Training data for a re-fine-tune: original training data mixed with labelled production rows.

- The *original* data is the file registered with the model version
  (``train_file``: JSON Lines or CSV with ``text`` and ``label``, optionally a
  ``split`` column where ``val``/``validation``/``dev`` rows form the original
  validation set; without it a stratified share is held out).
- *Labelled production rows* are logged predictions with ``text`` whose label
  comes from delayed ground truth (``labels``), the review queue, or the label
  logged with the prediction, in that order of precedence.
- A stratified *production-like validation slice* is held out of the
  production rows (early stopping and promotion are judged on it); the
  original validation set is kept separately (the forgetting guard).
- The remaining production rows are mixed with original rows so that
  production makes up ``production_share`` of the training set (all
  production rows are kept; the original rows are sampled down to fit).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.errors import InsufficientLabels, RetrainError
from monitor.retrain.trainer import Examples

if TYPE_CHECKING:  # pragma: no cover
    from monitor.store import Store

__all__ = [
    "TrainingData",
    "assemble",
    "labelled_production",
    "load_examples",
    "mix",
    "split_original",
    "stratified_split",
]

log = logging.getLogger(__name__)
_VAL_SPLITS = {"val", "valid", "validation", "dev"}


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What one retrain trains and validates on."""

    train: Examples
    production_val: Examples
    original_val: Examples
    labels: tuple[str, ...]
    n_production_train: int
    n_original_train: int

    @property
    def production_share(self) -> float:
        """Actual share of production rows in the training set."""
        return self.n_production_train / max(len(self.train), 1)

    def summary(self) -> dict[str, Any]:
        """Sizes, for logs and the retrain record."""
        return {"n_train": len(self.train), "n_production_train": self.n_production_train,
                "n_original_train": self.n_original_train, "n_production_val": len(self.production_val),
                "n_original_val": len(self.original_val),
                "production_share": round(self.production_share, 4)}


def load_examples(path: str | Path) -> tuple[Examples, Examples | None]:
    """Read ``text,label`` rows from JSON Lines or CSV: (training rows, validation rows or None)."""
    p = Path(path)
    rows: list[dict[str, Any]] = []
    try:
        if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            with p.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError as exc:
                        raise RetrainError(f"{p}: line {lineno}: invalid JSON: {exc}") from exc
                    if not isinstance(obj, dict):
                        raise RetrainError(f"{p}: line {lineno}: expected an object")
                    rows.append(obj)
        elif p.suffix.lower() in (".csv", ".tsv"):
            with p.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t" if p.suffix.lower() == ".tsv" else ","))
        else:
            raise RetrainError(f"{p}: training data must be .jsonl or .csv (text,label)")
    except OSError as exc:
        raise RetrainError(f"cannot read training data {p}: {exc}") from exc
    train_t: list[str] = []
    train_l: list[str] = []
    val_t: list[str] = []
    val_l: list[str] = []
    for i, row in enumerate(rows, start=1):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text or label is None or str(label) == "":
            raise RetrainError(f"{p}: row {i}: needs a non-empty 'text' and 'label'")
        is_val = str(row.get("split") or "").lower() in _VAL_SPLITS
        (val_t if is_val else train_t).append(text)
        (val_l if is_val else train_l).append(str(label))
    if not train_t:
        raise RetrainError(f"{p}: no training rows")
    return Examples(train_t, train_l), (Examples(val_t, val_l) if val_t else None)


def stratified_split(examples: Examples, fraction: float, *, seed: int = 0) -> tuple[Examples, Examples]:
    """(held-out, rest): ``fraction`` of every class held out (at least one where a class has two)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(examples.labels, dtype=object)
    held: list[int] = []
    for lab in sorted(set(examples.labels)):
        idx = np.flatnonzero(labels == lab)
        rng.shuffle(idx)
        k = round(fraction * len(idx))
        if k == 0 and len(idx) >= 2 and fraction > 0:
            k = 1
        held.extend(int(i) for i in idx[:k])
    held_set = set(held)
    rest = [i for i in range(len(examples)) if i not in held_set]
    held.sort()
    return _take(examples, held), _take(examples, rest)


def _take(examples: Examples, idx: Sequence[int]) -> Examples:
    return Examples([examples.texts[i] for i in idx], [examples.labels[i] for i in idx])


def split_original(train: Examples, val: Examples | None, *, val_fraction: float = 0.15,
                   seed: int = 0) -> tuple[Examples, Examples]:
    """(original training rows, original validation rows): the file's split, else stratified."""
    if val is not None and len(val):
        return train, val
    held, rest = stratified_split(train, val_fraction, seed=seed)
    return rest, held


def labelled_production(store: Store, model_name: str, labels: Sequence[str]) -> Examples:
    """Labelled production rows with text; rows with labels unknown to the model are dropped."""
    rows = store.fetch_dicts("retrain_labelled_rows", {"model_name": model_name, "since": None,
                                                       "ingested_since": None})
    known = set(labels)
    kept = [r for r in rows if r["label"] in known]
    if len(kept) < len(rows):
        log.warning("%s: ignoring %d labelled rows whose label is not one of %s",
                    model_name, len(rows) - len(kept), list(labels))
    return Examples([r["text"] for r in kept], [r["label"] for r in kept])


def mix(original: Examples, production: Examples, share: float, *, seed: int = 0) -> tuple[Examples, int]:
    """Production rows plus original rows sampled so production is ``share`` of the result.

    Returns (shuffled mix, number of original rows used). With too little
    original data every original row is used and the share ends up higher.
    """
    if not 0.0 < share <= 1.0:
        raise RetrainError(f"production_share must be in (0, 1], got {share}")
    rng = np.random.default_rng(seed)
    wanted = len(original) if share >= 1.0 else round(len(production) * (1.0 - share) / share)
    n_orig = 0 if share >= 1.0 else min(len(original), wanted)
    orig_idx = rng.choice(len(original), size=n_orig, replace=False) if n_orig else np.zeros(0, int)
    texts = [original.texts[i] for i in orig_idx] + list(production.texts)
    labs = [original.labels[i] for i in orig_idx] + list(production.labels)
    perm = rng.permutation(len(texts))
    return Examples([texts[i] for i in perm], [labs[i] for i in perm]), n_orig


def assemble(
    production: Examples,
    original: Examples,
    original_val: Examples,
    *,
    labels: Sequence[str],
    production_share: float = 0.2,
    production_val_fraction: float = 0.25,
    min_labelled: int = 100,
    seed: int = 0,
    model_name: str = "model",
) -> TrainingData:
    """Split production rows into train/validation and mix the training part with the original data.

    Raises :class:`RetrainError` naming how many labelled rows are needed
    when there are fewer than ``min_labelled`` (or too few to hold out a
    validation row of each class).
    """
    n = len(production)
    if n < min_labelled:
        raise InsufficientLabels(
            f"{model_name}: retraining needs at least {min_labelled} labelled production rows with text, "
            f"found {n} ({min_labelled - n} more needed); label rows via the review queue or "
            "POST /v1/labels, and log text for the model", needed=min_labelled, found=n)
    classes = sorted(set(production.labels))
    if len(classes) < 2:
        raise RetrainError(f"{model_name}: labelled production rows cover only the labels {classes}; "
                           "need at least two classes")
    prod_val, prod_train = stratified_split(production, production_val_fraction, seed=seed)
    if len(prod_train) == 0 or len(prod_val) == 0:
        raise RetrainError(f"{model_name}: {n} labelled rows are too few to hold out a validation slice")
    train, n_orig = mix(original, prod_train, production_share, seed=seed)
    return TrainingData(train=train, production_val=prod_val, original_val=original_val,
                        labels=tuple(labels), n_production_train=len(prod_train),
                        n_original_train=n_orig)
