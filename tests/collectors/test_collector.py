"""Collector: non-blocking log(), background flush, retries, close(), errors, heartbeats."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from collectors import BatchRejected, Collector, DuckDBSink, Sink, SinkUnavailable
from monitor.store import Store
from tests.monitor.records import record

WAIT_S = 20.0  # generous upper bound for background work; tests never sleep for it


class ListSink(Sink):
    """Keeps what it receives; can block on a gate or fail the first ``fail`` sends."""

    supports_heartbeat = True

    def __init__(self, *, fail: int = 0, gate: threading.Event | None = None, reject: bool = False) -> None:
        self.records: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.beats: list[dict[str, Any]] = []
        self.fail = fail
        self.gate = gate
        self.reject = reject
        self.entered = threading.Event()
        self.got = threading.Event()

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(WAIT_S)
        if self.reject:
            raise BatchRejected("bad batch", len(records))
        if self.fail > 0:
            self.fail -= 1
            raise SinkUnavailable("down")
        self.records.extend(dict(r) for r in records)
        self.got.set()
        return len(records)

    def send_errors(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors.extend(dict(e) for e in errors)

    def send_heartbeat(self, beat: Mapping[str, Any]) -> None:
        self.beats.append(dict(beat))


def test_full_queue_never_blocks_and_counts_drops() -> None:
    gate = threading.Event()
    sink = ListSink(gate=gate)
    col = Collector(sink, max_queue=20, flush_size=5, flush_interval_s=0.01)
    col.log(record(0))
    assert sink.entered.wait(WAIT_S)  # the flush thread is now stuck inside the sink

    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.extend(col.log(record(i)) for i in range(1, 1001)))
    worker.start()
    worker.join(WAIT_S)
    assert not worker.is_alive(), "log() blocked while the sink was stuck"
    s = col.stats()
    assert results.count(True) == 20 and results.count(False) == 980
    assert s.dropped == 980 and s.queue_depth == 20 and s.logged == 21
    gate.set()
    col.close()
    assert len(sink.records) == 21 and col.stats().sent == 21


def test_log_never_raises_even_with_a_broken_sink_or_odd_input() -> None:
    sink = ListSink(fail=10**9)
    col = Collector(sink, flush_size=100, flush_interval_s=3600, max_retries=5, backoff_s=0.001)
    assert col.log(record(0)) is True
    assert col.log({"not": "a record"}) is True  # validated by the sink, never in log()
    col.close()
    s = col.stats()
    assert s.sink_failures == 6 and s.dropped == 2 and s.sent == 0  # 1 try + max_retries
    assert col.log(record(1)) is False  # closed: dropped, not raised
    assert col.stats().dropped == 3


def test_flush_by_size_and_by_age() -> None:
    sink = ListSink()
    col = Collector(sink, flush_size=3, flush_interval_s=3600)
    for i in range(3):
        col.log(record(i))
    assert sink.got.wait(WAIT_S)  # size reached: flushed long before the hour is up
    assert len(sink.records) == 3
    col.close()

    sink = ListSink()
    col = Collector(sink, flush_size=1000, flush_interval_s=0.02)
    col.log(record(0))
    assert sink.got.wait(WAIT_S)  # age reached
    col.close()


def test_close_and_context_manager_flush_everything() -> None:
    sink = ListSink()
    with Collector(sink, flush_size=4, flush_interval_s=3600) as col:
        for i in range(10):
            col.log(record(i))
    assert [r["event_id"] for r in sink.records] == [record(i)["event_id"] for i in range(10)]
    assert col.stats().sent == 10 and col.stats().queue_depth == 0
    assert sink.beats and sink.beats[-1]["sent"] == 10


def test_transient_failures_are_retried_with_backoff_and_counted() -> None:
    sink = ListSink(fail=2)
    col = Collector(sink, flush_size=100, flush_interval_s=3600, backoff_s=0.001)
    col.log(record(0))
    col.close()
    s = col.stats()
    assert (s.sink_failures, s.sent, s.dropped) == (2, 1, 0)


def test_a_non_mapping_record_is_rejected_alone() -> None:
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    col.log(None)  # type: ignore[arg-type]
    col.log(record(0))
    col.close()
    s = col.stats()
    assert (s.rejected, s.sent, len(sink.records)) == (1, 1, 1)


def test_rejected_batches_are_counted_not_retried() -> None:
    sink = ListSink(reject=True)
    col = Collector(sink, flush_interval_s=3600)
    col.log(record(0))
    col.close()
    s = col.stats()
    assert (s.rejected, s.sink_failures, s.sent) == (1, 0, 0)


def test_missing_event_id_and_ts_are_filled() -> None:
    sink = ListSink()
    col = Collector(sink, flush_interval_s=3600)
    rec = record(0)
    del rec["event_id"], rec["ts"]
    col.log(rec)
    col.close()
    got = sink.records[0]
    assert len(got["event_id"]) == 36 and got["ts"].tzinfo is not None
    assert "event_id" not in rec  # the caller's dict is not modified


def test_errors_and_heartbeats_reach_the_store() -> None:
    with Store(":memory:") as store:
        col = Collector(DuckDBSink(store), flush_interval_s=3600, collector_id="c-1")
        for i in range(5):
            col.log(record(i))
        col.log(record(5, confidence=7.0))  # bad: skipped by the sink, counted
        col.log_error("m", "v1", "tokenizer", "cannot tokenize", source="web")
        col.close()
        assert store.count_predictions() == 5
        assert col.sink.rejected == 1  # type: ignore[attr-defined]
        errs = store.fetch_dicts("health_recent_errors", {"model_name": "m", "n": 10})
        assert [(e["kind"], e["source"]) for e in errs] == [("tokenizer", "web")]
        beat = store.fetch_dicts("health_latest_heartbeats")[0]
        # sent counts what the sink took, not what it was handed; the refused one is rejected
        assert (beat["collector_id"], beat["model_name"], beat["sent"]) == ("c-1", "m", 5)
        assert (beat["rejected"], beat["evicted"]) == (1, 0)
        assert col.stats().errors_logged == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Collector(ListSink(), max_queue=0, start=False)


def test_heartbeats_are_periodic() -> None:
    sink = ListSink()
    col = Collector(sink, flush_interval_s=0.01, heartbeat_interval_s=0.01, model_name="m",
                    model_version="v1")
    col.log(record(0))
    deadline = threading.Event()
    for _ in range(2000):
        if len(sink.beats) >= 3:
            break
        deadline.wait(0.01)
    col.close()
    assert len(sink.beats) >= 3
    assert {b["model_name"] for b in sink.beats} == {"m"} and sink.beats[-1]["queue_capacity"] == 10_000
