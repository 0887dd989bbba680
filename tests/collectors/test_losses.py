"""Collectors never lose good records for a bad one, and never lose anything silently
(issue 13): per-record refusal with DuckDBSink and HttpSink, the 385-d/384-d batch, 422
narrowing, bounded close() with a hung sidecar, rate-limited loss lines, token files and 401s."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from collectors import Collector, DuckDBSink, HttpSink
from collectors.collector import LossLog
from monitor.server import create_app
from monitor.store import Store
from tests.monitor.records import record
from tests.server.helpers import TOKEN, ThreadServer, settings_for

OUT_OF_RANGE_TS = "0001-01-01T00:00:00+01:00"  # a record the codec refuses (year outside 1970-2100)


def _batch(n: int, bad: int, **over: Any) -> list[dict[str, Any]]:
    recs = [record(i) for i in range(n)]
    recs[bad].update(over)
    return recs


def test_duckdb_sink_refuses_a_bad_record_alone() -> None:
    with Store(":memory:") as store:
        col = Collector(DuckDBSink(store), flush_size=500, flush_interval_s=3600, start=False)
        for rec in _batch(500, 137, ts=OUT_OF_RANGE_TS):
            col.log(rec)
        col.close()
        s = col.stats()
        assert store.count_predictions() == 499
        assert (s.sent, s.rejected, s.dropped) == (499, 1, 0)
        stored = {r["event_id"] for r in store.fetch_dicts("export_window", {
            "model_name": None, "start": None, "end": None})}
        assert record(137)["event_id"] not in stored and record(138)["event_id"] in stored


def test_duckdb_sink_isolates_a_record_whose_insert_fails() -> None:
    """Validation passes but the insert fails for one row: bisection stores the others."""
    with Store(":memory:") as store:
        real = store.insert_predictions
        poison = record(3)["event_id"]

        def flaky(table: Any, **kw: Any) -> Any:
            if poison in table["event_id"].to_pylist():
                from monitor.errors import StoreError
                raise StoreError("conversion failed")
            return real(table, **kw)

        store.insert_predictions = flaky  # type: ignore[method-assign]
        sink = DuckDBSink(store)
        assert sink.send([record(i) for i in range(10)]) == 9
        assert sink.rejected == 1 and store.count_predictions() == 9


def test_duckdb_sink_with_a_known_dim_refuses_only_the_385d_record() -> None:
    with Store(":memory:") as store:
        store.declare_embedding_dim("m", "v1", 384)
        col = Collector(DuckDBSink(store), flush_size=500, flush_interval_s=3600, start=False)
        col.log(record(0, dim=385))
        for i in range(1, 500):
            col.log(record(i, dim=384))
        col.close()
        assert store.count_predictions() == 499
        s = col.stats()
        assert (s.sent, s.rejected, s.dropped) == (499, 1, 0)


@pytest.fixture()
def sidecar(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """A real sidecar (uvicorn on 127.0.0.1) whose store already knows m/v1 has 384-d embeddings."""
    with Store(tmp_path / "side.duckdb") as store:
        store.declare_embedding_dim("m", "v1", 384)
        app = create_app(settings_for(tmp_path), store=store, start_scheduler=False, enrich=False)
        with ThreadServer(app) as server:
            yield server.base, store


def test_http_sink_385d_then_499_384d_stores_the_499(sidecar: tuple[str, Store], tmp_path: Path) -> None:
    base, store = sidecar
    col = Collector(HttpSink(base, token=TOKEN, spool_dir=tmp_path / "spool"), flush_size=500,
                    flush_interval_s=3600, start=False, collector_id="c385")
    col.log(record(0, dim=385))
    for i in range(1, 500):
        col.log(record(i, dim=384))
    col.close()
    s = col.stats()
    assert store.count_predictions() == 499  # was 0 of 500 with sent=500, rejected=0
    assert (s.sent, s.rejected, s.dropped, s.spooled) == (499, 1, 0, 0)
    # the same counts reach the sidecar's heartbeat table and /metrics
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert 'shiftwatch_collector_rejected_total{collector="c385",model="m",version="v1"} 1.0' in text
    assert 'shiftwatch_collector_evicted_total{collector="c385",model="m",version="v1"} 0.0' in text


def test_http_sink_bad_record_costs_only_itself(sidecar: tuple[str, Store], tmp_path: Path) -> None:
    base, store = sidecar
    col = Collector(HttpSink(base, token=TOKEN, spool_dir=tmp_path / "spool"), flush_size=500,
                    flush_interval_s=3600, start=False)
    for rec in _batch(500, 42, ts=OUT_OF_RANGE_TS):
        rec.pop("embedding")
        col.log(rec)
    col.close()
    s = col.stats()
    assert store.count_predictions() == 499
    assert (s.sent, s.rejected, s.dropped) == (499, 1, 0)


def test_a_422_naming_no_rows_is_narrowed_by_bisection(tmp_path: Path) -> None:
    poison = record(5)["event_id"]
    posts: list[int] = []
    stored: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        recs = json.loads(request.content)["records"]
        posts.append(len(recs))
        if any(r["event_id"] == poison for r in recs):
            return httpx.Response(422, json={"detail": "something in this batch"})
        stored.update(r["event_id"] for r in recs)
        return httpx.Response(202, json={"accepted": len(recs)})

    sink = HttpSink("http://sidecar", spool_dir=tmp_path / "spool", transport=httpx.MockTransport(handler))
    assert sink.send([record(i) for i in range(16)]) == 15
    assert sink.rejected == 1 and len(stored) == 15 and poison not in stored
    assert len(posts) <= 2 * 4 + 1  # bisection: O(log n) posts, never the whole batch again
    assert posts.count(16) == 1


def test_a_422_naming_rows_resends_the_rest_once(tmp_path: Path) -> None:
    posts: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        recs = json.loads(request.content)["records"]
        posts.append([r["event_id"] for r in recs])
        bad = [{"row": i, "field": "confidence", "message": "no"} for i, r in enumerate(recs)
               if r["predicted_label"] == "odd"]
        if bad:
            return httpx.Response(422, json={"detail": "bad rows", "errors": bad})
        return httpx.Response(202, json={"accepted": len(recs)})

    recs = [record(i, predicted_label="odd" if i in (2, 7) else "pos") for i in range(10)]
    sink = HttpSink("http://sidecar", spool_dir=tmp_path / "spool", transport=httpx.MockTransport(handler))
    assert sink.send(recs) == 8
    assert sink.rejected == 2 and len(posts) == 2 and len(posts[1]) == 8


class _Hung:
    """A TCP listener that completes handshakes (kernel backlog) but never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


