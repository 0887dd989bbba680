"""The record codec: the one reading of the prediction-record contract (DESIGN §3).

Every way a record enters shiftwatch goes through this module: HTTP bodies, JSON Lines,
CSV-free Parquet/Arrow files, collector batches and the store. It is the lowest layer (it
imports only pyarrow, numpy and :mod:`monitor.errors`) and holds exactly one of each:

- one JSON parser (:func:`parse_json`: strict UTF-8, a nesting limit, huge numbers refused);
- one timestamp rule (:func:`parse_ts` for scalars, the same rule vectorised for Arrow
  columns): ISO 8601 with an offset or ``Z``; a number is an epoch read by magnitude
  (seconds below 1e11, milliseconds below 1e14, microseconds below 1e17, else nanoseconds);
  Arrow timestamp columns keep their own unit and zone (no zone = UTC); every instant must lie
  in [1970-01-01, 2101-01-01) UTC;
- one JSON → Arrow conversion (:func:`records_to_table`): a columnar fast path, and a
  record-by-record path that only runs to name the failing row and field;
- one value check (:func:`validate_table`), vectorised with ``pyarrow.compute``.

Limits (also in docs/records.md): names, ids and labels ≤ :data:`MAX_NAME_CHARS` characters
with no control characters (U+0000–U+001F, U+007F); ``text`` ≤ :data:`MAX_TEXT_CHARS`;
numbers finite; counts in [0, 2^31); ``confidence`` and ``probs`` in [0, 1]; no lone
surrogates. Every violation is a :class:`~monitor.errors.RecordError` (row, field, reason),
raised together as :class:`~monitor.errors.SchemaError`; the functions here raise nothing else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.errors import RecordError, SchemaError

__all__ = [
    "ARROW_SCHEMA",
    "EPOCH_UNIT_BOUNDS",
    "MAX_ERRORS",
    "MAX_NAME_CHARS",
    "MAX_TEXT_CHARS",
    "NAME_FIELDS",
    "OPTIONAL_FIELDS",
    "RECORD_FIELDS",
    "REQUIRED_FIELDS",
    "TS_MAX",
    "TS_MIN",
    "InvalidValue",
    "check_int",
    "check_name",
    "labels_to_table",
    "parse_json",
    "parse_ts",
    "record_errors",
    "records_to_table",
    "validate_record",
    "validate_table",
]

REQUIRED_FIELDS: tuple[str, ...] = (
    "event_id", "ts", "model_name", "model_version", "predicted_label", "confidence",
)
OPTIONAL_FIELDS: tuple[str, ...] = (
    "probs", "embedding", "n_tokens", "n_unk", "truncated", "n_chars", "latency_ms", "text",
    "text_sha256", "source", "label",
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
#: Names, ids and labels: at most this many characters, no control characters.
MAX_NAME_CHARS = 200
#: The raw ``text`` field: at most this many characters.
MAX_TEXT_CHARS = 1_000_000
#: Every timestamp lies in [TS_MIN, TS_MAX).
TS_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2101, 1, 1, tzinfo=UTC)
#: A numeric epoch below the first bound is seconds, below the second milliseconds, below the
#: third microseconds, else nanoseconds.
EPOCH_UNIT_BOUNDS = (1e11, 1e14, 1e17)

#: Required non-empty names and optional labels: the name rule (length, control characters).
NAME_FIELDS: tuple[str, ...] = ("event_id", "model_name", "model_version", "predicted_label",
                                "source", "label")
_REQUIRED_NAMES = ("event_id", "model_name", "model_version", "predicted_label")
_STRING_FIELDS = (*NAME_FIELDS, "text", "text_sha256")
_FLOAT_FIELDS = ("confidence", "latency_ms")
_INT_FIELDS = ("n_tokens", "n_unk", "n_chars")
_LIST_FIELDS = ("probs", "embedding")
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_CONTROL = r"[\x00-\x1f\x7f]"
_CONTROL_RE = re.compile(_CONTROL)
_SHA256 = r"^[0-9a-f]{64}$"
_ALLOWED = frozenset(RECORD_FIELDS)
_REQUIRED = frozenset(REQUIRED_FIELDS)
_NUMBER_TYPES = frozenset({int, float, np.float32, np.float64, np.int32, np.int64})
_INT_TYPES = frozenset({int, np.int32, np.int64})
_TS_MIN_US = 0
_TS_MAX_US = int((TS_MAX - TS_MIN) / timedelta(microseconds=1))
_US_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}


class InvalidValue(ValueError):
    """One value breaks the record contract; the message says why (the caller knows the field)."""


# -- scalar rules -----------------------------------------------------------------------------
def parse_json(data: bytes | str, *, row: int = 0, source: str | None = None) -> Any:
    """Parse one JSON document: strict UTF-8, nesting ≤ ~200 levels, numbers within range.

    ``NaN``/``Infinity`` literals become floats on purpose, so the record check names them with
    their row and field. Any problem is a :class:`SchemaError` for ``row`` (field ``<json>``).
    """
    import pydantic_core

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise SchemaError([RecordError(row, "<json>", f"not valid UTF-8 (byte {exc.start}): "
                                       f"{exc.reason}")], source=source) from exc
    try:
        return pydantic_core.from_json(text, allow_inf_nan=True)
    except ValueError as exc:  # syntax, lone surrogate escapes, huge numbers, nesting depth
        raise SchemaError([RecordError(row, "<json>", f"invalid JSON: {str(exc)[:300]}")],
                          source=source) from exc


def _epoch_us(value: float) -> int:
    """A numeric epoch (s/ms/µs/ns by magnitude) in microseconds."""
    magnitude = abs(value)
    s_bound, ms_bound, us_bound = EPOCH_UNIT_BOUNDS
    if magnitude < s_bound:
        return round(value * 1_000_000)
    if magnitude < ms_bound:
        return round(value * 1_000)
    if magnitude < us_bound:
        return round(value)
    return round(value / 1_000)


def parse_ts(value: Any) -> datetime:
    """The one timestamp rule, for one value; a UTC ``datetime`` or :class:`InvalidValue`.

    Accepts an aware ``datetime``, an ISO 8601 string with an offset or ``Z``, or a finite
    number read as an epoch by magnitude (:data:`EPOCH_UNIT_BOUNDS`). The instant must lie in
    [:data:`TS_MIN`, :data:`TS_MAX`).
    """
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise InvalidValue("expected an ISO 8601 timestamp, got a string of "
                               f"{len(text)} characters")
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            ts = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidValue(f"not an ISO 8601 timestamp: {value[:64]!r}") from exc
    elif isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return _epoch_ts(_epoch_us_int(int(value)), value)
    elif isinstance(value, float | np.floating):
        f = float(value)
        if not math.isfinite(f) or abs(f) >= 1e20:
            raise InvalidValue(f"epoch {f} is not a finite number in range")
        return _epoch_ts(_epoch_us(f), f)
    else:
        raise InvalidValue(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidValue("timestamp has no UTC offset; add 'Z' or '+HH:MM'")
    try:
        ts = ts.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidValue("timestamp is outside 1970-01-01..2100-12-31") from exc
    if not TS_MIN <= ts < TS_MAX:
        raise InvalidValue(f"timestamp {ts.isoformat()} is outside 1970-01-01..2100-12-31")
    return ts


def _epoch_ts(us: int, value: Any) -> datetime:
    if not _TS_MIN_US <= us < _TS_MAX_US:
        shown = _shown_number(value)
        raise InvalidValue(f"epoch {shown} is outside 1970-01-01..2100-12-31 "
                           "(read as seconds < 1e11, ms < 1e14, µs < 1e17, else ns)")
    return TS_MIN + timedelta(microseconds=us)


def _epoch_us_int(value: int) -> int:
    """:func:`_epoch_us` in exact integer arithmetic (large ints, e.g. ``time.time_ns()``)."""
    magnitude = abs(value)
    s_bound, ms_bound, us_bound = (int(b) for b in EPOCH_UNIT_BOUNDS)
    if magnitude < s_bound:
        return value * 1_000_000
    if magnitude < ms_bound:
        return value * 1_000
    if magnitude < us_bound:
        return value
    return value // 1_000


def check_name(
    value: Any, *, limit: int = MAX_NAME_CHARS, required: bool = True, control: bool = True
) -> str:
    """A name/id/label: a string of at most ``limit`` characters without control characters
    (``control=False`` allows them, for free text), non-blank when ``required``."""
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidValue(f"longer than {limit} characters ({len(value)})")
    if required and not value.strip():
        raise InvalidValue("must not be empty")
    if control and _CONTROL_RE.search(value):
        raise InvalidValue("contains a control character (U+0000-U+001F or U+007F)")
    if not _encodable(value):
        raise InvalidValue("not valid Unicode (lone surrogate)")
    return value


def check_int(value: Any, *, high: int = _INT64_MAX) -> int:
    """A non-negative integer of at most ``high`` (no booleans, no floats)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidValue(f"expected an integer, got {type(value).__name__}")
    if not 0 <= int(value) <= high:
        raise InvalidValue(f"must be between 0 and {high}, got {_shown_number(int(value))}")
    return int(value)


