"""``shiftwatch report``: render the HTML drift reports of a store."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def report(
    db: Path = typer.Option(..., "--db", help="DuckDB file to read drift runs from."),
    out: Path = typer.Option(..., "--out", help="Directory the HTML reports are written to."),
    model: str | None = typer.Option(None, "--model", help="Only this model's runs and timeline."),
    run: str | None = typer.Option(None, "--run", help="Render (again) only this drift run's report."),
) -> None:
    """Render per-run reports that are missing, the timelines and the index (offline HTML)."""
    from monitor.cli.backend import open_backend
    from monitor.errors import ConfigError

    if not db.exists():
        raise ConfigError(f"{db}: no such DuckDB file")
    with open_backend(db_path=db) as backend:
        result = backend.call("render_reports", out=str(out), model=model, run=run)
    if result["report"] is not None:
        typer.echo(f"report: {result['report']}")
    typer.echo(f"index: {result['index']}")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the CLI."""
    app.command("report")(report)
