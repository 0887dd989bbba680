"""Reading record files (Parquet, JSON Lines) and ingesting Parquet drop files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from collectors.schema import records_to_table
from monitor.errors import SchemaError
from monitor.recordfile import ingest_drop_files, read_records, write_jsonl
from monitor.store import Store
from tests.monitor.records import record


def _jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_jsonl_error_names_file_line_and_field(tmp_path: Path) -> None:
    recs = [record(i) for i in range(4)]
    recs[2]["confidence"] = 2.0
    f = _jsonl(tmp_path / "r.jsonl", recs)
    with pytest.raises(SchemaError) as info:
        read_records(f)
    msg = str(info.value)
    assert str(f) in msg and "row 3" in msg and "field confidence:" in msg  # row = 1-based line


def test_invalid_json_line(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(record(0)) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="row 2: field <json>"):
        read_records(f)


def test_parquet_and_jsonl_round_trip(tmp_path: Path) -> None:
    table, _ = records_to_table([record(i) for i in range(5)])
    pq.write_table(table, tmp_path / "r.parquet")
    write_jsonl(tmp_path / "r.jsonl", table)
    a, _ = read_records(tmp_path / "r.parquet")
    b, _ = read_records(tmp_path / "r.jsonl")
    assert a.equals(b) and a.num_rows == 5


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="file not found"):
        read_records(tmp_path / "nope.parquet")
    (tmp_path / "x.csv").write_text("a\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"expected a \.parquet or \.jsonl"):
        read_records(tmp_path / "x.csv")


def test_ingest_drop_files_oldest_first_and_idempotent(tmp_path: Path) -> None:
    from collectors.sinks import ParquetSink

    drop = tmp_path / "drop"
    sink = ParquetSink(drop)
    assert sink.send([record(i) for i in range(3)]) == 3
    assert sink.send([record(i) for i in range(2, 6)]) == 4  # overlaps: 2 duplicates
    (drop / "half-written.parquet.tmp").write_bytes(b"PAR1")  # a writer still busy: ignored
    (drop / "junk.parquet").write_bytes(b"not parquet")
    with Store(":memory:") as store:
        res = ingest_drop_files(store, drop)
        assert (res.files, res.accepted, res.duplicates) == (2, 6, 1)
        assert len(res.failed) == 1 and (drop / "failed" / "junk.parquet").exists()
        assert store.count_predictions() == 6
        assert sorted(p.name for p in drop.glob("*.parquet")) == []
        assert ingest_drop_files(store, drop).files == 0
