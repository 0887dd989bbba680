"""``GET /reports/``: the HTML reports under ``settings.reports_dir`` (``index.html`` first)."""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

__all__ = ["reports_app"]


def reports_app(directory: Path) -> StaticFiles:
    """Static files of ``directory`` (created by the lifespan if missing); ``/`` serves index.html."""
    return StaticFiles(directory=directory, html=True, check_dir=False)