def _shown_number(value: Any) -> str:
    """A number for a message; never the 4,300-digit str() that Python refuses."""
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    return str(value)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- JSON records -> Arrow ----------------------------------------------------------------------
class _Fallback(Exception):
    """The fast path cannot take this batch: use the record-by-record path."""


def _fast_column(name: str, values: list[Any]) -> pa.Array:
    typ = ARROW_SCHEMA.field(name).type
    if name == "ts":
        try:
            return pa.array([None if v is None else parse_ts(v) for v in values], type=typ)
        except InvalidValue as exc:
            raise _Fallback from exc
    if name in _STRING_FIELDS:
        if any(v is not None and type(v) is not str for v in values):
            raise _Fallback
    elif name in _FLOAT_FIELDS:
        if any(v is not None and type(v) not in _NUMBER_TYPES for v in values):
            raise _Fallback
    elif name in _INT_FIELDS:
        if any(v is not None and type(v) not in _INT_TYPES for v in values):
            raise _Fallback
    elif name == "truncated":
        if any(v is not None and type(v) not in (bool, np.bool_) for v in values):
            raise _Fallback
    else:
        return _vector_column(values, typ)
    return pa.array(values, type=typ)


def _vector_column(values: list[Any], typ: pa.DataType) -> pa.Array:
    """A list<float32> column; equal-length numpy vectors are stacked in one copy."""
    present = [v for v in values if v is not None]
    if present and all(type(v) is np.ndarray and v.ndim == 1 and v.dtype.kind == "f" for v in present):
        dims = {v.shape[0] for v in present}
        if len(dims) == 1 and (dim := dims.pop()) > 0:
            dense = np.zeros((len(values), dim), dtype=np.float32)
            missing = np.zeros(len(values), dtype=bool)
            for i, v in enumerate(values):
                if v is None:
                    missing[i] = True
                else:
                    dense[i] = v
            out = pa.FixedSizeListArray.from_arrays(pa.array(dense.ravel()), dim).cast(typ)
            if missing.any():
                out = pc.if_else(pa.array(missing), pa.nulls(len(values), typ), out)
            return out
    for v in present:
        # a bool or null inside a list must never reach Arrow (it would cast it)
        if type(v) is not list or not set(map(type, v)) <= _NUMBER_TYPES:
            raise _Fallback
    return pa.array(values, type=typ)


