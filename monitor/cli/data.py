"""``shiftwatch ingest`` and ``shiftwatch export``: move records in and out of the store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from monitor.recordfile import read_records
from monitor.store import Store

__all__ = ["register"]

DB_OPTION = typer.Option(Path("shiftwatch.duckdb"), "--db", help="DuckDB file.",
                         envvar="SHIFTWATCH_DB_PATH")


def ingest(
    file: Path = typer.Argument(..., help="Parquet file/directory or JSON Lines file of records."),
    db: Path = DB_OPTION,
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Write the good rows and list the bad ones instead of failing."
    ),
) -> None:
    """Import prediction records (DESIGN §3 fields) into the store.

    Re-sent event_ids are counted as duplicates, never stored twice. Without --skip-bad, one bad
    record rejects the whole file: exit code 2 and a one-line error naming file, row and field.
    """
    with Store(db) as store:
        table, rejected = read_records(file, skip_bad=skip_bad, embedding_dims=store.embedding_dims())
        result = store.insert_predictions(table, skip_bad=skip_bad, source=str(file),
                                          validated=True)
    for err in [*rejected, *result.rejected]:
        typer.echo(f"skipped: {file}: {err}", err=True)
    typer.echo(f"ingested {result.accepted} records into {db} "
               f"({result.duplicates} duplicates, {len(rejected) + len(result.rejected)} skipped)")


def export(
    out: Path = typer.Option(..., "--out", help="Root directory of the Parquet dataset."),
    db: Path = DB_OPTION,
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    start: datetime | None = typer.Option(None, "--start", help="From this time (UTC)."),
    end: datetime | None = typer.Option(None, "--end", help="Up to this time (UTC), exclusive."),
) -> None:
    """Export records to Parquet partitioned by model_name/model_version/date (Hive layout).

    The result reads back with `shiftwatch ingest DIR` or DuckDB/Spark over the same files.
    """
    with Store(db) as store:
        n = store.export_parquet(out, model_name=model, start=start, end=end)
    typer.echo(f"exported {n} records to {out}")


def register(app: typer.Typer) -> None:
    """Add the data commands to the CLI."""
    app.command("ingest")(ingest)
    app.command("export")(export)
