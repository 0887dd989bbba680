"""The prediction record: field names, Arrow schema and validation.

One record per classified text (DESIGN §3). The same field names are used in
DuckDB, Parquet, the HTTP API and JSON Lines. Two entry points:

- :func:`records_to_table` turns Python mappings (JSON, collector output) into
  an Arrow table, checking types record by record;
- :func:`validate_table` checks values of an Arrow table (ranges, NaN, lengths)
  with vectorised Arrow compute, so Parquet files are checked without a
  Python loop.

Both return the rows that passed plus a list of :class:`RecordError`; with
``skip_bad=False`` (the default) any error raises :class:`SchemaError` and
nothing is returned, so a caller can never half-write a batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.errors import RecordError, SchemaError

__all__ = [
    "ARROW_SCHEMA",
    "MAX_ERRORS",
    "OPTIONAL_FIELDS",
    "RECORD_FIELDS",
    "REQUIRED_FIELDS",
    "columnar_table",
    "records_to_table",
    "validate_table",
]

REQUIRED_FIELDS: tuple[str, ...] = (
    "event_id",
    "ts",
    "model_name",
    "model_version",
    "predicted_label",
    "confidence",
)
OPTIONAL_FIELDS: tuple[str, ...] = (
    "probs",
    "embedding",
    "n_tokens",
    "n_unk",
    "truncated",
    "n_chars",
    "latency_ms",
    "text",
    "text_sha256",
    "source",
    "label",
)
RECORD_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS

ARROW_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("predicted_label", pa.string(), nullable=False),
        pa.field("confidence", pa.float64(), nullable=False),
        pa.field("probs", pa.list_(pa.float32())),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("n_tokens", pa.int32()),
        pa.field("n_unk", pa.int32()),
        pa.field("truncated", pa.bool_()),
        pa.field("n_chars", pa.int32()),
        pa.field("latency_ms", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("text_sha256", pa.string()),
        pa.field("source", pa.string()),
        pa.field("label", pa.string()),
    ]
)

#: At most this many errors are collected before validation stops looking.
MAX_ERRORS = 100
MAX_ID_LENGTH = 200
MAX_TEXT_CHARS = 1_000_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STRING_FIELDS = ("event_id", "model_name", "model_version", "predicted_label")
_OPTIONAL_STRINGS = ("text", "text_sha256", "source", "label")
_INT_FIELDS = ("n_tokens", "n_unk", "n_chars")
_INT32_MAX = 2**31 - 1


def _parse_ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        ts = datetime.fromisoformat(text)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("must be finite")
        ts = datetime.fromtimestamp(float(value), tz=UTC)
    else:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _check_float_list(value: Any, *, unit_interval: bool) -> list[float]:
    if not isinstance(value, list | tuple | np.ndarray):
        raise TypeError(f"expected a list of numbers, got {type(value).__name__}")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float | np.floating | np.integer):
            raise TypeError(f"expected numbers, found {type(item).__name__}")
        f = float(item)
        if not math.isfinite(f):
            raise ValueError("contains NaN or infinity")
        if unit_interval and not (0.0 <= f <= 1.0):
            raise ValueError(f"values must be in [0, 1], found {f}")
        out.append(f)
    if not out:
        raise ValueError("must not be empty")
    return out


def _coerce_one(rec: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Type-check one record; return the coerced values and (field, message) problems."""
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    unknown = [k for k in rec if k not in RECORD_FIELDS]
    if unknown:
        problems.append((str(unknown[0]), "unknown field"))
    for name in RECORD_FIELDS:
        value = rec.get(name)
        if value is None:
            if name in REQUIRED_FIELDS:
                problems.append((name, "required field is missing"))
            out[name] = None
            continue
        try:
            out[name] = _coerce_value(name, value)
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append((name, str(exc)))
    return out, problems