def _fast_table(records: Sequence[Any]) -> pa.Table | None:
    """The records as an ARROW_SCHEMA table when every value has its plain type, else None."""
    for rec in records:
        if not isinstance(rec, Mapping):
            return None
        keys = rec.keys()
        if not keys <= _ALLOWED or not keys >= _REQUIRED:
            return None
    try:
        arrays = [_fast_column(f.name, [r.get(f.name) for r in records]) for f in ARROW_SCHEMA]
        for name in REQUIRED_FIELDS:
            if arrays[ARROW_SCHEMA.get_field_index(name)].null_count:
                return None
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
    except (_Fallback, pa.ArrowException, TypeError, ValueError, OverflowError):
        return None  # includes UnicodeEncodeError (lone surrogates)


def _float_list(value: Any, *, unit_interval: bool) -> list[float]:
    if not isinstance(value, list | tuple | np.ndarray):
        raise InvalidValue(f"expected a list of numbers, got {type(value).__name__}")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float | np.floating | np.integer):
            raise InvalidValue(f"expected numbers, found {type(item).__name__}")
        try:
            f = float(item)
        except OverflowError as exc:
            raise InvalidValue("a number is too large") from exc
        if not math.isfinite(f):
            raise InvalidValue("contains NaN or infinity")
        if unit_interval and not (0.0 <= f <= 1.0):
            raise InvalidValue(f"values must be in [0, 1], found {f}")
        out.append(f)
    if not out:
        raise InvalidValue("must not be empty")
    return out


