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
    from monitor.errors import ConfigError
    from monitor.store import Store
    from reports.render import render_all, render_index, render_run, render_timeline

    if not db.exists():
        raise ConfigError(f"{db}: no such DuckDB file")
    with Store(db) as store:
        if run is not None:
            path = render_run(store, run, out)
            from reports.history import load_run

            render_timeline(store, str(load_run(store, run)["model_name"]), out)
            index = render_index(store, out)
            typer.echo(f"report: {path}")
        else:
            index = render_all(store, out, model_name=model)
    typer.echo(f"index: {index}")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the CLI."""
    app.command("report")(report)
