"""Reading a bearer token from a file (a mounted secret) or the environment: the one rule for
sidecar, CLI, sinks and serving code (standard library only: the light install has it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from monitor.errors import ConfigError

__all__ = ["read_token_file", "resolve_token"]


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


def resolve_token(env: Mapping[str, str] | None = None) -> str | None:
    """The token a client should send: ``SHIFTWATCH_TOKEN`` (trimmed) or the content of
    ``SHIFTWATCH_TOKEN_FILE``; ``None`` when neither is set."""
    env = os.environ if env is None else env
    token = env.get("SHIFTWATCH_TOKEN")
    if token is not None and token.strip():
        return token.strip()
    path = env.get("SHIFTWATCH_TOKEN_FILE")
    return read_token_file(path) if path else None