def _coerce_value(name: str, value: Any) -> Any:
    if name in _STRING_FIELDS or name in _OPTIONAL_STRINGS:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        if name in _STRING_FIELDS and not value.strip():
            raise ValueError("must not be empty")
        if name == "event_id" and len(value) > MAX_ID_LENGTH:
            raise ValueError(f"longer than {MAX_ID_LENGTH} characters")
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"longer than {MAX_TEXT_CHARS} characters")
        if name == "text_sha256" and not _SHA256.match(value):
            raise ValueError("expected 64 lower-case hex digits")
        return value
    if name == "ts":
        return _parse_ts(value)
    if name in ("confidence", "latency_ms"):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise TypeError(f"expected a number, got {type(value).__name__}")
        return float(value)
    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"expected an integer, got {type(value).__name__}")
        if not (0 <= int(value) <= _INT32_MAX):
            raise ValueError(f"must be between 0 and {_INT32_MAX}, got {value}")
        return int(value)
    if name == "truncated":
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"expected true or false, got {type(value).__name__}")
        return bool(value)
    if name == "probs":
        return _check_float_list(value, unit_interval=True)
    if name == "embedding":
        return _check_float_list(value, unit_interval=False)
    raise ValueError("unknown field")  # pragma: no cover - RECORD_FIELDS is exhaustive


def _raise_or_keep(
    errors: list[RecordError], *, skip_bad: bool, source: str | None
) -> None:
    if errors and not skip_bad:
        raise SchemaError(errors[:MAX_ERRORS], source=source)


def records_to_table(
    records: Iterable[Mapping[str, Any]],
    *,
    skip_bad: bool = False,
    source: str | None = None,
    first_row: int = 0,
    row_numbers: Sequence[int] | None = None,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[pa.Table, list[RecordError]]:
    """Validate Python records and return them as an Arrow table.

    ``first_row`` offsets the row numbers in errors (for chunked files);
    ``row_numbers`` gives each record's own number instead (e.g. line numbers).
    ``embedding_dims`` maps (model_name, model_version) to the embedding
    dimension already known for it. Raises :class:`SchemaError` on any error
    unless ``skip_bad`` is set, in which case bad records are dropped and
    returned as errors.
    """
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_FIELDS}
    errors: list[RecordError] = []
    rows: list[int] = []
    for i, rec in enumerate(records):
        row = row_numbers[i] if row_numbers is not None else first_row + i
        if not isinstance(rec, Mapping):
            errors.append(RecordError(row, "<record>", f"expected an object, got {type(rec).__name__}"))
            continue
        values, problems = _coerce_one(rec)
        if problems:
            errors.extend(RecordError(row, f, m) for f, m in problems)
            if len(errors) >= MAX_ERRORS and not skip_bad:
                break
            continue
        rows.append(row)
        for name in RECORD_FIELDS:
            columns[name].append(values[name])
    _raise_or_keep(errors, skip_bad=skip_bad, source=source)
    arrays = [pa.array(columns[f.name], type=f.type) for f in ARROW_SCHEMA]
    table = pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
    table, more = validate_table(
        table, skip_bad=skip_bad, source=source, rows=rows, embedding_dims=embedding_dims
    )
    return table, sorted(errors + more, key=lambda e: e.row)


