"""Read prediction records from Parquet or JSON Lines files.

Errors name the file, the row (for JSON Lines: the 1-based line number) and
the field. Reading validates everything before returning, so a caller never
acts on half a file.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from collectors.codec import parse_json, records_to_table, validate_table
from monitor.errors import RecordError, SchemaError, ShiftwatchError

if TYPE_CHECKING:  # pragma: no cover
    from monitor.store import Store

log = logging.getLogger("shiftwatch.recordfile")

__all__ = ["DropIngest", "ingest_drop_files", "read_jsonl", "read_records", "write_jsonl"]

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


def read_jsonl(path: Path) -> tuple[list[Any], list[int]]:
    """Parse a JSON Lines file into records and their 1-based line numbers.

    Each line goes through the codec's one JSON parser (:func:`collectors.codec.parse_json`):
    bad UTF-8, bad syntax, huge numbers and deep nesting are a :class:`SchemaError` naming the
    line.
    """
    records: list[Any] = []
    lines: list[int] = []
    source = str(path)
    try:
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                records.append(parse_json(line, row=lineno, source=source))
                lines.append(lineno)
    except OSError as exc:
        raise SchemaError([RecordError(0, "<file>", f"cannot read: {exc.strerror or exc}")],
                          source=source) from exc
    return records, lines


def read_records(
    path: str | Path,
    *,
    skip_bad: bool = False,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[pa.Table, list[RecordError]]:
    """Read and validate a Parquet or JSON Lines file of prediction records."""
    p = Path(path)
    try:
        exists = p.exists()
    except OSError as exc:
        raise SchemaError([RecordError(0, "<file>", f"cannot read: {exc}")], source=str(p)) from exc
    if not exists:
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

    Only complete ``*.parquet`` files are read (writers rename ``.tmp`` files into place). A
    file is deleted after its records are committed (moved to ``done/`` with ``keep=True``); a
    crash in between only re-reads it, and event_id dedupe makes that harmless. Bad rows are
    skipped and counted. A file that fails in any way is moved to ``failed/`` with a
    ``<name>.error`` text file beside it (the one-line error), and the next file is read: one
    bad file never blocks the others, in this pass or later ones.
    """
    root = Path(directory)
    if not root.is_dir():
        return DropIngest()
    files = accepted = duplicates = skipped = 0
    failed: list[str] = []
    for path in sorted(root.glob("*.parquet")):
        try:
            table, bad = read_records(path, skip_bad=True, embedding_dims=store.embedding_dims())
            result = store.insert_predictions(table, skip_bad=True, source=str(path), validated=True)
        except Exception as exc:  # any failure: quarantine the file, go on with the next one
            _quarantine(root, path, exc)
            failed.append(str(path))
            continue
        files += 1
        accepted += result.accepted
        duplicates += result.duplicates
        skipped += len(bad) + len(result.rejected)
        try:
            if keep:
                (root / "done").mkdir(exist_ok=True)
                path.replace(root / "done" / path.name)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:  # committed; a re-read later only counts duplicates
            log.warning("drop file %s ingested but not removed: %s", path, exc)
    return DropIngest(files, accepted, duplicates, skipped, tuple(failed))


def _quarantine(root: Path, path: Path, exc: BaseException) -> None:
    """Move a failed drop file to ``failed/`` with its one-line error in ``<name>.error``."""
    if isinstance(exc, ShiftwatchError):
        message = str(exc)
    else:  # not one of ours: keep the type, and the traceback in the log
        message = f"{path}: {type(exc).__name__}: {exc}"
        log.warning("drop file %s failed:\n%s", path, "".join(traceback.format_exception(exc)))
    line = " ".join(message.split())[:2000]
    log.warning("drop file %s moved to failed/: %s", path, line)
    failed = root / "failed"
    try:
        failed.mkdir(exist_ok=True)
        (failed / (path.name + ".error")).write_text(line + "\n", encoding="utf-8")
        path.replace(failed / path.name)
    except OSError as move_exc:  # cannot even move it: leave it, but never raise into the job
        log.error("cannot move drop file %s to %s: %s", path, failed, move_exc)
