"""Issue 13's file reproductions: every bad file is one line ``error: FILE: row N: field F: reason``
with exit 2, and a bad drop file goes to ``failed/`` without blocking later ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collectors.codec import records_to_table
from monitor import recordfile
from monitor.cli import _register_all, main
from monitor.recordfile import ingest_drop_files
from monitor.store import Store
from tests.monitor.records import record

EPOCH_NS = 1_764_547_200_000_000_000  # 2025-12-01T00:00:00Z


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    _register_all()
    monkeypatch.setattr(sys, "argv", ["shiftwatch", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def _lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _good_line(i: int, **over: Any) -> str:
    return json.dumps(record(i, **over))


@pytest.mark.parametrize(("line", "row", "field"), [
    ('{"event_id": "x", "n_tokens": ' + "9" * 5000 + "}", 2, "<json>"),
    ("[" * 100_000 + "]" * 100_000, 2, "<json>"),
    ('{"event_id": "\\ud800"}', 2, "<json>"),
    (None, 2, "n_tokens"),  # a 40-digit integer that parses: refused naming its field
    (None, 2, "model_name"),  # 1,000,000 characters
    (None, 2, "event_id"),  # a NUL byte
])
def test_bad_jsonl_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, line: str | None, row: int, field: str) -> None:
    if line is None:
        bad = {"n_tokens": {"n_tokens": 10**40}, "model_name": {"model_name": "m" * 1_000_000},
               "event_id": {"event_id": "a\x00b"}}[field]
        line = _good_line(1, **bad)
    f = _lines(tmp_path / "bad.jsonl", _good_line(0), line)
    code, err = _cli(monkeypatch, capsys, "ingest", str(f), "--db", str(tmp_path / "x.duckdb"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err[:500]
    assert err.startswith(f"error: {f}: row {row}: field {field}: "), err[:300]
    assert len(err) < 1000
    code, err = _cli(monkeypatch, capsys, "drift", "--reference", str(f), "--current", str(f))
    assert code == 2 and err.startswith(f"error: {f}: row {row}: field {field}: "), err[:300]


def test_epoch_ns_ts_in_jsonl_is_read_as_ns(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = _lines(tmp_path / "ns.jsonl", _good_line(0, ts=EPOCH_NS), _good_line(1, ts=EPOCH_NS // 1000))
    db = tmp_path / "x.duckdb"
    code, _ = _cli(monkeypatch, capsys, "ingest", str(f), "--db", str(db))
    assert code == 0
    with Store(db) as store:
        years = store.fetchall_sql("SELECT DISTINCT year(timezone('UTC', ts)) FROM predictions")
    assert years == [(2025,)]


def _parquet(path: Path, ts: pa.Array) -> Path:
    table, _ = records_to_table([record(i) for i in range(len(ts))])
    pq.write_table(table.set_column(1, "ts", ts), path)
    return path


@pytest.mark.parametrize(("ts", "stored"), [
    (pa.array(["2025-12-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]), None),
    (pa.array([EPOCH_NS, 5 * 10**18], pa.int64()), None),  # the second: year 2128 in ns
    (pa.array([EPOCH_NS, EPOCH_NS + 1_000], pa.int64()), 2025),  # int64 epoch-ns, not µs
])
def test_parquet_ts_columns(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                            tmp_path: Path, ts: pa.Array, stored: int | None) -> None:
    f = _parquet(tmp_path / "r.parquet", ts)
    db = tmp_path / "x.duckdb"
    code, err = _cli(monkeypatch, capsys, "ingest", str(f), "--db", str(db))
    if stored is None:
        assert code == 2 and err.startswith(f"error: {f}: row 1: field ts: "), err
        return
    assert code == 0, err
    with Store(db) as store:
        assert store.fetchall_sql("SELECT DISTINCT year(timezone('UTC', ts)) FROM predictions") == [(stored,)]


def test_unopenable_db_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = _lines(tmp_path / "r.jsonl", _good_line(0))
    code, err = _cli(monkeypatch, capsys, "ingest", str(f), "--db", "/proc/nope/x.duckdb")
    assert code == 2 and err.startswith("error: ") and "/proc/nope/x.duckdb" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_drop_file_goes_to_failed_and_later_files_are_ingested(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    _parquet(drop / "001-bad.parquet", pa.array([True]))  # a ts column no rule can read
    (drop / "002-junk.parquet").write_bytes(b"PAR1 not really")
    _parquet(drop / "003-one-bad-row.parquet", pa.array(["2025-12-01T00:00:00Z", "0001-01-01T00:00:00Z"]))
    _parquet(drop / "004-crash.parquet", pa.array(["2025-12-01T00:00:00Z"]))
    real = recordfile.read_records

    def read(path: Path, **kw: Any) -> Any:
        if path.name.startswith("004"):
            raise OverflowError("an error nobody expected")
        return real(path, **kw)

    monkeypatch.setattr(recordfile, "read_records", read)
    with Store(tmp_path / "x.duckdb") as store:
        first = ingest_drop_files(store, drop)
        assert first.files == 1 and first.accepted == 1 and first.skipped == 1 and len(first.failed) == 3
        for name, reason in (("001-bad.parquet", "field ts"), ("002-junk.parquet", "not readable"),
                             ("004-crash.parquet", "OverflowError: an error nobody expected")):
            assert (drop / "failed" / name).exists() and not (drop / name).exists()
            message = (drop / "failed" / f"{name}.error").read_text(encoding="utf-8")
            assert len(message.strip().splitlines()) == 1 and name in message and reason in message
        later, _ = records_to_table([record(i) for i in range(5, 8)])
        pq.write_table(later, drop / "005-later.parquet")
        second = ingest_drop_files(store, drop)
        assert second.files == 1 and second.accepted == 3 and second.failed == ()
        assert store.count_predictions() == 4
