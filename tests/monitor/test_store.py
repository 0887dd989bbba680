"""Store: migrations, dedupe, validation errors, reads, export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.errors import SchemaError, StoreError
from monitor.queries import load_migrations
from monitor.store import Store
from tests.monitor.records import T0, record


@pytest.fixture()
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def test_migrations_in_memory_twice() -> None:
    every = [m.version for m in load_migrations()]
    with Store(":memory:") as s:
        assert s.schema_versions() == every
        assert s.migrate() == []
        assert s.schema_versions() == every


def test_migrations_on_a_file_twice(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "x.duckdb"
    with Store(db) as s:
        s.insert_predictions([record(0)])
        first = s.schema_versions()
    with Store(db) as s:
        assert s.migrate() == []
        assert s.schema_versions() == first
        assert s.count_predictions() == 1
    with Store(db, read_only=True) as s:
        assert s.count_predictions() == 1


def test_insert_and_dedupe_within_and_across_batches(store: Store) -> None:
    recs = [record(i) for i in range(10)]
    r = store.insert_predictions([*recs, recs[3]])
    assert (r.accepted, r.duplicates, r.rejected) == (10, 1, ())
    r = store.insert_predictions([*recs[5:], record(10)])
    assert (r.accepted, r.duplicates) == (1, 5)
    assert store.count_predictions() == 11


def test_resent_event_id_with_another_ts_is_still_a_duplicate(store: Store) -> None:
    store.insert_predictions([record(0)])
    moved = record(0, minutes=5000)  # same event_id, ts far outside the first one
    r = store.insert_predictions([moved, record(1)])
    assert (r.accepted, r.duplicates) == (1, 1)
    assert store.count_predictions() == 2
    stored = store.read_window("m").to_pylist()
    assert stored[0]["ts"] == T0


def test_arrow_input_is_deduped_too(store: Store) -> None:
    from collectors.schema import records_to_table

    table, _ = records_to_table([record(i) for i in range(5)])
    assert store.insert_predictions(table).accepted == 5
    assert store.insert_predictions(pa.concat_tables([table, table])).duplicates == 10


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"confidence": float("nan")}, "confidence"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"model_name": None}, "model_name"),
        ({"ts": "yesterday"}, "ts"),
        ({"embedding": [0.1, 0.2]}, "embedding"),
        ({"probs": [0.2, float("inf")]}, "probs"),
        ({"n_tokens": 1.5}, "n_tokens"),
        ({"truncated": "no"}, "truncated"),
        ({"wat": 1}, "wat"),
    ],
)
def test_bad_record_names_field_and_row_and_writes_nothing(store: Store, bad: dict, field: str) -> None:
    recs = [record(i) for i in range(5)]
    recs[3] = {**recs[3], **bad}
    with pytest.raises(SchemaError) as info:
        store.insert_predictions(recs, source="batch.jsonl")
    err = info.value.errors[0]
    assert (err.row, err.field) == (3, field)
    assert "row 3" in str(info.value) and field in str(info.value) and "batch.jsonl" in str(info.value)
    assert store.count_predictions() == 0


def test_missing_required_field_is_named(store: Store) -> None:
    rec = record(0)
    del rec["predicted_label"]
    with pytest.raises(SchemaError, match="row 1: field predicted_label"):
        store.insert_predictions([record(5), rec])
    assert store.count_predictions() == 0


def test_embedding_dimension_is_fixed_per_model_version(store: Store) -> None:
    store.insert_predictions([record(0, dim=4)])
    assert store.embedding_dims() == {("m", "v1"): 4}
    with pytest.raises(SchemaError, match="dimension 8 differs from 4"):
        store.insert_predictions([record(1, dim=8)])
    assert store.insert_predictions([record(2, dim=8, version="v2")]).accepted == 1
    assert store.embedding_dims()[("m", "v2")] == 8


def test_skip_bad_reports_skipped_rows(store: Store) -> None:
    recs = [record(i) for i in range(6)]
    recs[1]["confidence"] = -0.1
    recs[4]["embedding"] = [float("nan")] * 4
    r = store.insert_predictions(recs, skip_bad=True)
    assert r.accepted == 4
    assert sorted((e.row, e.field) for e in r.rejected) == [(1, "confidence"), (4, "embedding")]
    assert store.count_predictions() == 4


def test_read_window_by_time_last_n_and_version(store: Store) -> None:
    store.insert_predictions([record(i) for i in range(10)])
    store.insert_predictions([record(i, version="v2") for i in range(10, 15)])
    assert store.read_window("m").num_rows == 15
    assert store.read_window("m", model_version="v2").num_rows == 5
    win = store.read_window("m", start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=5))
    assert [r["event_id"] for r in win.to_pylist()] == [record(i)["event_id"] for i in (2, 3, 4)]
    last = store.read_window("m", model_version="v1", last_n=3).to_pylist()
    assert [r["event_id"] for r in last] == [record(i)["event_id"] for i in (7, 8, 9)]
    assert store.read_window("other").num_rows == 0
    with pytest.raises(StoreError):
        store.read_window("m", start=T0, last_n=3)


def test_delayed_labels_are_merged(store: Store) -> None:
    store.insert_predictions([record(0, label="neg"), record(1)])
    assert store.insert_labels([{"event_id": record(1)["event_id"], "label": "pos"},
                                {"event_id": record(0)["event_id"], "label": "pos"}]) == 2
    assert store.read_window("m").column("label").to_pylist() == ["pos", "pos"]
    with pytest.raises(SchemaError, match="row 0: field label"):
        store.insert_labels([{"event_id": "x"}])


def test_export_partitions_and_reingest(tmp_path: Path, store: Store) -> None:
    from typer.testing import CliRunner

    from monitor.cli import _register_all, app

    store.insert_predictions([record(i, minutes=i * 60 * 6) for i in range(8)])  # spans two days
    store.insert_predictions([record(100, version="v2")])
    out = tmp_path / "export"
    assert store.export_parquet(out, model_name="m") == 9
    parts = sorted(str(p.parent.relative_to(out)) for p in out.rglob("*.parquet"))
    assert "model_name=m/model_version=v1/date=2026-03-01" in parts
    assert "model_name=m/model_version=v1/date=2026-03-02" in parts
    assert "model_name=m/model_version=v2/date=2026-03-01" in parts
    assert pq.read_table(out).num_rows == 9
    _register_all()
    db = tmp_path / "again.duckdb"
    res = CliRunner().invoke(app, ["ingest", str(out), "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "ingested 9 records" in res.output
    with Store(db) as again:
        assert again.read_window("m").num_rows == 9


def test_export_empty_window_writes_nothing(tmp_path: Path, store: Store) -> None:
    assert store.export_parquet(tmp_path / "e") == 0
    assert not (tmp_path / "e").exists()


def test_delete_before(store: Store) -> None:
    store.insert_predictions([record(i) for i in range(5)])
    store.delete_before(T0 + timedelta(minutes=3))
    assert store.count_predictions() == 2


def test_null_inside_an_embedding_read_from_parquet_is_rejected(store: Store) -> None:
    from collectors.schema import records_to_table

    table, _ = records_to_table([record(i) for i in range(3)])
    emb = table["embedding"].to_pylist()
    emb[1] = [0.1, None, 0.3, 0.4]
    table = table.set_column(table.schema.get_field_index("embedding"), "embedding",
                             pa.array(emb, pa.list_(pa.float32())))
    with pytest.raises(SchemaError, match="row 1: field embedding"):
        store.insert_predictions(table)


def test_no_duplicates_after_a_crash(tmp_path: Path) -> None:
    """A writer dies without closing (WAL not checkpointed); re-sending the batch adds nothing."""
    import json
    import os
    import subprocess
    import sys

    db = tmp_path / "crash.duckdb"
    batch = [record(i) for i in range(20)]
    script = (
        "import json, os, sys\n"
        "from monitor.store import Store\n"
        "s = Store(sys.argv[1])\n"
        "print(s.insert_predictions(json.loads(sys.argv[2])).accepted, flush=True)\n"
        "os._exit(1)\n"  # no close(), no checkpoint
    )
    proc = subprocess.run([sys.executable, "-c", script, str(db), json.dumps(batch[:10])],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=Path(__file__).parents[2])
    assert proc.returncode == 1 and proc.stdout.strip() == "10", proc.stderr
    with Store(db) as s:
        r = s.insert_predictions(batch)
        assert (r.accepted, r.duplicates) == (10, 10)
        assert s.count_predictions() == 20
