"""The sidecar's discovery file: how a CLI finds the running sidecar that holds a DuckDB file.

``shiftwatch serve`` writes ``<db>.sidecar.json`` beside the DB once the store is open —
``{"url", "pid", "started_at", "db_path"}``, mode 0600, written atomically — and removes it
on a clean shutdown. :func:`find_sidecar` answers the sidecar to talk to:

1. ``settings.url`` (``SHIFTWATCH_URL``) when set — it must answer ``/healthz``, else
   :class:`~monitor.errors.SidecarError`;
2. else the discovery file, unless it is stale: its pid is not alive, or its ``/healthz``
   does not answer within :data:`HEALTH_TIMEOUTS_S` (a busy sidecar on loaded cores can take
   more than one short try) — a stale file is ignored (a crashed sidecar leaves one behind);
3. else ``None``: no sidecar, the CLI opens the file itself.

The token is never written to the file; it comes from ``settings.token``
(``SHIFTWATCH_TOKEN``) or a token file (``SHIFTWATCH_TOKEN_FILE``), see :func:`client_token`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import SidecarError

if TYPE_CHECKING:  # pragma: no cover
    from monitor.client import SidecarClient
    from monitor.settings import Settings

__all__ = ["client_token", "discovery_path", "find_sidecar", "read_discovery", "remove_discovery",
           "write_discovery"]


#: /healthz timeouts tried in turn for a discovery file whose pid is alive (14 s in all).
HEALTH_TIMEOUTS_S = (2.0, 4.0, 8.0)


def discovery_path(db_path: str | Path) -> Path:
    """``<db>.sidecar.json`` beside the DB file."""
    p = Path(db_path)
    return p.with_name(p.name + ".sidecar.json")


def write_discovery(db_path: str | Path, url: str, *, pid: int | None = None) -> Path:
    """Write the discovery file (0600, atomically); return its path."""
    path = discovery_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"url": url, "pid": pid if pid is not None else os.getpid(),
            "started_at": datetime.now(UTC).isoformat(), "db_path": str(Path(db_path).resolve())}
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
    os.replace(tmp, path)
    return path


def remove_discovery(db_path: str | Path, *, pid: int | None = None) -> None:
    """Remove the discovery file if it is this process's (``pid``, default this one)."""
    path = discovery_path(db_path)
    info = read_discovery(db_path)
    if info is not None and int(info.get("pid", -1)) == (pid if pid is not None else os.getpid()):
        path.unlink(missing_ok=True)


def read_discovery(db_path: str | Path) -> dict[str, Any] | None:
    """The discovery file's content, or None when it is missing or unreadable."""
    try:
        data = json.loads(discovery_path(db_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def client_token(settings: Settings) -> str | None:
    """The bearer token the CLI sends: ``settings.token`` (``SHIFTWATCH_TOKEN``), else the content
    of ``settings.token_file`` (``SHIFTWATCH_TOKEN_FILE``, trimmed)."""
    from monitor.settings import read_token_file

    if settings.token is not None:
        return settings.token.get_secret_value().strip() or None
    return read_token_file(settings.token_file) if settings.token_file else None


def find_sidecar(settings: Settings) -> SidecarClient | None:
    """A client of the sidecar holding ``settings.db_path`` (see the module doc), or None."""
    from monitor.client import SidecarClient

    token = client_token(settings)
    if settings.url:
        client = SidecarClient(settings.url, token=token)
        if not client.healthy():
            client.close()
            raise SidecarError(f"the sidecar at {settings.url} (SHIFTWATCH_URL) does not answer /healthz")
        return client
    info = read_discovery(settings.db_path)
    if info is None:
        return None
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return None
    if pid <= 0 or not _alive(pid):
        return None
    client = SidecarClient(str(info["url"]), token=token)
    # The pid is alive, so the sidecar is more likely busy (a retrain on two loaded cores) than
    # gone: give /healthz a few growing chances before calling the file stale.
    for timeout_s in HEALTH_TIMEOUTS_S:
        if client.healthy(timeout_s=timeout_s):
            return client
    client.close()
    return None
