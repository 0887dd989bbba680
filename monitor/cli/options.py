"""Options shared by several commands: a renamed flag that keeps its old spelling for a while."""

from __future__ import annotations

import typer

__all__ = ["renamed"]


def renamed(value: str | None, old_value: str | None, *, flag: str, old_flag: str,
            required: bool = False) -> str | None:
    """The value of ``flag``, taking the deprecated ``old_flag`` spelling too.

    The old spelling stays accepted (hidden from ``--help``); using it prints one warning line on
    stderr. Giving both with different values is a usage error (exit 2), as is giving neither
    when the option is ``required``.
    """
    if old_value is not None:
        typer.echo(f"warning: {old_flag} is deprecated; use {flag}", err=True)
        if value is not None and value != old_value:
            raise typer.BadParameter(
                f"{flag} {value!r} and {old_flag} {old_value!r} differ; give {flag} only",
                param_hint=f"'{flag}'")
        value = old_value
    if value is None and required:
        raise typer.BadParameter("missing: this option is required", param_hint=f"'{flag}'")
    return value
