"""Every migration and named query loads; every query prepares against the empty schema."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.queries import load_migrations, load_queries, parse_queries, sql_dir
from monitor.store import Store

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# queries that read an Arrow batch registered by their caller (Store.registered) cannot be
# bound without it; they must fail on nothing else
_REGISTERED_VIEW = re.compile(r"Catalog Error: Table with name (_[A-Za-z0-9_]+) does not exist")


def test_every_sql_file_loads() -> None:
    root = sql_dir()
    files = sorted((root / "queries").glob("*.sql"))
    assert files and load_queries()
    names = set(load_queries())
    for f in files:
        assert set(parse_queries(f.read_text(encoding="utf-8"), str(f))) <= names
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    for m in migrations:
        assert "IF NOT EXISTS" in m.sql.upper()


@pytest.fixture(scope="module")
def empty_store() -> Iterator[Store]:
    with Store(":memory:") as store:
        yield store


def _empty_records_file() -> str:
    """An empty Parquet file with every record and partials column (planning binds names)."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from collectors.schema import ARROW_SCHEMA
    from monitor.lake.partials import PARTIAL_SCHEMA

    path = Path(tempfile.gettempdir()) / f"shiftwatch-plan-{os.getpid()}.parquet"
    if not path.exists():
        fields = list(ARROW_SCHEMA) + [f for f in PARTIAL_SCHEMA if f.name not in ARROW_SCHEMA.names]
        pq.write_table(pa.schema(fields).empty_table(), path)
    return str(path)


@pytest.mark.parametrize("name", sorted(load_queries()))
def test_every_named_query_prepares_on_an_empty_schema(name: str, empty_store: Store) -> None:
    sql = load_queries()[name]
    params: dict[str, object] = {p: None for p in _PARAM.findall(sql)}
    if "files" in params:  # file-reading queries (lake.sql) plan against a real empty file
        params["files"] = [_empty_records_file()]
    try:
        empty_store.fetchall_sql("EXPLAIN " + sql, params)  # binds and plans; changes nothing
    except StoreError as exc:
        m = _REGISTERED_VIEW.search(str(exc))
        assert m, f"{name}: {exc}"


def test_registered_view_queries_run(tmp_path: Path) -> None:
    """Our own view-backed statements run for real (see test_store / test_health for content)."""
    from monitor.health import insert_heartbeats, insert_serving_errors

    with Store(":memory:") as store:
        assert insert_serving_errors(store, []) == 0
        assert insert_heartbeats(store, []) == 0
        assert store.execute("health_latest_heartbeats") == []
        assert store.execute("health_recent_errors", {"model_name": None, "n": 5}) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1;", "before the first"),
        ("-- name: a\n-- purpose\n", "has no statement"),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "defined twice"),
        ("-- name: a\nSELECT 1; SELECT 2;", "more than one statement"),
    ],
)
def test_malformed_query_files_fail_fast(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_queries(text, "x.sql")


def test_migration_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "1_bad.sql").write_text("SELECT 1", encoding="utf-8")
    with pytest.raises(StoreError, match=r"NNN_name\.sql"):
        load_migrations(tmp_path)
