"""The in-process collector: log() enqueues, a background thread delivers.

:meth:`Collector.log` appends the record to a bounded in-memory queue and
returns; it never blocks and never raises into the serving code. When the
queue is full the record is dropped and counted. A daemon thread flushes a
batch when ``flush_size`` records are waiting or ``flush_interval_s`` has
passed, fills in ``event_id`` (uuid4) and ``ts`` (the time of ``log()``,
UTC) where the caller left them out, and hands the batch to a sink. A
transient sink failure is retried with exponential backoff (counted in
``sink_failures``); after ``max_retries`` the batch is dropped and counted.
Heartbeats (queue depth, drops, failures) go to sinks that store them every
``heartbeat_interval_s``. :meth:`close` (or leaving the ``with`` block)
flushes what is queued.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from collectors.sinks import BatchRejected, Sink

__all__ = ["Collector", "CollectorStats"]

log = logging.getLogger("shiftwatch.collector")


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters of one collector (cumulative since it started)."""

    collector_id: str
    queue_depth: int
    queue_capacity: int
    logged: int  # accepted by log()
    dropped: int  # refused by log() (queue full, closed) or lost after max_retries
    sent: int  # delivered to the sink (or spooled by it)
    rejected: int  # refused by the sink as invalid
    sink_failures: int  # failed delivery attempts
    spooled: int  # waiting in the sink's disk spool now
    spool_dropped: int  # deleted from the sink's spool to bound its size
    errors_logged: int
    errors_dropped: int

    def to_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)


