"""Fault: SIGKILL the sidecar process during ingest, restart it.

The store must open, migrations must be no-ops, every record answered 202 before the kill must
be present; re-sending what was never acknowledged (what a collector's spool does) must deliver
the rest, and nothing may be stored twice.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from monitor.queries import load_migrations
from monitor.store import Store
from tests.server.helpers import AUTH, TOKEN, free_port, record, subprocess_sidecar

pytestmark = pytest.mark.slow  # subprocess sidecars under load (not in make test-fast)

CLIENTS = 3
BATCH = 200


def test_sigkill_during_ingest_loses_no_accepted_record(tmp_path: Path) -> None:
    db = tmp_path / "fault.duckdb"
    acked: set[str] = set()
    spool: dict[tuple[int, int], list[dict[str, object]]] = {}  # batches sent but not acknowledged
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int, base: str) -> None:
        with httpx.Client(base_url=base, headers=AUTH, timeout=10) as c:
            n = 0
            while not stop.is_set():
                batch = [record(n + i, prefix=f"k{k}", dim=8) for i in range(BATCH)]
                with lock:
                    spool[(k, n)] = batch
                try:
                    r = c.post("/v1/predictions", json={"records": batch})
                except httpx.HTTPError:
                    return  # the server died mid-request: the batch stays spooled
                if r.status_code == 202:
                    with lock:
                        acked.update(x["event_id"] for x in batch)  # type: ignore[misc]
                        del spool[(k, n)]
                n += BATCH

    with subprocess_sidecar(db, tmp_path) as (proc, base):
        threads = [threading.Thread(target=client, args=(k, base)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 5_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        stop.set()
        for t in threads:
            t.join(30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 5_000
    assert spool, "the kill should leave at least one unacknowledged batch in flight"

    # after the crash: the file opens (WAL replayed), no migration runs, every 202 is there
    with Store(db) as store:
        assert store.migrate() == []
        assert store.schema_versions() == sorted(m.version for m in load_migrations())
        stored = {r[0] for r in store.fetchall_sql("SELECT event_id FROM predictions")}
    assert acked <= stored

    # restart and deliver the spool: idempotent on event_id, so batches that were committed
    # but not acknowledged come back as duplicates
    pending = [x for b in spool.values() for x in b]
    with subprocess_sidecar(db, tmp_path) as (_, base), httpx.Client(base_url=base, headers=AUTH) as c:
        dup_total = 0
        for batch in spool.values():
            r = c.post("/v1/predictions", json={"records": batch})
            assert r.status_code == 202
            dup_total += r.json()["duplicates"]
    expected = acked | {str(x["event_id"]) for x in pending}
    with Store(db) as store:
        ids = [r[0] for r in store.fetchall_sql("SELECT event_id FROM predictions")]
        assert store.migrate() == []
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert dup_total == len(stored - acked)  # exactly what was committed without a 202
    print(f"\nfault: {len(acked)} acknowledged before SIGKILL, {len(stored - acked)} committed "
          f"without an answer, {len(pending)} re-sent from the spool, {len(ids)} stored once each")


def test_collector_spool_delivers_what_the_killed_sidecar_never_acknowledged(tmp_path: Path) -> None:
    from collectors import sinks

    db = tmp_path / "spool.duckdb"
    port = free_port()
    sink = sinks.HttpSink(f"http://127.0.0.1:{port}", TOKEN, spool_dir=tmp_path / "collector-spool",
                          timeout_s=5.0, max_backoff_s=0.2)
    sent_ids: list[str] = []
    with subprocess_sidecar(db, tmp_path, port=port) as (proc, _):
        b = 0
        deadline = time.monotonic() + 60
        while sink.sent < 3_000:
            assert time.monotonic() < deadline, "the sidecar stopped accepting batches"
            batch = [record(b * BATCH + i, prefix="s", dim=8) for i in range(BATCH)]
            sink.send(batch)
            sent_ids.extend(str(x["event_id"]) for x in batch)
            b += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        for _ in range(5):  # the sidecar is down: these go to the collector's disk spool
            batch = [record(b * BATCH + i, prefix="s", dim=8) for i in range(BATCH)]
            sink.send(batch)
            sent_ids.extend(str(x["event_id"]) for x in batch)
            b += 1
            time.sleep(0.25)
    assert sink.spooled >= 5 * BATCH
    with Store(db) as store:
        assert store.migrate() == []
        assert store.count_predictions() == sink.sent
    with subprocess_sidecar(db, tmp_path, port=port):
        deadline = time.monotonic() + 60
        while sink.spooled and time.monotonic() < deadline:
            sink.tick()
            time.sleep(0.1)
    sink.close()
    assert sink.spooled == 0 and sink.rejected == 0
    with Store(db) as store:
        ids = [r[0] for r in store.fetchall_sql("SELECT event_id FROM predictions")]
    assert len(ids) == len(set(ids)) == len(set(sent_ids)) == len(sent_ids)
    assert set(ids) == set(sent_ids)
