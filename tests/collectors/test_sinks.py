"""HttpSink against a tiny local sidecar stand-in (http.server on 127.0.0.1); spool; ParquetSink."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from collectors import BatchRejected, Collector, HttpSink, ParquetSink
from collectors.sinks import encode_json, encode_records
from collectors.spool import Spool
from tests.monitor.records import record

WAIT_S = 20.0


class FakeSidecar:
    """Stores records by event_id (idempotent like the real one); answers 422 on demand."""

    def __init__(self, port: int, *, token: str | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.posted = 0  # records received, duplicates included
        self.errors: list[dict[str, Any]] = []
        self.beats: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.reject_next = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.auth.append(self.headers.get("authorization"))
                if outer.reject_next:
                    outer.reject_next = False
                    self._answer(422, {"detail": "bad"})
                    return
                if self.path == "/v1/predictions":
                    outer.posted += len(body["records"])
                    for r in body["records"]:
                        outer.records.setdefault(r["event_id"], r)
                elif self.path == "/v1/errors":
                    outer.errors.extend(body["errors"])
                elif self.path == "/v1/heartbeat":
                    outer.beats.append(body)
                self._answer(202, {"accepted": 1})

            def _answer(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT_S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def port() -> int:
    return _free_port()


@pytest.fixture()
def sidecar(port: int) -> Iterator[FakeSidecar]:
    side = FakeSidecar(port)
    yield side
    side.stop()


def _wait(cond: Any) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_delivers_records_errors_heartbeats_with_token(
    sidecar: FakeSidecar, port: int, tmp_path: Path
) -> None:
    sink = HttpSink(f"http://127.0.0.1:{port}/", token="s3cret", spool_dir=tmp_path / "spool")
    with Collector(sink, flush_interval_s=3600, collector_id="c9") as col:
        for i in range(7):
            col.log(record(i))
        col.log_error("m", "v1", "model", "boom")
    assert sorted(sidecar.records) == sorted(record(i)["event_id"] for i in range(7))
    assert sidecar.errors[0]["kind"] == "model" and sidecar.beats[-1]["collector_id"] == "c9"
    assert sidecar.beats[-1]["sent"] == 7
    assert set(sidecar.auth) == {"Bearer s3cret"}
    assert col.stats().spooled == 0


def test_sidecar_down_then_back_nothing_lost_no_duplicates(port: int, tmp_path: Path) -> None:
    sink = HttpSink(f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool", max_backoff_s=0.05,
                    timeout_s=2.0)
    col = Collector(sink, flush_size=10, flush_interval_s=0.02)
    for i in range(50):
        col.log(record(i))
    assert _wait(lambda: col.stats().spooled == 50)  # nobody listening: all spooled
    assert col.stats().sent == 50  # handed to the sink; it owns them now (on disk)
    side = FakeSidecar(port)
    try:
        for i in range(50, 60):
            col.log(record(i))
        assert _wait(lambda: len(side.records) == 60 and col.stats().spooled == 0)
        col.close()
        assert side.posted == 60  # each record posted exactly once: no duplicates
        assert not list((tmp_path / "spool").iterdir())
        # oldest first: the spooled batches arrived before the new ones
        order = list(side.records)
        assert order[:50] == [record(i)["event_id"] for i in range(50)]
    finally:
        side.stop()


def test_spool_survives_a_restart(port: int, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = HttpSink(f"http://127.0.0.1:{port}", spool_dir=spool)
    first.send([record(i) for i in range(5)])
    first.close()  # the process "crashes" with a spooled batch
    assert first.spooled == 5
    side = FakeSidecar(port)
    try:
        second = HttpSink(f"http://127.0.0.1:{port}", spool_dir=spool)
        second.tick()
        assert len(side.records) == 5 and second.spooled == 0
        second.close()
    finally:
        side.stop()


def test_rejected_batch_is_counted_not_spooled(sidecar: FakeSidecar, port: int, tmp_path: Path) -> None:
    sink = HttpSink(f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool")
    sidecar.reject_next = True
    sink.send([record(0)])
    assert (sink.rejected, sink.spooled) == (1, 0)
    assert sink.send([record(1, confidence=float("nan"))]) == 0  # left out before posting
    assert (sink.rejected, sink.spooled, sidecar.posted) == (2, 0, 0)
    with pytest.raises(BatchRejected, match="JSON"):
        encode_json({"records": [{"x": float("nan")}]})  # JSON cannot carry NaN
    sink.close()


def _vectors_equal(fast: Any, slow: Any) -> bool:
    return bool(np.array_equal(np.asarray(fast, dtype=np.float32), np.asarray(slow, dtype=np.float32)))


def test_encode_records_writes_the_document_of_encode_json() -> None:
    rng = np.random.default_rng(7)
    special = np.array([0.3, 1e-8, 3.4e38, -0.0, 1e-45, -1.5, 0.0, 123456.789], dtype=np.float32)
    records: list[dict[str, Any]] = []
    for i in range(40):
        rec = dict(record(i))
        kind = i % 5
        if kind == 0:
            rec["embedding"] = rng.standard_normal(384).astype(np.float32)
        elif kind == 1:
            scale = 10.0 ** rng.integers(-30, 30, 16)
            rec["embedding"] = (rng.standard_normal(16) * scale).astype(np.float32)
        elif kind == 2:
            rec["embedding"] = special
        elif kind == 3:
            rec["embedding"] = [0.1, 0.2, 0.3]  # a list: the standard encoder's business
        else:
            rec["embedding"] = rng.standard_normal(8)  # float64: also left as it is
        rec["probs"] = np.array([0.25, 0.75], dtype=np.float32)
        records.append(rec)
    records.append({"embedding": special})  # nothing but the vector
    fast = json.loads(encode_records(records))
    slow = json.loads(encode_json({"records": records}))
    assert list(fast) == ["records"] and len(fast["records"]) == len(slow["records"]) == 41
    for f, s in zip(fast["records"], slow["records"], strict=True):
        assert _vectors_equal(f.pop("embedding"), s.pop("embedding"))  # the same float32 values
        assert f == s
    with pytest.raises(BatchRejected, match="JSON"):
        encode_records([{**record(0), "embedding": np.array([1.0, np.nan], dtype=np.float32)}])
    assert encode_records([]) == b'{"records":[]}'


def test_spool_is_bounded_oldest_dropped_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=250)
    for i in range(5):
        spool.put("predictions", b"x" * 100, n_items=i + 1)
    kept = spool.batches()
    assert [b.n_items for b in kept] == [4, 5]  # the three oldest were deleted
    assert spool.dropped == 1 + 2 + 3 and spool.size_bytes() == 200
    assert spool.put("predictions", b"y" * 300, n_items=9) is None and spool.dropped == 15
    (tmp_path / "s" / "leftover.json.tmp").write_bytes(b"half")
    assert not list(Spool(tmp_path / "s").directory.glob("*.tmp"))


def test_parquet_sink_writes_complete_files_only(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "drop")
    recs = [record(i) for i in range(4)]
    recs[2]["confidence"] = 3.0
    assert sink.send(recs) == 3 and sink.rejected == 1
    files = list((tmp_path / "drop").iterdir())
    assert len(files) == 1 and files[0].suffix == ".parquet"
    assert pq.read_table(files[0]).num_rows == 3


def test_bad_or_repeated_records_are_left_out_not_the_batch(
    sidecar: FakeSidecar, port: int, tmp_path: Path
) -> None:
    sink = HttpSink(f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool")
    recs = [record(i) for i in range(5)]
    recs[1]["confidence"] = 1.5
    assert sink.send([*recs, recs[3]]) == 4
    assert sink.rejected == 2 and sidecar.posted == 4
    assert sorted(sidecar.records) == sorted(recs[i]["event_id"] for i in (0, 2, 3, 4))
    sink.close()


def test_large_batches_are_split_under_the_body_limit(
    sidecar: FakeSidecar, port: int, tmp_path: Path
) -> None:
    sink = HttpSink(f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool", max_body_bytes=1_000)
    assert sink.send([record(i) for i in range(12)]) == 12
    assert len(sidecar.records) == 12 and len(sidecar.auth) >= 4  # several posts
    sink.close()