def _coerce_value(name: str, value: Any) -> Any:
    """Type-check and convert one JSON/Python value; value rules are validate_table's."""
    if name in _STRING_FIELDS:
        if not isinstance(value, str):
            raise InvalidValue(f"expected a string, got {type(value).__name__}")
        if not _encodable(value):
            raise InvalidValue("not valid Unicode (lone surrogate)")
        return value
    if name == "ts":
        return parse_ts(value)
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise InvalidValue(f"expected a number, got {type(value).__name__}")
        try:
            return float(value)
        except OverflowError as exc:
            raise InvalidValue("number is too large") from exc
    if name in _INT_FIELDS:
        return check_int(value, high=_INT32_MAX)
    if name == "truncated":
        if not isinstance(value, bool | np.bool_):
            raise InvalidValue(f"expected true or false, got {type(value).__name__}")
        return bool(value)
    return _float_list(value, unit_interval=name == "probs")


def _coerce_one(rec: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key in rec:
        if key not in _ALLOWED:
            problems.append((_shown(key), "unknown field"))
            break
    for name in RECORD_FIELDS:
        value = rec.get(name)
        if value is None:
            if name in _REQUIRED:
                problems.append((name, "required field is missing"))
            out[name] = None
            continue
        try:
            out[name] = _coerce_value(name, value)
        except InvalidValue as exc:
            problems.append((name, str(exc)))
    return out, problems


def records_to_table(
    records: Iterable[Any],
    *,
    skip_bad: bool = False,
    source: str | None = None,
    first_row: int = 0,
    row_numbers: Sequence[int] | None = None,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[pa.Table, list[RecordError]]:
    """Check JSON/Python records against the contract and return them as an Arrow table.

    ``first_row`` offsets the row numbers in errors (for chunked files); ``row_numbers`` gives
    each record's own number instead (e.g. line numbers). ``embedding_dims`` maps (model_name,
    model_version) to the embedding dimension already known for it. Raises
    :class:`SchemaError` on any error unless ``skip_bad`` is set, in which case bad records are
    left out and returned as errors. Raises nothing else.
    """
    records = records if isinstance(records, Sequence) else list(records)
    rows = list(row_numbers) if row_numbers is not None else list(
        range(first_row, first_row + len(records)))
    fast = _fast_table(records)
    if fast is not None:
        return validate_table(fast, skip_bad=skip_bad, source=source, rows=rows,
                              embedding_dims=embedding_dims)
    return _records_one_by_one(records, rows, skip_bad=skip_bad, source=source,
                               embedding_dims=embedding_dims)


def _records_one_by_one(
    records: Sequence[Any],
    rows: Sequence[int],
    *,
    skip_bad: bool,
    source: str | None,
    embedding_dims: Mapping[tuple[str, str], int] | None,
) -> tuple[pa.Table, list[RecordError]]:
    """The record-by-record conversion: slower, and names each bad row and field."""
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_FIELDS}
    errors: list[RecordError] = []
    kept: list[int] = []
    for i, rec in enumerate(records):
        row = rows[i]
        if not isinstance(rec, Mapping):
            errors.append(RecordError(row, "<record>", f"expected an object, got {type(rec).__name__}"))
            continue
        values, problems = _coerce_one(rec)
        if problems:
            errors.extend(RecordError(row, f, m) for f, m in problems)
            if len(errors) >= MAX_ERRORS and not skip_bad:
                break
            continue
        kept.append(row)
        for name in RECORD_FIELDS:
            columns[name].append(values[name])
    if errors and not skip_bad:
        raise SchemaError(errors[:MAX_ERRORS], source=source)
    table = pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in ARROW_SCHEMA],
                                 schema=ARROW_SCHEMA)
    table, more = validate_table(table, skip_bad=skip_bad, source=source, rows=kept,
                                 embedding_dims=embedding_dims)
    return table, sorted(errors + more, key=lambda e: e.row)


