"""Named SQL: migrations from ``sql/schema/NNN_*.sql``, queries from ``sql/queries/*.sql``.

A query file holds blocks that each start with ``-- name: NAME`` followed by
an optional one-line ``--`` purpose and exactly one statement with DuckDB
``$param`` parameters. Loading fails fast on a missing directory, a block
without a name, a duplicate name or an empty body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from monitor.errors import StoreError

__all__ = ["Migration", "load_migrations", "load_queries", "sql_dir"]

_NAME = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
_MIGRATION = re.compile(r"^(\d{3})_([A-Za-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema migration file."""

    version: int
    name: str
    sql: str


def sql_dir() -> Path:
    """The ``sql/`` directory: inside the installed wheel, else the source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "schema").is_dir():
            return candidate
    raise StoreError(f"sql/ directory not found next to {here}")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migrations, ordered by their three-digit number."""
    schema = (directory or sql_dir()) / "schema"
    out: list[Migration] = []
    for path in sorted(schema.glob("*.sql")):
        m = _MIGRATION.match(path.name)
        if not m:
            raise StoreError(f"{path}: migration files are named NNN_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise StoreError(f"{schema}: two migrations share a number: {versions}")
    if not out:
        raise StoreError(f"{schema}: no migrations found")
    return out


def parse_queries(text: str, origin: str) -> dict[str, str]:
    """Split one query file into {name: statement}."""
    queries: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []

    def close() -> None:
        if name is None:
            if any(line.strip() and not line.strip().startswith("--") for line in body):
                raise StoreError(f"{origin}: SQL before the first '-- name:' header")
            return
        sql = "\n".join(line for line in body if not line.strip().startswith("--")).strip()
        if not sql:
            raise StoreError(f"{origin}: query '{name}' has no statement")
        if sql.rstrip(";").count(";"):
            raise StoreError(f"{origin}: query '{name}' holds more than one statement")
        queries[name] = sql.rstrip(";").strip()

    for line in text.splitlines():
        m = _NAME.match(line.strip())
        if m:
            close()
            name, body = m.group(1), []
            if name in queries:
                raise StoreError(f"{origin}: query '{name}' is defined twice")
        else:
            body.append(line)
    close()
    return queries


@cache
def load_queries(directory: Path | None = None) -> dict[str, str]:
    """Every named query of ``sql/queries/*.sql``; names are unique across files."""
    qdir = (directory or sql_dir()) / "queries"
    if not qdir.is_dir():
        raise StoreError(f"{qdir}: query directory not found")
    out: dict[str, str] = {}
    for path in sorted(qdir.glob("*.sql")):
        for name, sql in parse_queries(path.read_text(encoding="utf-8"), str(path)).items():
            if name in out:
                raise StoreError(f"{path}: query '{name}' is also defined in another file")
            out[name] = sql
    return out