def _conform(table: pa.Table, source: str | None, first_row: int) -> pa.Table:
    """Cast an arbitrary Arrow table (e.g. read from Parquet) to ARROW_SCHEMA."""
    names = set(table.column_names)
    for name in REQUIRED_FIELDS:
        if name not in names:
            raise SchemaError([RecordError(first_row, name, "required column is missing")], source)
    for name in table.column_names:
        if name not in RECORD_FIELDS:
            raise SchemaError([RecordError(first_row, name, "unknown column")], source)
    arrays = []
    for field in ARROW_SCHEMA:
        if field.name not in names:
            arrays.append(pa.nulls(table.num_rows, type=field.type))
            continue
        col = table.column(field.name)
        try:
            if field.name == "ts" and pa.types.is_string(col.type):
                col = pa.array(
                    [None if v is None else _parse_ts(v) for v in col.to_pylist()],
                    type=field.type,
                )
            elif field.name == "ts" and pa.types.is_timestamp(col.type) and col.type.tz is None:
                col = pc.assume_timezone(col.cast(pa.timestamp("us")), "UTC")
            arrays.append(col.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError) as exc:
            raise SchemaError(
                [RecordError(first_row, field.name, f"cannot read as {field.type}: {exc}")], source
            ) from exc
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def _bad_rows(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Indices where a boolean mask is true (nulls count as false)."""
    arr = pc.fill_null(mask, False)
    return np.flatnonzero(arr.to_numpy(zero_copy_only=False))


def validate_table(
    table: pa.Table,
    *,
    skip_bad: bool = False,
    source: str | None = None,
    first_row: int = 0,
    rows: Sequence[int] | None = None,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[pa.Table, list[RecordError]]:
    """Check an Arrow table's values with vectorised compute.

    Checks required fields for nulls, confidence and probabilities in [0, 1]
    and finite, non-negative counts, ``n_unk <= n_tokens``, non-empty finite
    embeddings of one dimension per (model_name, model_version) — consistent
    within the table and with ``embedding_dims`` — and text hashes. ``rows``
    gives the original row number of each table row (defaults to
    ``first_row + i``).
    """
    table = _conform(table, source, first_row)
    n = table.num_rows
    row_of = np.asarray(rows if rows is not None else range(first_row, first_row + n))
    problems: list[tuple[int, str, str]] = []

    def flag(mask: Any, field: str, message: str) -> None:
        for i in _bad_rows(mask)[:MAX_ERRORS]:
            problems.append((int(i), field, message))

    for name in REQUIRED_FIELDS:
        flag(pc.is_null(table[name]), name, "required field is missing")
    for name in _STRING_FIELDS:
        flag(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(table[name])), 0), name, "must not be empty")
    conf = table["confidence"]
    flag(pc.is_nan(conf), "confidence", "must not be NaN")
    flag(pc.or_(pc.less(conf, 0.0), pc.greater(conf, 1.0)), "confidence", "must be in [0, 1]")
    lat = table["latency_ms"]
    flag(pc.invert(pc.is_finite(lat)), "latency_ms", "must be finite")
    flag(pc.less(lat, 0.0), "latency_ms", "must not be negative")
    for name in _INT_FIELDS:
        flag(pc.less(table[name], 0), name, "must not be negative")
    flag(pc.greater(table["n_unk"], table["n_tokens"]), "n_unk", "must not exceed n_tokens")
    sha = table["text_sha256"]
    flag(pc.invert(pc.match_substring_regex(sha, r"^[0-9a-f]{64}$")), "text_sha256",
         "expected 64 lower-case hex digits")

    probs = table["probs"]
    flat_p = pc.list_flatten(probs)
    if len(flat_p):
        bad_val = pc.fill_null(pc.or_(pc.invert(pc.is_finite(flat_p)),
                                      pc.or_(pc.less(flat_p, 0.0), pc.greater(flat_p, 1.0))), True)
        parent = pc.list_parent_indices(probs) if pc.any(bad_val).as_py() else pa.array([], pa.int64())
        for i in np.unique(pc.filter(parent, bad_val).to_numpy() if len(parent) else [])[:MAX_ERRORS]:
            problems.append((int(i), "probs", "values must be finite and in [0, 1]"))
    flag(pc.equal(pc.list_value_length(probs), 0), "probs", "must not be empty")

    emb = table["embedding"]
    flat_e = pc.list_flatten(emb)
    if len(flat_e):
        values = flat_e.to_numpy(zero_copy_only=False)
        if not np.isfinite(values).all():  # parent indices only when something is wrong
            parent = pc.list_parent_indices(emb)
            bad_val = pc.fill_null(pc.invert(pc.is_finite(flat_e)), True)  # null elements too
            for i in np.unique(pc.filter(parent, bad_val).to_numpy())[:MAX_ERRORS]:
                problems.append((int(i), "embedding", "contains NaN or infinity"))
    lengths = pc.list_value_length(emb)
    flag(pc.equal(lengths, 0), "embedding", "must not be empty")
    if pc.any(pc.is_valid(lengths)).as_py():
        problems.extend(_dimension_problems(table, lengths, embedding_dims or {}))

    if not problems:
        return table, []
    errors = sorted(
        (RecordError(int(row_of[i]), f, m) for i, f, m in problems), key=lambda e: (e.row, e.field)
    )
    _raise_or_keep(errors, skip_bad=skip_bad, source=source)
    bad = np.zeros(n, dtype=bool)
    bad[[i for i, _, _ in problems]] = True
    keep = pa.array(~bad)
    return table.filter(keep), errors


def _dimension_problems(
    table: pa.Table, lengths: Any, known: Mapping[tuple[str, str], int]
) -> list[tuple[int, str, str]]:
    """Rows whose embedding dimension differs from their model version's."""
    with_len = table.select(["model_name", "model_version"]).append_column(
        "dim", pc.fill_null(lengths, 0)
    )
    with_len = with_len.filter(pc.greater(with_len["dim"], 0))
    groups = with_len.group_by(["model_name", "model_version"]).aggregate(
        [("dim", "min"), ("dim", "max")]
    ).to_pylist()
    out: list[tuple[int, str, str]] = []
    lens = pc.fill_null(lengths, -1).to_numpy(zero_copy_only=False)
    for g in groups:
        key = (g["model_name"], g["model_version"])
        expected = known.get(key)
        if g["dim_min"] == g["dim_max"] and expected in (None, g["dim_min"]):
            continue
        mask = pc.and_(
            pc.equal(table["model_name"], key[0]), pc.equal(table["model_version"], key[1])
        )
        idx = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False) & (lens > 0))
        dim = expected if expected is not None else int(lens[idx[0]])
        for i in idx[lens[idx] != dim][:MAX_ERRORS]:
            out.append(
                (int(i), "embedding",
                 f"dimension {int(lens[i])} differs from {dim} for model {key[0]} version {key[1]}")
            )
    return out