def record_errors(
    record: Any, *, row: int = 0, embedding_dims: Mapping[tuple[str, str], int] | None = None
) -> list[RecordError]:
    """Every problem of ONE record (empty when it is valid), each naming ``row`` and the field."""
    return records_to_table([record], skip_bad=True, row_numbers=[row],
                            embedding_dims=embedding_dims)[1]


def validate_record(
    record: Any, *, row: int = 0, embedding_dims: Mapping[tuple[str, str], int] | None = None
) -> RecordError | None:
    """The first problem of ONE record (naming row and field), or ``None`` when it is valid."""
    errors = record_errors(record, row=row, embedding_dims=embedding_dims)
    return errors[0] if errors else None


# -- Arrow tables --------------------------------------------------------------------------------
_Problem = tuple[int, str, str]


def _flagged(mask: Any) -> np.ndarray:
    """Indices where a boolean mask is true (nulls count as false)."""
    return np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))


def _ts_column(col: pa.ChunkedArray) -> tuple[pa.Array, list[_Problem]]:
    """A ts column of any supported type as timestamp[us, UTC]; out-of-rule rows become null."""
    typ = ARROW_SCHEMA.field("ts").type
    problems: list[_Problem] = []
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        out: list[datetime | None] = []
        for i, v in enumerate(col.to_pylist()):
            try:
                out.append(None if v is None else parse_ts(v))
            except InvalidValue as exc:
                out.append(None)
                problems.append((i, "ts", str(exc)))
        return pa.array(out, type=typ), problems
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(col.type):
        raw = pc.fill_null(col.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        factor = _US_PER[col.type.unit]
        us = raw // 1_000 if factor is None else raw * factor
        lo, hi = (_TS_MIN_US * 1_000, _TS_MAX_US * 1_000) if factor is None else \
            (_TS_MIN_US // factor, -(-_TS_MAX_US // factor))
        bad = valid & ((raw < lo) | (raw >= hi))
        reason = f"timestamp[{col.type.unit}] value outside 1970-01-01..2100-12-31"
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        raw_f = pc.fill_null(col.cast(pa.float64(), safe=False), 0.0).to_numpy(zero_copy_only=False)
        mag = np.abs(raw_f)
        safe = np.isfinite(raw_f) & (mag < 1e20)
        vals = np.where(safe, raw_f, 0.0)
        s_b, ms_b, us_b = EPOCH_UNIT_BOUNDS
        scale = np.select([mag < s_b, mag < ms_b, mag < us_b], [1_000_000, 1_000, 1], 0)
        if pa.types.is_integer(col.type):  # exact for int64 epochs (ns do not fit a float)
            ints = pc.fill_null(col.cast(pa.int64(), safe=False), 0).to_numpy(zero_copy_only=False)
            us = np.where(scale > 0, ints * scale, ints // 1_000)
        else:
            us = np.round(np.where(scale > 0, vals * scale, vals / 1_000)).astype(np.int64)
        bad = valid & (~safe | (us < _TS_MIN_US) | (us >= _TS_MAX_US))
        reason = ("epoch outside 1970-01-01..2100-12-31 (read as seconds < 1e11, ms < 1e14, "
                  "µs < 1e17, else ns)")
    else:
        raise SchemaError([RecordError(0, "ts", f"cannot read a {col.type} column as a timestamp")])
    problems.extend((int(i), "ts", reason) for i in np.flatnonzero(bad)[:MAX_ERRORS])
    arr = pa.array(us.astype(np.int64), mask=~valid | bad).cast(typ) if len(us) else pa.nulls(0, typ)
    return arr, problems


def _cast_column(field: pa.Field, col: pa.ChunkedArray) -> tuple[Any, list[_Problem]]:
    """``col`` cast to the contract's type; integers out of range name their rows."""
    if pa.types.is_integer(field.type) and pa.types.is_integer(col.type) and col.type != field.type:
        bad = pc.or_(pc.less(col, 0), pc.greater(col, _INT32_MAX))
        idx = _flagged(bad)
        if len(idx):
            problems = [(int(i), field.name, f"must be between 0 and {_INT32_MAX}")
                        for i in idx[:MAX_ERRORS]]
            return pc.if_else(bad, pa.scalar(None, col.type), col).cast(field.type), problems
    return col.cast(field.type), []


def _conform(table: pa.Table, source: str | None, row_of: np.ndarray) -> tuple[pa.Table, list[_Problem]]:
    """Cast an Arrow table (e.g. read from Parquet) to ARROW_SCHEMA; value problems as rows."""
    first = int(row_of[0]) if len(row_of) else 0
    if table.schema.equals(ARROW_SCHEMA):
        return table, []
    names = set(table.column_names)
    for name in REQUIRED_FIELDS:
        if name not in names:
            raise SchemaError([RecordError(first, name, "required column is missing")], source)
    for name in table.column_names:
        if name not in _ALLOWED:
            raise SchemaError([RecordError(first, name, "unknown column")], source)
    arrays: list[Any] = []
    problems: list[_Problem] = []
    for field in ARROW_SCHEMA:
        if field.name not in names:
            arrays.append(pa.nulls(table.num_rows, type=field.type))
            continue
        col = table.column(field.name)
        try:
            if field.name == "ts":
                if col.type == field.type:
                    arr: Any = col
                else:
                    arr, more = _ts_column(col)
                    problems.extend(more)
            else:
                arr, more = _cast_column(field, col)
                problems.extend(more)
            arrays.append(arr)
        except SchemaError as exc:
            raise SchemaError([RecordError(first, e.field, e.message) for e in exc.errors],
                              source) from exc
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise SchemaError(
                [RecordError(first, field.name, f"cannot read as {field.type}: {exc}")], source
            ) from exc
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA), problems


def _string_problems(col: Any, name: str, *, limit: int, required: bool,
                     control: bool) -> list[_Problem]:
    """Vectorised name rule for one string column (``col`` may be dictionary-sized)."""
    out: list[_Problem] = []
    lengths = pc.utf8_length(col)
    for i in _flagged(pc.greater(lengths, limit))[:MAX_ERRORS]:
        out.append((int(i), name, f"longer than {limit} characters"))
    if required:
        for i in _flagged(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))[:MAX_ERRORS]:
            out.append((int(i), name, "must not be empty"))
    if control:
        for i in _flagged(pc.match_substring_regex(col, _CONTROL))[:MAX_ERRORS]:
            out.append((int(i), name, "contains a control character (U+0000-U+001F or U+007F)"))
    return out


def _name_problems(col: pa.ChunkedArray, name: str, required: bool) -> list[_Problem]:
    """The name rule, checked on the distinct values first (names repeat; ids don't)."""
    distinct = pc.unique(col)
    if len(distinct) * 4 < len(col) and not _string_problems(
            distinct, name, limit=MAX_NAME_CHARS, required=required, control=True):
        return []
    return _string_problems(col, name, limit=MAX_NAME_CHARS, required=required, control=True)


def validate_table(
    table: pa.Table,
    *,
    skip_bad: bool = False,
    source: str | None = None,
    first_row: int = 0,
    rows: Sequence[int] | None = None,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[pa.Table, list[RecordError]]:
    """Check an Arrow table of records with vectorised compute; return the good rows and errors.

    Columns are cast to :data:`ARROW_SCHEMA` first (timestamps by the one rule, whatever their
    unit, zone or epoch encoding). Checks: required fields present; names, ids and labels
    within :data:`MAX_NAME_CHARS` and free of control characters; ``text`` within
    :data:`MAX_TEXT_CHARS`; ts in range; ``confidence`` and ``probs`` finite and in [0, 1];
    finite, non-negative ``latency_ms``; counts ≥ 0 and ``n_unk <= n_tokens``; non-empty,
    finite embeddings of one dimension per (model_name, model_version), consistent with
    ``embedding_dims``; 64-hex ``text_sha256``. ``rows`` gives each table row's own number
    (defaults to ``first_row + i``). Raises :class:`SchemaError` on any problem unless
    ``skip_bad``; raises nothing else.
    """
    n = table.num_rows
    row_of = np.asarray(rows, dtype=np.int64) if rows is not None else \
        np.arange(first_row, first_row + n, dtype=np.int64)
    table, problems = _conform(table, source, row_of)

    def flag(mask: Any, field: str, message: str) -> None:
        problems.extend((int(i), field, message) for i in _flagged(mask)[:MAX_ERRORS])

    for name in REQUIRED_FIELDS:
        if table[name].null_count:
            flag(pc.is_null(table[name]), name, "required field is missing")
    for name in NAME_FIELDS:
        if table[name].null_count < n:
            problems.extend(_name_problems(table[name], name, required=name in _REQUIRED_NAMES))
    text = table["text"]
    if text.null_count < n:
        problems.extend(_string_problems(text, "text", limit=MAX_TEXT_CHARS, required=False,
                                         control=False))
    ts_us = table["ts"].cast(pa.int64())
    flag(pc.or_(pc.less(ts_us, _TS_MIN_US), pc.greater_equal(ts_us, _TS_MAX_US)), "ts",
         "timestamp is outside 1970-01-01..2100-12-31")
    conf = table["confidence"]
    flag(pc.invert(pc.is_finite(conf)), "confidence", "must be a finite number")
    flag(pc.or_(pc.less(conf, 0.0), pc.greater(conf, 1.0)), "confidence", "must be in [0, 1]")
    lat = table["latency_ms"]
    if lat.null_count < n:
        flag(pc.invert(pc.is_finite(lat)), "latency_ms", "must be finite")
        flag(pc.less(lat, 0.0), "latency_ms", "must not be negative")
    for name in _INT_FIELDS:
        if table[name].null_count < n:
            flag(pc.less(table[name], 0), name, "must not be negative")
    # compared only where n_tokens is itself valid (a negative one is already named above)
    flag(pc.and_(pc.greater(table["n_unk"], table["n_tokens"]), pc.greater_equal(table["n_tokens"], 0)),
         "n_unk", "must not exceed n_tokens")
    sha = table["text_sha256"]
    if sha.null_count < n:
        flag(pc.invert(pc.match_substring_regex(sha, _SHA256)), "text_sha256",
             "expected 64 lower-case hex digits")
    problems.extend(_list_problems(table["probs"], "probs", unit_interval=True))
    emb = table["embedding"]
    problems.extend(_list_problems(emb, "embedding", unit_interval=False))
    if emb.null_count < n:
        problems.extend(_dimension_problems(table, pc.list_value_length(emb), embedding_dims or {}))

    if not problems:
        return table, []
    seen: set[tuple[int, str]] = set()
    unique: list[_Problem] = []
    for i, f, m in problems:
        if (i, f) not in seen:
            seen.add((i, f))
            unique.append((i, f, m))
    errors = sorted((RecordError(int(row_of[i]), f, m) for i, f, m in unique),
                    key=lambda e: (e.row, e.field))
    if not skip_bad:
        raise SchemaError(errors[:MAX_ERRORS], source=source)
    bad = np.zeros(n, dtype=bool)
    bad[[i for i, _, _ in unique]] = True
    return table.filter(pa.array(~bad)), errors


def _list_problems(col: pa.ChunkedArray, name: str, *, unit_interval: bool) -> list[_Problem]:
    """Rows whose list holds a null, NaN/inf or (for probs) a value outside [0, 1]; or is empty."""
    out: list[_Problem] = []
    if col.null_count == len(col):
        return out
    message = "values must be finite and in [0, 1]" if unit_interval else "contains NaN or infinity"
    start = 0
    for chunk in col.chunks:
        values = chunk.flatten().to_numpy(zero_copy_only=False)  # nulls read as NaN
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(values)
            if unit_interval:
                ok &= (values >= 0.0) & (values <= 1.0)
        if not ok.all():  # parent indices only when something is wrong
            parent = pc.list_parent_indices(chunk).to_numpy(zero_copy_only=False)
            out.extend((start + int(i), name, message) for i in np.unique(parent[~ok])[:MAX_ERRORS])
        start += len(chunk)
    out.extend((int(i), name, "must not be empty")
               for i in _flagged(pc.equal(pc.list_value_length(col), 0))[:MAX_ERRORS])
    return out


def _dimension_problems(
    table: pa.Table, lengths: Any, known: Mapping[tuple[str, str], int]
) -> list[_Problem]:
    """Rows whose embedding dimension differs from their model version's."""
    with_len = table.select(["model_name", "model_version"]).append_column(
        "dim", pc.fill_null(lengths, 0))
    with_len = with_len.filter(pc.greater(with_len["dim"], 0))
    groups = with_len.group_by(["model_name", "model_version"]).aggregate(
        [("dim", "min"), ("dim", "max")]).to_pylist()
    out: list[_Problem] = []
    lens = pc.fill_null(lengths, -1).to_numpy(zero_copy_only=False)
    for g in groups:
        key = (g["model_name"], g["model_version"])
        expected = known.get(key)
        if g["dim_min"] == g["dim_max"] and expected in (None, g["dim_min"]):
            continue
        mask = pc.and_(pc.equal(table["model_name"], key[0]), pc.equal(table["model_version"], key[1]))
        idx = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False) & (lens > 0))
        dim = expected if expected is not None else int(lens[idx[0]])
        for i in idx[lens[idx] != dim][:MAX_ERRORS]:
            out.append((int(i), "embedding",
                        f"dimension {int(lens[i])} differs from {dim} for model {key[0]} "
                        f"version {key[1]}"))
    return out


