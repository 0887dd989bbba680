"""Where a CLI command runs: on the running sidecar (over HTTP) or on the DuckDB file itself.

:func:`open_backend` gives a :class:`SidecarBackend` when a sidecar holds the DB
(:func:`monitor.discovery.find_sidecar`: ``SHIFTWATCH_URL``, else a live discovery file beside
the DB), else a :class:`LocalBackend` that opens the file. Both run the same
:mod:`monitor.operations` functions — by name, with the same keyword arguments — and return
the same JSON values, so a command prints the same thing either way.

A file locked by another process with no sidecar to be found is a one-line error naming the
file and what to do, never a DuckDB lock traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import typer

from monitor import operations
from monitor.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from monitor.client import SidecarClient
    from monitor.settings import Settings

__all__ = ["Backend", "LocalBackend", "SidecarBackend", "open_backend"]


class Backend(Protocol):
    """Runs one operation of :mod:`monitor.operations` by name."""

    settings: Settings
    remote: bool

    def call(self, op: str, **kwargs: Any) -> Any:
        """The JSON result of operation ``op`` (``SidecarError`` / shiftwatch errors on failure)."""


class LocalBackend:
    """Opens the DuckDB file for each call (no sidecar holds it)."""

    remote = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def call(self, op: str, **kwargs: Any) -> Any:
        """Run ``monitor.operations.<op>(store, settings, **kwargs)`` on the file."""
        from monitor.registry import Registry
        from monitor.store import Store

        fn = getattr(operations, op)
        try:
            store = Store(self.settings.db_path)
        except StoreError as exc:
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"{self.settings.db_path} is held by another process and no running sidecar was "
                    f"found for it (no live {self.settings.db_path}.sidecar.json; set SHIFTWATCH_URL "
                    "and SHIFTWATCH_TOKEN to reach one)") from exc
            raise
        with store:
            for name in Registry(store, self.settings.registry_dir, settings=self.settings).recover():
                typer.echo(f"recovered: the ACTIVE pointer of {name} was rewritten from the DB", err=True)
            return fn(store, self.settings, **kwargs)


class SidecarBackend:
    """Asks the running sidecar (same operation names on :class:`~monitor.client.SidecarClient`)."""

    remote = True

    def __init__(self, settings: Settings, client: SidecarClient) -> None:
        self.settings = settings
        self.client = client

    def call(self, op: str, **kwargs: Any) -> Any:
        """Call the client method named ``op``."""
        return getattr(self.client, op)(**kwargs)


@contextmanager
def open_backend(config: Path | None = None, **overrides: Any) -> Iterator[Backend]:
    """The backend for these settings (``overrides`` as in :func:`monitor.settings.load_settings`)."""
    from monitor.discovery import find_sidecar
    from monitor.settings import load_settings

    settings = load_settings(config, **overrides)
    client = find_sidecar(settings)
    if client is None:
        yield LocalBackend(settings)
        return
    with client:
        yield SidecarBackend(settings, client)
