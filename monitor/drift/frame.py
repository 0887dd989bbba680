"""DriftFrame: the columns of a window of prediction records as numpy arrays.

Built once per window from an Arrow table (store read, Parquet or JSONL
file) and shared by every calculator, so no signal converts data itself.
Optional columns are ``None`` when no row of the window has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.errors import CalculatorError

__all__ = ["DriftFrame"]


def _fixed_matrix(col: pa.ChunkedArray, name: str) -> np.ndarray | None:
    """A list<float> column as an (n, d) float32 matrix; None if any row lacks it."""
    if col.null_count == len(col):
        return None
    if col.null_count:
        raise CalculatorError(f"column '{name}': {col.null_count} of {len(col)} rows lack it; "
                              "a window must have it on every row or on none")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if lengths.size and (lengths != lengths[0]).any():
        raise CalculatorError(f"column '{name}': rows have different lengths "
                              f"({int(lengths.min())}..{int(lengths.max())})")
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    d = int(lengths[0]) if lengths.size else 0
    mat: np.ndarray = flat.reshape(len(col), d)
    if not np.isfinite(mat).all():
        raise CalculatorError(f"column '{name}' contains NaN or infinity")
    return mat


def _optional(table: pa.Table, name: str, dtype: type) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    col = table[name]
    if col.null_count == len(col):
        return None
    arr = col.to_numpy(zero_copy_only=False)
    if dtype is str:
        return np.asarray([None if v is None else str(v) for v in arr], dtype=object)
    if col.null_count:
        return np.asarray([np.nan if v is None else v for v in arr], dtype=np.float64)
    return np.asarray(arr, dtype=dtype)


@dataclass(frozen=True, slots=True, eq=False)
class DriftFrame:
    """Columns of one window. ``n`` rows; 2-D arrays are (n, k) / (n, d)."""

    predicted_label: np.ndarray  # object (str)
    confidence: np.ndarray  # float64
    probs: np.ndarray | None = None  # float32 (n, k)
    embedding: np.ndarray | None = None  # float32 (n, d)
    n_tokens: np.ndarray | None = None  # float64 (NaN where missing)
    n_unk: np.ndarray | None = None
    truncated: np.ndarray | None = None  # float64 0/1 (NaN where missing)
    n_chars: np.ndarray | None = None
    latency_ms: np.ndarray | None = None
    text: np.ndarray | None = None  # object (str or None)
    label: np.ndarray | None = None  # object (str or None)
    event_id: np.ndarray | None = None  # object (str)

    @property
    def n(self) -> int:
        return int(self.confidence.shape[0])

    @classmethod
    def from_arrow(cls, table: pa.Table) -> DriftFrame:
        """Build from an Arrow table with the record columns (extra columns ignored)."""
        for name in ("predicted_label", "confidence"):
            if name not in table.column_names:
                raise CalculatorError(f"window lacks the required column '{name}'")
        conf = table["confidence"].to_numpy(zero_copy_only=False).astype(np.float64)
        if conf.size and not np.isfinite(conf).all():
            raise CalculatorError("column 'confidence' contains NaN or infinity")
        truncated = _optional(table, "truncated", float)
        return cls(
            predicted_label=np.asarray(table["predicted_label"].to_pylist(), dtype=object),
            confidence=conf,
            probs=_fixed_matrix(table["probs"], "probs") if "probs" in table.column_names else None,
            embedding=(_fixed_matrix(table["embedding"], "embedding")
                       if "embedding" in table.column_names else None),
            n_tokens=_optional(table, "n_tokens", float),
            n_unk=_optional(table, "n_unk", float),
            truncated=truncated,
            n_chars=_optional(table, "n_chars", float),
            latency_ms=_optional(table, "latency_ms", float),
            text=_optional(table, "text", str),
            label=_optional(table, "label", str),
            event_id=_optional(table, "event_id", str),
        )

    def take(self, idx: np.ndarray) -> DriftFrame:
        """Rows ``idx`` of every column (for subsampling and resampling)."""
        def sub(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return DriftFrame(
            predicted_label=self.predicted_label[idx], confidence=self.confidence[idx],
            probs=sub(self.probs), embedding=sub(self.embedding), n_tokens=sub(self.n_tokens),
            n_unk=sub(self.n_unk), truncated=sub(self.truncated), n_chars=sub(self.n_chars),
            latency_ms=sub(self.latency_ms), text=sub(self.text), label=sub(self.label),
            event_id=sub(self.event_id),
        )
