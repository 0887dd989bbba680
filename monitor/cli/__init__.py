"""The ``shiftwatch`` command line (typer). Commands call services; they hold no logic.

Each command group lives in its own module with a ``register(app)`` function.
Errors from shiftwatch become a one-line message and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from monitor import __version__
from monitor.errors import ShiftwatchError

__all__ = ["app", "main"]

app = typer.Typer(
    name="shiftwatch",
    help="Drift monitoring and closed-loop retraining for fine-tuned BERT text classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shiftwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Drift monitoring and closed-loop retraining for fine-tuned BERT text classifiers."""


def _register_all() -> None:
    from monitor.cli import data, demo, drift, fleet, models, ops, report, serve

    for module in (data, drift, fleet, serve, ops, report, models, demo):
        module.register(app)


def main() -> None:
    """Console-script entry point."""
    _register_all()
    try:
        app(standalone_mode=True)
    except ShiftwatchError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(2)
    except OSError as exc:  # a path the OS refuses (missing directory, permissions, /proc)
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)


def _one_line(text: str) -> str:
    return " ".join(text.split())