def _vector_column(values: list[Any], typ: pa.DataType) -> pa.Array:
    """A list<float32> column; equal-length numpy vectors are stacked in one copy."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, np.ndarray) and v.ndim == 1 for v in present):
        dims = {v.shape[0] for v in present}
        if len(dims) == 1 and (dim := dims.pop()) > 0:
            dense = np.zeros((len(values), dim), dtype=np.float32)
            mask = np.zeros(len(values), dtype=bool)
            for i, v in enumerate(values):
                if v is None:
                    mask[i] = True
                else:
                    dense[i] = v
            flat = pa.FixedSizeListArray.from_arrays(pa.array(dense.ravel()), dim)
            out = flat.cast(typ)
            if mask.any():
                out = pc.if_else(pa.array(mask), pa.nulls(len(values), typ), out)
            return out
    return pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in values], type=typ)


def columnar_table(records: Sequence[Mapping[str, Any]]) -> pa.Table | None:
    """Records built column-wise by Arrow (numpy vectors stacked), or ``None`` when a record has
    an unknown or missing required key or a value Arrow refuses.

    The fast path for records the collectors produce: value checks (ranges, NaN,
    dimensions) are left to :func:`validate_table`; use :func:`records_to_table` when
    ``None`` comes back, for per-row, per-field errors.
    """
    allowed, required = set(RECORD_FIELDS), set(REQUIRED_FIELDS)
    for rec in records:
        keys = rec.keys()
        if not keys <= allowed or not keys >= required:
            return None
    try:
        arrays: list[pa.Array] = []
        for f in ARROW_SCHEMA:
            values = [r.get(f.name) for r in records]
            if f.name in ("probs", "embedding"):
                arrays.append(_vector_column(values, f.type))
            elif f.name == "ts":
                arrays.append(pa.array([None if v is None else _parse_ts(v) for v in values], type=f.type))
            elif f.name in _STRING_FIELDS or f.name in _OPTIONAL_STRINGS:
                if any(v is not None and type(v) is not str for v in values):
                    return None
                arrays.append(pa.array(values, type=f.type))
            else:
                if any(isinstance(v, bool | np.bool_) != (f.name == "truncated") for v in values
                       if v is not None):
                    return None
                arrays.append(pa.array(values, type=f.type))
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
