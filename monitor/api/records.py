"""A fast, strict conversion of JSON records to the Arrow record table.

:func:`collectors.schema.records_to_table` checks every element of every ``embedding`` and
``probs`` list in Python, which dominates ingest time for 384-dimensional embeddings. Here
scalar fields are type-checked per record (as strictly as the record validator: no ``true``
for a number, no ``1.0`` for a count) and the list columns are converted by Arrow in C; the
table then goes through the store's vectorised :func:`~collectors.schema.validate_table`
(NaN/Inf, ranges, dimensions, empties) like a Parquet file would.

Whenever anything looks unusual — a missing or unknown field, a wrong type, a ``bool`` or
``null`` inside a list, a value Arrow will not take — :func:`fast_table` returns ``None`` and
the caller uses the authoritative record-by-record path, which produces the row/field errors.
So this path can only accept what the slow path accepts; it never rejects anything itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from collectors.schema import ARROW_SCHEMA, RECORD_FIELDS, REQUIRED_FIELDS

__all__ = ["fast_table"]

_ALLOWED = frozenset(RECORD_FIELDS)
_REQUIRED = frozenset(REQUIRED_FIELDS)
_STRINGS = ("event_id", "model_name", "model_version", "predicted_label", "text", "text_sha256",
            "source", "label")
_FLOATS = ("confidence", "latency_ms")
_INTS = ("n_tokens", "n_unk", "n_chars")
_LISTS = ("probs", "embedding")
_MAX_ID = 200
_MAX_TEXT = 1_000_000
_INT32_MAX = 2**31 - 1
_NUMBER_TYPES = frozenset({int, float})


class _Fallback(Exception):
    """Use the record-by-record path."""


def _ts(value: Any) -> datetime:
    if type(value) is str:
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            ts = datetime.fromisoformat(text)
        except ValueError as exc:
            raise _Fallback from exc
    elif type(value) in (int, float) and math.isfinite(value):
        try:
            ts = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _Fallback from exc
    else:
        raise _Fallback
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _column(name: str, values: list[Any]) -> pa.Array:
    if name in _STRINGS:
        limit = _MAX_ID if name == "event_id" else _MAX_TEXT
        for v in values:
            if v is not None and (type(v) is not str or len(v) > limit):
                raise _Fallback
    elif name in _FLOATS:
        for v in values:
            if v is not None and type(v) not in (int, float):
                raise _Fallback
    elif name in _INTS:
        for v in values:
            if v is not None and (type(v) is not int or not 0 <= v <= _INT32_MAX):
                raise _Fallback
    elif name == "truncated":
        for v in values:
            if v is not None and type(v) is not bool:
                raise _Fallback
    elif name in _LISTS:
        for v in values:
            # element types are collected in C; a bool or null must never reach Arrow (it casts)
            if v is not None and (type(v) is not list or not set(map(type, v)) <= _NUMBER_TYPES):
                raise _Fallback
    elif name == "ts":
        values = [_ts(v) for v in values]
    return pa.array(values, type=ARROW_SCHEMA.field(name).type)


def fast_table(records: Sequence[Mapping[str, Any]]) -> pa.Table | None:
    """The records as an Arrow table with :data:`ARROW_SCHEMA`, or ``None`` to use the slow path."""
    for rec in records:
        keys = rec.keys()
        if not keys <= _ALLOWED or not keys >= _REQUIRED:
            return None
    try:
        arrays = [_column(f.name, [r.get(f.name) for r in records]) for f in ARROW_SCHEMA]
        for name in REQUIRED_FIELDS:
            if arrays[ARROW_SCHEMA.get_field_index(name)].null_count:
                return None
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
    except (_Fallback, pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