def test_close_is_bounded_with_a_hung_sidecar_and_spools_what_is_left(tmp_path: Path) -> None:
    hung = _Hung()
    try:
        sink = HttpSink(hung.url, spool_dir=tmp_path / "spool", timeout_s=60.0)
        col = Collector(sink, flush_size=20, flush_interval_s=0.01, heartbeat_interval_s=3600)
        for i in range(50):
            col.log(record(i))
        started = time.monotonic()
        col.close(timeout_s=1.0)
        took = time.monotonic() - started
        assert took < 10.0  # bounded by the timeout, not by the sink's 60 s request timeout
        ids: set[str] = set()
        for f in (tmp_path / "spool").glob("*.json"):
            ids.update(r["event_id"] for r in json.loads(f.read_bytes())["records"])
        s = col.stats()
        assert ids == {record(i)["event_id"] for i in range(50)}  # nothing lost: all spooled
        assert s.dropped == 0
    finally:
        hung.close()


def test_close_without_a_spool_counts_what_is_left_as_dropped() -> None:
    import threading

    from collectors import Sink

    class Stuck(Sink):
        def __init__(self) -> None:
            self.release = threading.Event()

        def send(self, records: Any) -> int:
            self.release.wait(30)
            return len(records)

    sink = Stuck()
    col = Collector(sink, flush_size=10, flush_interval_s=0.01)
    for i in range(30):
        col.log(record(i))
    col.close(timeout_s=0.5)
    s = col.stats()
    sink.release.set()
    assert s.dropped + s.sent == 30 and s.dropped >= 10