# -- delayed labels -----------------------------------------------------------------------------
LABEL_SCHEMA = pa.schema([("event_id", pa.string()), ("label", pa.string()),
                          ("labeled_at", pa.timestamp("us", tz="UTC")), ("source", pa.string())])
_LABEL_FIELDS = ("event_id", "label", "labeled_at", "source")


def labels_to_table(
    items: Sequence[Any], *, now: datetime | None = None, source: str | None = None
) -> pa.Table:
    """Delayed ground truth ``{event_id, label, labeled_at?, source?}`` as an Arrow table.

    ``event_id`` and ``label`` follow the name rule, ``labeled_at`` the timestamp rule of
    predictions (``now`` when absent), ``source`` the name rule when present. One event_id
    twice in one batch is refused (which of the two is right cannot be known). Any problem
    raises :class:`SchemaError` naming row and field; nothing else is raised.
    """
    at_default = now or datetime.now(UTC)
    cols: dict[str, list[Any]] = {name: [] for name in _LABEL_FIELDS}
    errors: list[RecordError] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            errors.append(RecordError(i, "<record>", f"expected an object, got {type(item).__name__}"))
            continue
        row_errors = [RecordError(i, _shown(k), "unknown field") for k in item if k not in _LABEL_FIELDS]
        values: dict[str, Any] = {}
        for name in _LABEL_FIELDS:
            value = item.get(name)
            try:
                if value is None:
                    if name in ("event_id", "label"):
                        raise InvalidValue("required field is missing")
                    values[name] = at_default if name == "labeled_at" else None
                elif name == "labeled_at":
                    values[name] = parse_ts(value)
                else:
                    values[name] = check_name(value, required=name != "source")
            except InvalidValue as exc:
                row_errors.append(RecordError(i, name, str(exc)))
        eid = values.get("event_id")
        if isinstance(eid, str) and not row_errors:
            if eid in first:
                row_errors.append(RecordError(i, "event_id",
                                              f"repeats the event_id of row {first[eid]} in this batch"))
            first.setdefault(eid, i)
        if row_errors:
            errors.extend(row_errors)
            continue
        for name in _LABEL_FIELDS:
            cols[name].append(values[name])
    if errors:
        raise SchemaError(errors[:MAX_ERRORS], source=source)
    return pa.table(cols, schema=LABEL_SCHEMA)


def _shown(key: Any) -> str:
    """A field name fit for a one-line message (escaped, at most 64 characters, never blank)."""
    text = key if isinstance(key, str) and key.strip() else repr(key)
    return text.encode("unicode_escape").decode("ascii")[:64]
