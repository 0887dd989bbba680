"""Collector telemetry in the store: serving errors and collector heartbeats.

Fields follow the record codec (:mod:`collectors.codec`): timestamps by its one rule, names
by its name rule, counters as non-negative int64. The sidecar's ``POST /v1/errors`` and
``POST /v1/heartbeat`` and the embedded
:class:`collectors.sinks.DuckDBSink` write through these two functions (tables
of migration 002). Rows are validated first; any bad row raises
:class:`~monitor.errors.SchemaError` naming row and field, and nothing is
written. Inserts are set-wise through Arrow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from collectors.codec import InvalidValue, check_int, check_name, parse_ts
from monitor.errors import RecordError, SchemaError
from monitor.store import Store

__all__ = ["ERROR_FIELDS", "HEARTBEAT_FIELDS", "insert_heartbeats", "insert_serving_errors"]

#: field -> (arrow type, required)
ERROR_FIELDS: dict[str, tuple[pa.DataType, bool]] = {
    "ts": (pa.timestamp("us", tz="UTC"), True),
    "model_name": (pa.string(), True),
    "model_version": (pa.string(), True),
    "kind": (pa.string(), True),
    "message": (pa.string(), True),
    "source": (pa.string(), False),
}
HEARTBEAT_FIELDS: dict[str, tuple[pa.DataType, bool]] = {
    "collector_id": (pa.string(), True),
    "ts": (pa.timestamp("us", tz="UTC"), True),
    "model_name": (pa.string(), False),
    "model_version": (pa.string(), False),
    "queue_depth": (pa.int64(), True),
    "queue_capacity": (pa.int64(), True),
    "dropped": (pa.int64(), True),
    "sink_failures": (pa.int64(), True),
    "spooled": (pa.int64(), True),
    "sent": (pa.int64(), True),
    "rejected": (pa.int64(), False),  # migration 085; optional for older collectors
    "evicted": (pa.int64(), False),
}
_MAX_MESSAGE = 10_000


def _value(name: str, typ: pa.DataType, value: Any) -> Any:
    """One field by the record codec's rules (timestamps, names, non-negative int64 counters)."""
    if pa.types.is_timestamp(typ):
        return parse_ts(value)
    if name == "message":
        if not isinstance(value, str):
            raise InvalidValue(f"expected a string, got {type(value).__name__}")
        return check_name(value[:_MAX_MESSAGE].replace("\x00", "\ufffd"), limit=_MAX_MESSAGE,
                          control=False)
    if pa.types.is_string(typ):
        return check_name(value, required=True)
    return check_int(value)


def _to_table(
    rows: Sequence[Mapping[str, Any]], fields: Mapping[str, tuple[pa.DataType, bool]], what: str
) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in fields}
    errors: list[RecordError] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors.append(RecordError(i, "<record>", f"expected an object, got {type(row).__name__}"))
            continue
        unknown = [k for k in row if k not in fields]
        if unknown:
            errors.append(RecordError(i, str(unknown[0]), "unknown field"))
            continue
        values: dict[str, Any] = {}
        for name, (typ, required) in fields.items():
            value = row.get(name)
            if value is None:
                if required:
                    errors.append(RecordError(i, name, "required field is missing"))
                values[name] = None
                continue
            try:
                values[name] = _value(name, typ, value)
            except InvalidValue as exc:
                errors.append(RecordError(i, name, str(exc)))
        for name in fields:
            cols[name].append(values.get(name))
    if errors:
        raise SchemaError(errors[:100], source=what)
    return pa.table({name: pa.array(cols[name], type=typ) for name, (typ, _) in fields.items()})


def insert_serving_errors(store: Store, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store serving errors ``{ts, model_name, model_version, kind, message, source?}``; return the count."""
    if not rows:
        return 0
    table = _to_table(rows, ERROR_FIELDS, "serving errors")
    with store.transaction(), store.registered("_errors", table):
        store.execute("health_insert_errors")
    return int(table.num_rows)


def insert_heartbeats(store: Store, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store collector heartbeats (shape of ``POST /v1/heartbeat``); return the count."""
    if not rows:
        return 0
    table = _to_table(rows, HEARTBEAT_FIELDS, "heartbeats")
    with store.transaction(), store.registered("_beats", table):
        store.execute("health_insert_heartbeats")
    return int(table.num_rows)