def test_loss_log_is_rate_limited_with_counts_since_the_last_line(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("test.losslog")
    loss = LossLog(logger, interval_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.losslog"):
        loss.note("evicted", 10)
        for t, total in ((1, 20), (30, 50), (59, 70)):
            now[0] = t
            loss.note("evicted", total)
        now[0] = 61.0
        loss.note("evicted", 75)
        loss.note("evicted", 75)  # nothing new: no line
        loss.note("rejected", 3)  # another kind has its own budget
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("collector: 10 spooled record(s) deleted")
    assert lines[1].startswith("collector: 65 spooled record(s) deleted")
    assert "(evicted 75 in all)" in lines[1]
    assert "refused as invalid" in lines[2]


def test_spool_eviction_is_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    sink = HttpSink(dead, spool_dir=tmp_path / "spool", max_spool_bytes=6_000, max_backoff_s=0.01)
    with caplog.at_level(logging.WARNING, logger="shiftwatch.collector"):
        col = Collector(sink, flush_size=5, flush_interval_s=0.01, loss_log_interval_s=3600)
        for i in range(200):
            col.log(record(i))
        col.close(timeout_s=10)
    s = col.stats()
    assert s.evicted > 0 and s.evicted == s.spool_dropped and s.evicted + s.spooled == 200
    evicted = [r.getMessage() for r in caplog.records if "deleted to bound the spool" in r.getMessage()]
    assert 1 <= len(evicted) <= 2  # one line per interval (+ the final one at close), not one per batch
    assert f"(evicted {s.evicted} in all)" in evicted[-1]
    assert any("failed delivery attempt" in r.getMessage() for r in caplog.records)  # the outage


def test_nothing_is_evicted_once_the_sidecar_is_back_even_inside_the_backoff(tmp_path: Path) -> None:
    """Issue 13: eviction went on after the sidecar was back (the sink waited out its backoff)."""
    up = {"value": False}
    stored: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if not up["value"]:
            raise httpx.ConnectError("sidecar down", request=request)
        recs = json.loads(request.content)["records"]
        stored.extend(r["event_id"] for r in recs)
        return httpx.Response(202, json={"accepted": len(recs), "duplicates": 0})

    sink = HttpSink("http://sidecar.invalid", spool_dir=tmp_path / "spool", max_backoff_s=3600,
                    transport=httpx.MockTransport(handler))
    batches = [[record(i * 5 + k, dim=None) for k in range(5)] for i in range(4)]
    for batch in batches[:3]:  # the outage: all three spooled
        assert sink.send(batch) == 5
    assert sink.spool.pending_items() == 15 and stored == []
    sink.spool.max_bytes = sink.spool.size_bytes() + 10  # the next batch would evict the oldest
    sink._next_attempt = time.monotonic() + 3600  # deep inside the backoff
    up["value"] = True  # the sidecar is back
    assert sink.send(batches[3]) == 5
    assert sink.spool_dropped == 0 and sink.spool.pending_items() == 0
    assert stored == [r["event_id"] for b in batches for r in b]  # oldest first, none lost
    sink.close()


def test_token_file_is_trimmed_and_a_401_is_counted_then_rotated(
    sidecar: tuple[str, Store], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, store = sidecar
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token\n", encoding="utf-8")
    sink = HttpSink(base, token_file=token_file, spool_dir=tmp_path / "spool", max_backoff_s=0.01)
    with caplog.at_level(logging.WARNING, logger="shiftwatch.collector"):
        col = Collector(sink, flush_size=5, flush_interval_s=0.01, loss_log_interval_s=3600)
        for i in range(5):
            col.log(record(i, dim=None))
        deadline = time.monotonic() + 20
        while col.stats().auth_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert col.stats().auth_failures >= 1 and store.count_predictions() == 0
        token_file.write_text(TOKEN + "\n", encoding="utf-8")  # the mounted secret, newline and all
        deadline = time.monotonic() + 20
        while store.count_predictions() < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        col.close()
    assert store.count_predictions() == 5 and col.stats().spooled == 0
    assert any("refused for the token" in r.getMessage() for r in caplog.records)
