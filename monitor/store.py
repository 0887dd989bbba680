"""The DuckDB store: the only module that imports duckdb.

One :class:`Store` owns one connection (DuckDB allows a single read-write
process per file). Every call takes the store's lock, so the store can be
shared by the HTTP handlers and the scheduler threads of one process.

Migrations (``sql/schema/NNN_*.sql``) are applied in order inside a
transaction and recorded in ``schema_migrations``; opening an up-to-date
store is a no-op. Named queries come from ``sql/queries/*.sql`` and are run
with DuckDB ``$param`` parameters; Arrow batches are registered as views and
inserted set-wise, never row by row.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collectors.codec import labels_to_table, records_to_table, validate_table
from collectors.spool import private_dir
from monitor.errors import RecordError, SchemaError, StoreError
from monitor.queries import load_migrations, load_queries

__all__ = ["MAX_EMBEDDING_DIM", "IngestResult", "Store"]

#: the largest embedding dimension that can be declared
MAX_EMBEDDING_DIM = 65_536

_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
    "applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)"
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one insert did: rows written, rows already present, rows rejected."""

    accepted: int
    duplicates: int
    rejected: tuple[RecordError, ...] = field(default_factory=tuple)


class Store:
    """A DuckDB file (or ``:memory:``) with shiftwatch's schema applied.

    Use as a context manager or call :meth:`close`. ``read_only=True`` opens
    an existing file without migrating (for offline inspection while no
    sidecar holds it).
    """

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:" and not read_only:
            parent = Path(self.path).parent
            try:
                if not parent.exists():
                    private_dir(parent)  # a directory we create is 0700
            except OSError as exc:
                raise StoreError(f"cannot create the directory of {self.path}: {exc}") from exc
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open DuckDB file {self.path}: {exc}") from exc
        if not read_only:
            self._restrict_files()
        self._lock = threading.RLock()
        self._queries = load_queries()
        if not read_only:
            self.migrate()

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint and close the connection."""
        with self._lock:
            try:
                self._con.close()
            except duckdb.Error as exc:  # pragma: no cover - closing rarely fails
                raise StoreError(f"cannot close {self.path}: {exc}") from exc

    def _restrict_files(self) -> None:
        """Make the DB file and its WAL 0600 (they hold prediction records). ``shiftwatch
        serve`` also runs with umask 077, so a WAL DuckDB creates later is 0600 too."""
        if self.path == ":memory:":
            return
        for f in (Path(self.path), Path(self.path + ".wal")):
            with suppress(OSError):
                if f.exists() and f.stat().st_mode & 0o077:
                    os.chmod(f, 0o600)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[int]:
        """Apply pending migrations in order; return the versions applied now."""
        applied: list[int] = []
        with self._lock:
            try:
                self._con.execute(_MIGRATIONS_TABLE)
                rows = self._con.execute("SELECT version FROM schema_migrations").fetchall()
                done = {int(r[0]) for r in rows}
                for mig in load_migrations():
                    if mig.version in done:
                        continue
                    self._con.execute("BEGIN TRANSACTION")
                    try:
                        self._con.execute(mig.sql)
                        self._con.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($v, $n)",
                            {"v": mig.version, "n": mig.name},
                        )
                        self._con.execute("COMMIT")
                    except duckdb.Error:
                        self._con.execute("ROLLBACK")
                        raise
                    applied.append(mig.version)
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: migration failed: {exc}") from exc
        return applied

    def schema_versions(self) -> list[int]:
        """Versions recorded in ``schema_migrations``."""
        return [int(r[0]) for r in self.fetchall_sql("SELECT version FROM schema_migrations ORDER BY 1")]

    # -- generic access -------------------------------------------------------------
    def sql(self, name: str) -> str:
        """The text of a named query."""
        try:
            return self._queries[name]
        except KeyError as exc:
            raise StoreError(f"no named query '{name}' in sql/queries") from exc

    def execute(self, name: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a named query and return its rows (empty for statements without output)."""
        return self.fetchall_sql(self.sql(name), params)

    def fetch_arrow(self, name: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a named query and return its result as an Arrow table."""
        with self._lock:
            try:
                rel = self._con.sql(self.sql(name), params=dict(params or {}))
                if rel is None:
                    raise StoreError(f"query '{name}' returns no rows")
                return rel.to_arrow_table()
            except duckdb.Error as exc:
                raise StoreError(f"query '{name}' failed: {exc}") from exc

    def fetch_dicts(self, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a named query and return its rows as dictionaries."""
        return list(self.fetch_arrow(name, params).to_pylist())

    def fetchall_sql(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a fixed SQL statement (no values formatted into it) and return its rows."""
        with self._lock:
            try:
                cur = self._con.execute(sql, dict(params or {}))
                return cur.fetchall() if cur.description else []
            except duckdb.Error as exc:
                raise StoreError(f"statement failed: {exc}") from exc

    def executemany_sql(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one fixed statement once per parameter row (row by row: for small writes and
        benchmark baselines; bulk data goes through :meth:`registered` and set-wise SQL)."""
        with self._lock:
            try:
                self._con.executemany(sql, [list(r) for r in rows])
            except duckdb.Error as exc:
                raise StoreError(f"statement failed: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Run several calls atomically: all commit or none do."""
        with self._lock:
            try:
                self._con.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                raise StoreError(f"cannot begin a transaction: {exc}") from exc
            try:
                yield self
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            else:
                try:
                    self._con.execute("COMMIT")
                except duckdb.Error as exc:
                    raise StoreError(f"commit failed: {exc}") from exc

    @contextmanager
    def registered(self, view: str, table: pa.Table) -> Iterator[None]:
        """Expose an Arrow table to SQL as ``view`` for the duration of the block."""
        with self._lock:
            self._con.register(view, table)
            try:
                yield
            finally:
                self._con.unregister(view)

    # -- predictions ---------------------------------------------------------------
    def embedding_dims(self) -> dict[tuple[str, str], int]:
        """The embedding dimension fixed for each (model_name, model_version)."""
        return {(r[0], r[1]): int(r[2]) for r in self.execute("known_embedding_dims")}

    def embedding_dim(self, model_name: str, model_version: str) -> dict[str, Any] | None:
        """``{model_name, model_version, dim, origin, set_at}`` of one version, or ``None``."""
        rows = self.fetch_dicts("embedding_dim_get",
                                {"model_name": model_name, "model_version": model_version})
        return rows[0] if rows else None

    def declare_embedding_dim(
        self, model_name: str, model_version: str, dim: int, *, origin: str = "declared"
    ) -> None:
        """Fix the embedding dimension of a model version (replacing any known one).

        Records already stored are not touched; from now on records of that version with
        another dimension are refused.
        """
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_EMBEDDING_DIM:
            raise SchemaError([RecordError(0, "dim", f"must be an integer in [1, {MAX_EMBEDDING_DIM}]")])
        # one statement: atomic on its own, and usable inside a caller's transaction
        self.execute("embedding_dim_declare", {"model_name": model_name,
                                               "model_version": model_version, "dim": dim,
                                               "origin": origin})

    def reset_embedding_dim(self, model_name: str, model_version: str) -> int | None:
        """Forget the embedding dimension of a model version (the next accepted record fixes
        it again); return the dimension it had, or ``None`` when none was known."""
        rows = self.execute("embedding_dim_reset",
                            {"model_name": model_name, "model_version": model_version})
        return int(rows[0][0]) if rows else None

    def insert_predictions(
        self,
        records: pa.Table | Iterable[Mapping[str, Any]],
        *,
        skip_bad: bool = False,
        source: str | None = None,
        first_row: int = 0,
        validated: bool = False,
    ) -> IngestResult:
        """Validate and insert prediction records in one transaction.

        ``records`` is an Arrow table (e.g. read from Parquet) or an iterable
        of mappings (JSON). Any bad record raises :class:`SchemaError` naming
        row and field, and nothing is written — unless ``skip_bad`` is set,
        in which case the good rows are written and the bad ones returned in
        ``rejected``. Re-sent ``event_id`` values are counted as duplicates
        and never stored twice. ``validated=True`` says ``records`` is a table the codec
        just returned (checked against this store's embedding dimensions): it is not checked
        twice.
        """
        with self._lock:
            dims = self.embedding_dims()
            rejected: list[RecordError]
            if validated and isinstance(records, pa.Table):
                table, rejected = records, []
            elif isinstance(records, pa.Table):
                table, rejected = validate_table(
                    records, skip_bad=skip_bad, source=source, first_row=first_row,
                    embedding_dims=dims,
                )
            else:
                table, rejected = records_to_table(
                    records, skip_bad=skip_bad, source=source, first_row=first_row,
                    embedding_dims=dims,
                )
            n_valid = table.num_rows
            if n_valid == 0:
                return IngestResult(0, 0, tuple(rejected))
            table = _dedupe_ids(table)
            new_dims = _new_dims(table, dims)
            span = pc.min_max(table["ts"]).as_py()
            try:
                inserted = self._insert_batch(table, new_dims, "insert_predictions",
                                              {"ts_min": span["min"], "ts_max": span["max"]})
            except _KeyConflict:
                # A re-sent event_id with a different ts slipped past the ts-bounded anti-join:
                # the PRIMARY KEY refused the whole batch; redo it on the slow, exact path.
                inserted = self._insert_batch(table, new_dims, "predictions_insert_or_ignore", None)
        return IngestResult(inserted, n_valid - inserted, tuple(rejected))

    def _insert_batch(
        self, table: pa.Table, new_dims: pa.Table, query: str, params: Mapping[str, Any] | None
    ) -> int:
        """Insert a validated, in-batch-unique batch and new embedding dims in one transaction."""
        try:
            # register outside the transaction: a failed statement aborts it, and the views
            # must be unregistered only after the ROLLBACK
            with self.registered("_batch", table), self.registered("_dims", new_dims), \
                    self.transaction():
                cur = self._con.execute(self.sql(query), dict(params or {}))
                inserted = _count(cur.fetchall())
                if new_dims.num_rows:
                    self.execute("record_embedding_dims")
        except duckdb.ConstraintException as exc:
            raise _KeyConflict(str(exc)) from exc
        except duckdb.Error as exc:
            raise StoreError(f"insert into predictions failed: {exc}") from exc
        return inserted

    def insert_labels(
        self, labels: Sequence[Mapping[str, Any]], *, source: str | None = None
    ) -> int:
        """Upsert delayed ground truth ``(event_id, label, labeled_at, source)``; return the count.

        Items follow :func:`collectors.codec.labels_to_table` (``labeled_at`` by the timestamp
        rule of predictions, one event_id at most once per batch); any bad item raises
        :class:`SchemaError` naming row and field, and nothing is written.
        """
        table = labels_to_table(labels, source=source)
        with self.transaction(), self.registered("_labels", table):
            self.execute("upsert_labels")
        return int(table.num_rows)

    def read_window(
        self,
        model_name: str,
        *,
        model_version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        last_n: int | None = None,
    ) -> pa.Table:
        """Records of one model, by time range ``[start, end)`` or the newest ``last_n``.

        Delayed labels replace the logged ``label`` where present.
        """
        params: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                                  "end": end}
        if last_n is not None:
            if start is not None:
                raise StoreError("read_window: give start/end or last_n, not both")
            return self.fetch_arrow("read_last_n", {**params, "n": int(last_n)})
        return self.fetch_arrow("read_window", {**params, "start": start})

    def count_predictions(self) -> int:
        """Number of stored prediction records."""
        return _count(self.execute("count_predictions"))

    def export_parquet(
        self,
        out_dir: str | Path,
        *,
        model_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Write records in ``[start, end)`` to Parquet under
        ``out_dir/model_name=…/model_version=…/date=…/``; return the row count.

        Files are written to a temporary directory and moved into place, so a
        failed export leaves no partial partition behind.
        """
        table = self.fetch_arrow("export_window", {"model_name": model_name, "start": start,
                                                   "end": end})
        if table.num_rows == 0:
            return 0
        out = Path(out_dir)
        tmp = out.with_name(out.name + ".partial")
        try:
            pq.write_to_dataset(
                table, root_path=str(tmp),
                partition_cols=["model_name", "model_version", "date"],
                basename_template="part-{{i}}-{}.parquet".format(
                    datetime.now().strftime("%Y%m%dT%H%M%S%f")),
            )
            for f in tmp.rglob("*.parquet"):
                dest = out / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                f.replace(dest)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise StoreError(f"export to {out} failed: {exc}") from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return int(table.num_rows)

    def delete_before(self, end: datetime, *, model_name: str | None = None) -> None:
        """Delete prediction records older than ``end``."""
        with self.transaction():
            self.execute("delete_window", {"model_name": model_name, "end": end})

    def archive_before(
        self, out_dir: str | Path, end: datetime, *, model_name: str | None = None
    ) -> int:
        """Export records older than ``end`` to Parquet, then delete exactly those.

        The store lock is held across both steps, so a record that arrives in
        between (with an old timestamp) can neither be deleted unexported nor
        exported twice. Returns the number of records archived.
        """
        with self._lock:
            n = self.export_parquet(out_dir, model_name=model_name, end=end)
            if n:
                self.delete_before(end, model_name=model_name)
        return n


class _KeyConflict(Exception):
    """The fast insert path hit the predictions PRIMARY KEY (nothing was written)."""


def _count(rows: list[tuple[Any, ...]]) -> int:
    return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else 0


def _dedupe_ids(table: pa.Table, keep: str = "first") -> pa.Table:
    """Drop rows whose event_id repeats within the batch."""
    ids = table["event_id"]
    if len(pc.unique(ids)) == table.num_rows:
        return table
    indexed = table.select(["event_id"]).append_column("_i", pa.array(range(table.num_rows)))
    agg = "min" if keep == "first" else "max"
    picked = indexed.group_by("event_id").aggregate([("_i", agg)])[f"_i_{agg}"]
    return table.take(pa.array(np.sort(picked.to_numpy())))


def _new_dims(table: pa.Table, known: Mapping[tuple[str, str], int]) -> pa.Table:
    """(model_name, model_version, dim) of model versions not yet in ``known``."""
    lengths = pc.list_value_length(table["embedding"])
    sub = table.select(["model_name", "model_version"]).append_column("dim", lengths)
    sub = sub.filter(pc.is_valid(sub["dim"]))
    if sub.num_rows == 0:
        return sub
    firsts = sub.group_by(["model_name", "model_version"]).aggregate([("dim", "max")])
    rows = [r for r in firsts.to_pylist() if (r["model_name"], r["model_version"]) not in known]
    return pa.table(
        {"model_name": [r["model_name"] for r in rows],
         "model_version": [r["model_version"] for r in rows],
         "dim": pa.array([r["dim_max"] for r in rows], type=pa.int32())}
    )
