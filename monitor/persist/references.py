"""Named reference sets, tied to a model version, stored in DuckDB.

A reference set is a copy of prediction records (``reference_rows``) under a
name (``reference_sets``). It is built from a file, from a window of stored
predictions, or by the retrain service after a promotion.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from collectors.schema import ARROW_SCHEMA
from monitor.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from monitor.store import Store

__all__ = ["create_reference", "list_references", "load_reference", "reference_for"]


def _conform(table: pa.Table, model_name: str, model_version: str) -> pa.Table:
    """Cast to the record schema; fill absent optional columns with nulls and
    absent identity columns (event_id, ts, model_name, model_version) with defaults."""
    n = table.num_rows
    cols: list[pa.Array | pa.ChunkedArray] = []
    for f in ARROW_SCHEMA:
        if f.name in table.column_names:
            try:
                cols.append(table[f.name].cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ConfigError(f"reference column '{f.name}': cannot convert to {f.type}: {exc}") from exc
        elif f.name == "event_id":
            cols.append(pa.array([uuid.uuid4().hex for _ in range(n)], type=f.type))
        elif f.name == "ts":
            cols.append(pa.array([datetime.now(UTC)] * n, type=f.type))
        elif f.name == "model_name":
            cols.append(pa.array([model_name] * n, type=f.type))
        elif f.name == "model_version":
            cols.append(pa.array([model_version] * n, type=f.type))
        elif not f.nullable:
            raise ConfigError(f"reference rows lack the required column '{f.name}'")
        else:
            cols.append(pa.nulls(n, type=f.type))
    return pa.Table.from_arrays(cols, schema=ARROW_SCHEMA)


def create_reference(
    store: Store,
    name: str,
    table: pa.Table,
    *,
    model_name: str,
    model_version: str,
    origin: str | None = None,
    replace: bool = False,
) -> int:
    """Store ``table``'s records as reference set ``name``; return its row count.

    Raises :class:`ConfigError` if the name exists (unless ``replace``) or the
    table is empty.
    """
    if not name:
        raise ConfigError("a reference set needs a name")
    if table.num_rows == 0:
        raise ConfigError(f"reference set '{name}': no rows")
    rows = _conform(table, model_name, model_version)
    with store.transaction():
        if store.execute("drift_reference_set", {"name": name}):
            if not replace:
                raise ConfigError(f"reference set '{name}' already exists")
            store.execute("drift_delete_reference_rows", {"name": name})
            store.execute("drift_delete_reference_set", {"name": name})
        store.execute("drift_insert_reference_set",
                      {"name": name, "model_name": model_name, "model_version": model_version,
                       "origin": origin, "n_rows": rows.num_rows})
        with store.registered("_reference_rows", rows):
            store.execute("drift_insert_reference_rows", {"name": name})
    return int(rows.num_rows)


def load_reference(store: Store, name: str) -> pa.Table:
    """The records of reference set ``name``; :class:`ConfigError` if there is none."""
    if not store.execute("drift_reference_set", {"name": name}):
        raise ConfigError(f"no reference set named '{name}'")
    return store.fetch_arrow("drift_reference_rows", {"name": name})


def reference_for(store: Store, model_name: str, model_version: str) -> str | None:
    """The newest reference set of a model version, else of its nearest registered ancestor, or ``None``.

    A version promoted without a reference of its own (``shiftwatch promote``
    skips the guard and builds none) is checked against the reference of the
    version it came from: the performance it has to keep. That is what lets
    the ``rollback-after-promotion`` rule fire after a forced bad promotion.
    """
    version: str | None = model_version
    seen: set[str] = set()
    while version is not None and version not in seen:
        seen.add(version)
        rows = store.execute("drift_reference_for", {"model_name": model_name, "model_version": version})
        if rows:
            return str(rows[0][0])
        parent = store.execute("promotion_parent_version",
                               {"model_name": model_name, "model_version": version})
        version = str(parent[0][0]) if parent and parent[0][0] is not None else None
    return None


def list_references(store: Store, model_name: str | None = None) -> list[dict[str, Any]]:
    """Registered reference sets, newest first."""
    return store.fetch_dicts("drift_list_references", {"model_name": model_name})
