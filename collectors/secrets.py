"""Reading a bearer token from a file (a mounted secret), the one rule for sidecar and sinks."""

from __future__ import annotations

from pathlib import Path

from monitor.errors import ConfigError

__all__ = ["read_token_file"]


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` with surrounding whitespace (the trailing newline of a mounted
    secret) trimmed; :class:`ConfigError` when it cannot be read or is empty."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the token file: {exc}") from exc
    if not value:
        raise ConfigError(f"{path}: the token file is empty")
    return value
