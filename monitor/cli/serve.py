"""``shiftwatch serve``: run the sidecar (HTTP API + scheduler) with uvicorn.

The process runs with umask 077: the DuckDB file, its WAL, reports and spools it creates are
readable by its own user only. Auth is on unless ``--no-auth`` (or ``SHIFTWATCH_AUTH=off``); a
missing or empty token is a startup error (exit 2).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

__all__ = ["register"]


def serve(
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
    db: Path | None = typer.Option(None, "--db", help="DuckDB file (overrides the config)."),
    host: str | None = typer.Option(None, "--host", help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default 8686)."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler",
                                      help="Serve the API only; run no drift/report jobs."),
    no_auth: bool = typer.Option(False, "--no-auth",
                                 help="Serve without a bearer token (logged as a warning)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Run the sidecar: ingest API, /metrics, /reports, the scheduled drift jobs and background retrains.

    While it runs, it owns the DuckDB file; other shiftwatch commands on this host find it
    through ``<db>.sidecar.json`` and call its API instead of opening the file.
    """
    import uvicorn

    from monitor.httpserver import uvicorn_config
    from monitor.server import create_app
    from monitor.settings import load_settings

    os.umask(0o077)  # files this process creates: owner only (DB, WAL, reports, spools)
    settings = load_settings(config, db_path=db, host=host, port=port,
                             auth="off" if no_auth else None)
    # the CLI on this host finds the sidecar through <db>.sidecar.json (monitor.discovery)
    local = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://[{local}]:{settings.port}" if ":" in local else f"http://{local}:{settings.port}"
    app = create_app(settings, start_scheduler=not no_scheduler, discovery_url=url)
    uvicorn.Server(uvicorn_config(app, settings, log_level=log_level)).run()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the CLI."""
    app.command("serve")(serve)