class Collector:
    """Bounded queue + background flush to a :class:`~collectors.sinks.Sink`.

    ``model_name``/``model_version`` label heartbeats; when left out they are
    taken from the latest record flushed.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        max_queue: int = 10_000,
        flush_size: int = 500,
        flush_interval_s: float = 1.0,
        heartbeat_interval_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
        max_errors_queue: int = 1_000,
        collector_id: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        start: bool = True,
    ) -> None:
        if max_queue <= 0 or flush_size <= 0 or flush_interval_s <= 0:
            raise ValueError("max_queue, flush_size and flush_interval_s must be positive")
        self.sink = sink
        self.collector_id = collector_id or uuid.uuid4().hex
        self.model_name = model_name
        self.model_version = model_version
        self.max_queue = max_queue
        self.flush_size = min(flush_size, max_queue)
        self.flush_interval_s = flush_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_errors_queue = max_errors_queue
        self._queue: deque[tuple[float, Mapping[str, Any]]] = deque()
        self._errors: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._flush_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._logged = 0
        self._dropped = 0
        self._sent = 0
        self._rejected = 0
        self._failures = 0
        self._errors_logged = 0
        self._errors_dropped = 0
        self._last_beat = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"shiftwatch-collector-{self.collector_id[:8]}", daemon=True
        )
        if start:
            self._thread.start()

    # -- the serving path: cheap, never raises ------------------------------------------
    def log(self, record: Mapping[str, Any]) -> bool:
        """Enqueue one prediction record; False if it was dropped (queue full or closed).

        The record is not copied: do not change it after logging it.
        """
        try:
            q = self._queue
            with self._log_lock:  # exact bound and counters across serving threads (~0.1 µs)
                if self._closed or len(q) >= self.max_queue:
                    self._dropped += 1
                    return False
                q.append((time.time(), record))
                self._logged += 1
                full = len(q) >= self.flush_size
            if full:
                self._wake.set()
            return True
        except Exception:  # pragma: no cover - defensive: never raise into serving
            return False

    def log_error(
        self, model_name: str, model_version: str, kind: str, message: str, *, source: str | None = None
    ) -> bool:
        """Enqueue a serving error (e.g. ``kind="tokenizer"``); False if it was dropped."""
        try:
            if self._closed or len(self._errors) >= self.max_errors_queue:
                self._errors_dropped += 1
                return False
            self._errors.append({"ts": datetime.now(UTC), "model_name": model_name,
                                 "model_version": model_version, "kind": kind,
                                 "message": str(message)[:2000], "source": source})
            self._errors_logged += 1
            return True
        except Exception:  # pragma: no cover - defensive
            return False

    def stats(self) -> CollectorStats:
        """Current counters."""
        try:
            spooled, spool_dropped = self.sink.spooled, self.sink.spool_dropped
        except Exception:  # a broken sink must not break stats()
            spooled, spool_dropped = 0, 0
        return CollectorStats(
            collector_id=self.collector_id, queue_depth=len(self._queue), queue_capacity=self.max_queue,
            logged=self._logged, dropped=self._dropped, sent=self._sent, rejected=self._rejected,
            sink_failures=self._failures, spooled=spooled, spool_dropped=spool_dropped,
            errors_logged=self._errors_logged, errors_dropped=self._errors_dropped,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def flush(self) -> None:
        """Deliver everything queued now (on the caller's thread; for tests and shutdown)."""
        with self._flush_lock:
            while self._queue or self._errors:
                self._flush_once()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop accepting records, deliver what is queued, send a last heartbeat, close the sink."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        try:
            self.flush()
            self._heartbeat(force=True)
        finally:
            try:
                self.sink.close()
            except Exception:  # pragma: no cover - closing a sink must not raise at shutdown
                log.warning("closing the sink failed", exc_info=True)

    def __enter__(self) -> Collector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- background thread ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self._flush_lock:
                    self._flush_once()
                    while len(self._queue) >= self.flush_size and not self._stop.is_set():
                        self._flush_once()
                    self._call(self.sink.tick)
                    self._heartbeat()
            except Exception:  # pragma: no cover - the loop must survive anything
                log.exception("collector flush failed")

    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        q = self._queue
        while q and len(batch) < self.flush_size:
            logged_at, rec = q.popleft()
            try:
                item = dict(rec)
            except (TypeError, ValueError):  # not a mapping: nothing a sink could take
                self._rejected += 1
                continue
            if item.get("event_id") is None:
                item["event_id"] = str(uuid.uuid4())
            if item.get("ts") is None:
                item["ts"] = datetime.fromtimestamp(logged_at, UTC)
            batch.append(item)
        if batch and self.model_name is None:
            last = batch[-1]
            self.model_name, self.model_version = last.get("model_name"), last.get("model_version")
        return batch

    def _flush_once(self) -> None:
        errors = [self._errors.popleft() for _ in range(min(len(self._errors), 1000))]
        if errors:
            self._deliver(lambda: self.sink.send_errors(errors), len(errors), count_sent=False)
        batch = self._take()
        if batch:
            self._deliver(lambda: self.sink.send(batch), len(batch), count_sent=True)

    def _deliver(self, send: Any, n: int, *, count_sent: bool) -> None:
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                send()
            except BatchRejected as exc:
                self._rejected += n if count_sent else 0
                log.warning("sink rejected a batch of %d: %s", n, exc)
                return
            except Exception as exc:
                self._failures += 1
                log.warning("sink failed (attempt %d): %s", attempt + 1, exc)
                if attempt == self.max_retries:
                    break
                time.sleep(delay)
                delay = min(self.max_backoff_s, delay * 2)
            else:
                if count_sent:
                    self._sent += n
                return
        if count_sent:
            with self._log_lock:
                self._dropped += n
        else:
            self._errors_dropped += n

    def _call(self, fn: Any) -> None:
        try:
            fn()
        except Exception:
            self._failures += 1

    def _heartbeat(self, *, force: bool = False) -> None:
        if not self.sink.supports_heartbeat:
            return
        now = time.monotonic()
        if not force and now - self._last_beat < self.heartbeat_interval_s:
            return
        self._last_beat = now
        s = self.stats()
        beat = {"collector_id": self.collector_id, "ts": datetime.now(UTC),
                "model_name": self.model_name, "model_version": self.model_version,
                "queue_depth": s.queue_depth, "queue_capacity": s.queue_capacity,
                "dropped": s.dropped + s.spool_dropped, "sink_failures": s.sink_failures,
                "spooled": s.spooled, "sent": s.sent}
        self._call(lambda: self.sink.send_heartbeat(beat))
