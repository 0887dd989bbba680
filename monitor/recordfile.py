"""Read prediction records from Parquet or JSON Lines files.

Errors name the file, the row (for JSON Lines: the 1-based line number) and
the field. Reading validates everything before returning, so a caller never
acts on half a file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from collectors.schema import records_to_table, validate_table
from monitor.errors import RecordError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    from monitor.store import Store

log = logging.getLogger("shiftwatch.recordfile")

__all__ = ["DropIngest", "ingest_drop_files", "read_jsonl", "read_records", "write_jsonl"]

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Parse a JSON Lines file into records and their 1-based line numbers."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        with path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SchemaError([RecordError(lineno, "<json>", f"invalid JSON: {exc.msg}")],
                                      source=str(path)) from exc
                records.append(obj)
                lines.append(lineno)
    except UnicodeDecodeError as exc:
        raise SchemaError([RecordError(0, "<file>", f"not UTF-8: {exc.reason}")],
                          source=str(path)) from exc
    return records, lines


def read_records(
    path: str | Path,
    *,
    skip_bad: bool = False,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[pa.Table, list[RecordError]]:
    """Read and validate a Parquet or JSON Lines file of prediction records."""
    p = Path(path)
    if not p.exists():
        raise SchemaError([RecordError(0, "<file>", "file not found")], source=str(p))
    if p.suffix.lower() in _JSONL_SUFFIXES:
        records, lines = read_jsonl(p)
        if not records:
            raise SchemaError([RecordError(0, "<file>", "no records")], source=str(p))
        return records_to_table(records, skip_bad=skip_bad, source=str(p), row_numbers=lines,
                                embedding_dims=embedding_dims)
    if p.suffix.lower() in {".parquet", ".pq"} or p.is_dir():
        try:
            table = pq.read_table(p)
        except (OSError, pa.ArrowException) as exc:
            raise SchemaError([RecordError(0, "<file>", f"not readable as Parquet: {exc}")],
                              source=str(p)) from exc
        if table.num_rows == 0:
            raise SchemaError([RecordError(0, "<file>", "no records")], source=str(p))
        if "date" in table.column_names:  # the hive partition column of our own exports
            table = table.drop_columns(["date"])
        for extra in ("ingested_at",):
            if extra in table.column_names:
                table = table.drop_columns([extra])
        return validate_table(table, skip_bad=skip_bad, source=str(p),
                              embedding_dims=embedding_dims)
    raise SchemaError([RecordError(0, "<file>", "expected a .parquet or .jsonl file")],
                      source=str(p))


def write_jsonl(path: str | Path, table: pa.Table) -> None:
    """Write an Arrow table of records as JSON Lines (timestamps as ISO 8601)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row, default=lambda v: v.isoformat()) + "\n")
    tmp.replace(p)


@dataclass(frozen=True, slots=True)
class DropIngest:
    """What one pass over a drop directory did."""

    files: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: tuple[str, ...] = field(default_factory=tuple)  # files moved to ``failed/``


def ingest_drop_files(store: Store, directory: str | Path, *, keep: bool = False) -> DropIngest:
    """Ingest the Parquet drop files of :class:`collectors.sinks.ParquetSink`, oldest first.

    Only complete ``*.parquet`` files are read (writers rename ``.tmp`` files
    into place). A file is deleted after its records are committed (moved to
    ``done/`` with ``keep=True``); a crash in between only re-reads it, and
    event_id dedupe makes that harmless. Bad rows are skipped and counted; an
    unreadable file is moved to ``failed/`` so it cannot block the others.
    """
    root = Path(directory)
    if not root.is_dir():
        return DropIngest()
    files = accepted = duplicates = skipped = 0
    failed: list[str] = []
    for path in sorted(root.glob("*.parquet")):
        try:
            table, bad = read_records(path, skip_bad=True, embedding_dims=store.embedding_dims())
            result = store.insert_predictions(table, skip_bad=True, source=str(path))
        except SchemaError as exc:
            log.warning("drop file %s rejected: %s", path, exc)
            (root / "failed").mkdir(exist_ok=True)
            path.replace(root / "failed" / path.name)
            failed.append(str(path))
            continue
        files += 1
        accepted += result.accepted
        duplicates += result.duplicates
        skipped += len(bad) + len(result.rejected)
        if keep:
            (root / "done").mkdir(exist_ok=True)
            path.replace(root / "done" / path.name)
        else:
            path.unlink(missing_ok=True)
    return DropIngest(files, accepted, duplicates, skipped, tuple(failed))
