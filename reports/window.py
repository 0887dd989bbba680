"""Per-row scalar columns of a window of prediction records (pure, from Arrow).

These are the columns the Evidently report and our histograms look at:
confidence, entropy (from ``probs``), predicted_label, n_tokens, unk_rate
(``n_unk / n_tokens``) and truncated. A column is left out when no row has it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SCALAR_COLUMNS", "embeddings", "scalar_columns", "strings"]

SCALAR_COLUMNS: tuple[str, ...] = (
    "confidence", "entropy", "predicted_label", "n_tokens", "unk_rate", "truncated",
)


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _entropy(probs: pa.ChunkedArray) -> np.ndarray | None:
    if probs.null_count:
        return None
    lengths = pc.list_value_length(probs).to_numpy(zero_copy_only=False)
    if lengths.size == 0 or (lengths != lengths[0]).any() or lengths[0] == 0:
        return None
    p = pc.list_flatten(probs).to_numpy(zero_copy_only=False).astype(np.float64)
    p = p.reshape(len(probs), int(lengths[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    out: np.ndarray = terms.sum(axis=1)
    return out


def scalar_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The scalar columns present on every row of ``table`` (numeric ones as float64,
    ``predicted_label`` as object, ``truncated`` as 0/1 float)."""
    names = set(table.column_names)
    out: dict[str, np.ndarray] = {}
    if "confidence" in names:
        out["confidence"] = _floats(table["confidence"])
    if "probs" in names and table.num_rows and table["probs"].null_count == 0:
        ent = _entropy(table["probs"])
        if ent is not None:
            out["entropy"] = ent
    if "predicted_label" in names:
        out["predicted_label"] = np.asarray(table["predicted_label"].to_pylist(), dtype=object)
    if "n_tokens" in names and table.num_rows and table["n_tokens"].null_count == 0:
        n_tok = _floats(table["n_tokens"])
        out["n_tokens"] = n_tok
        if "n_unk" in names and table["n_unk"].null_count == 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                out["unk_rate"] = np.where(n_tok > 0, _floats(table["n_unk"]) / n_tok, 0.0)
    if "truncated" in names and table.num_rows and table["truncated"].null_count == 0:
        out["truncated"] = _floats(table["truncated"])
    return out


def embeddings(table: pa.Table) -> np.ndarray | None:
    """The ``embedding`` column as an ``(n, d)`` float32 matrix, or None unless every row
    has one of the same width."""
    if "embedding" not in table.column_names or table.num_rows == 0:
        return None
    col = table["embedding"]
    if col.null_count:
        return None
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if (lengths != lengths[0]).any() or lengths[0] == 0:
        return None
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    mat: np.ndarray = flat.reshape(table.num_rows, int(lengths[0]))
    return mat


def strings(table: pa.Table, name: str) -> list[str | None]:
    """A string column as a list (all ``None`` when the column is absent)."""
    if name not in table.column_names:
        return [None] * table.num_rows
    return [None if v is None else str(v) for v in table[name].to_pylist()]
