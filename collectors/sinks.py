"""Where a :class:`~collectors.collector.Collector` delivers its batches.

    Sink            the interface: send(records), send_errors(errors), send_heartbeat(beat)
    ├── DuckDBSink  embedded mode: straight into a :class:`monitor.store.Store`
    ├── HttpSink    sidecar mode: POST /v1/predictions, /v1/errors, /v1/heartbeat; spools to disk
    │               while the sidecar is unreachable and re-sends oldest first
    └── ParquetSink drop files (``.tmp`` written, then renamed) that the sidecar ingests

A sink raises :class:`SinkUnavailable` for a transient failure (the collector
retries with backoff and counts it) and :class:`BatchRejected` when the batch
itself is invalid (retrying cannot help; the collector counts and drops it).
Sinks run on the collector's background thread only.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from collectors.spool import Spool
from monitor.errors import SchemaError, ShiftwatchError, StoreError

__all__ = [
    "BatchRejected",
    "DuckDBSink",
    "HttpSink",
    "ParquetSink",
    "Sink",
    "SinkUnavailable",
    "encode_json",
]


class SinkUnavailable(ShiftwatchError):
    """A transient delivery failure: the batch may succeed later."""


class BatchRejected(ShiftwatchError):
    """The destination refused the batch as invalid; ``n`` items are lost."""

    def __init__(self, message: str, n: int) -> None:
        super().__init__(message)
        self.n = n


class Sink:
    """Base sink. Subclasses implement :meth:`send`; the rest is optional."""

    #: whether :meth:`send_heartbeat` stores anything
    supports_heartbeat = False

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Deliver prediction records; return how many were accepted (or spooled)."""
        raise NotImplementedError

    def send_errors(self, errors: Sequence[Mapping[str, Any]]) -> None:
        """Deliver serving errors (``ts, model_name, model_version, kind, message, source``)."""

    def send_heartbeat(self, beat: Mapping[str, Any]) -> None:
        """Deliver one heartbeat (shape of ``POST /v1/heartbeat``)."""

    def tick(self) -> None:
        """Called by the collector on every flush interval (e.g. to re-send a spool)."""

    @property
    def spooled(self) -> int:
        """Items waiting on local disk for re-delivery."""
        return 0

    @property
    def spool_dropped(self) -> int:
        """Items deleted from the spool to respect its disk bound."""
        return 0

    def close(self) -> None:
        """Release resources; called once by :meth:`Collector.close`."""


class DuckDBSink(Sink):
    """Write into a store in the same process (embedded mode).

    Bad records in a batch are skipped (and counted in :attr:`rejected`) so
    one bad record never blocks the others behind it.
    """

    supports_heartbeat = True

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rejected = 0

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        from collectors.schema import columnar_table

        table = columnar_table(records)
        try:
            result = self.store.insert_predictions(table if table is not None else records,
                                                   skip_bad=True, source="collector")
        except SchemaError as exc:  # a column-level problem rejects the batch
            self.rejected += len(records)
            raise BatchRejected(str(exc), len(records)) from exc
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc
        self.rejected += len(result.rejected)
        return int(result.accepted + result.duplicates)

    def send_errors(self, errors: Sequence[Mapping[str, Any]]) -> None:
        from monitor.health import insert_serving_errors

        self._health(insert_serving_errors, errors)

    def send_heartbeat(self, beat: Mapping[str, Any]) -> None:
        from monitor.health import insert_heartbeats

        self._health(insert_heartbeats, [beat])

    def _health(self, fn: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            fn(self.store, rows)
        except SchemaError as exc:
            raise BatchRejected(str(exc), len(rows)) from exc
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(payload: Mapping[str, Any], n: int = 1) -> bytes:
    """JSON bytes of a request body (datetimes as ISO 8601, numpy as lists/numbers).

    Raises :class:`BatchRejected` for values JSON cannot carry (NaN, unknown types).
    """
    try:
        return json.dumps(payload, default=_json_default, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BatchRejected(f"cannot encode the batch as JSON: {exc}", n) from exc


class HttpSink(Sink):
    """POST to a shiftwatch sidecar; spool to ``spool_dir`` while it is unreachable.

    Connection errors, timeouts, 401/403, 408, 429 and 5xx spool the batch;
    the spool is re-sent oldest first on the next send or tick (with
    exponential backoff up to ``max_backoff_s``). Re-sending is safe: the
    sidecar ignores ``event_id`` values it already has. Other 4xx answers mean
    the batch is invalid: it is dropped and counted in :attr:`rejected`.
    Heartbeats are never spooled (a newer one follows).
    """

    supports_heartbeat = True
    _RETRY_STATUS = frozenset({401, 403, 408, 425, 429})

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        spool_dir: str | Path = "shiftwatch-collector-spool",
        max_spool_bytes: int = 256 * 1024 * 1024,
        timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        max_body_bytes: int = 8 * 1024 * 1024,
        transport: Any = None,
    ) -> None:
        import httpx

        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.spool = Spool(spool_dir, max_bytes=max_spool_bytes)
        self.rejected = 0
        self.sent = 0
        self.max_backoff_s = max_backoff_s
        self.max_body_bytes = max_body_bytes
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    # -- Sink interface -------------------------------------------------------------------
    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        # the sidecar refuses a whole batch for one bad record: leave the bad ones out here
        records, n_bad = _prefilter(records)
        self.rejected += n_bad
        return self._send_split(records)

    def _send_split(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Post (or spool) in bodies of at most ``max_body_bytes`` (the sidecar answers 413 past
        its own limit, and a refused body would be lost)."""
        if not records:
            return 0
        body = encode_json({"records": list(records)}, len(records))
        if len(body) > self.max_body_bytes and len(records) > 1:
            half = len(records) // 2
            return self._send_split(records[:half]) + self._send_split(records[half:])
        self._deliver("predictions", body, len(records))
        return len(records)

    def send_errors(self, errors: Sequence[Mapping[str, Any]]) -> None:
        if errors:
            self._deliver("errors", encode_json({"errors": list(errors)}, len(errors)), len(errors))

    def send_heartbeat(self, beat: Mapping[str, Any]) -> None:
        if time.monotonic() < self._next_attempt:
            return
        # a heartbeat is not worth keeping: the next one carries the same counters
        with contextlib.suppress(SinkUnavailable, BatchRejected):
            self._post("heartbeat", encode_json(beat))

    def tick(self) -> None:
        self._drain()

    @property
    def spooled(self) -> int:
        return self.spool.pending_items()

    @property
    def spool_dropped(self) -> int:
        return self.spool.dropped

    def close(self) -> None:
        self._client.close()

    # -- internals ----------------------------------------------------------------------
    def _deliver(self, kind: str, body: bytes, n: int) -> None:
        """Send now if nothing older waits; otherwise (or on failure) spool."""
        if self._drain():
            try:
                self._post(kind, body)
                self.sent += n
                return
            except SinkUnavailable:
                self._failed()
            except BatchRejected:
                self.rejected += n
                return
        self.spool.put(kind, body, n)

    def _drain(self) -> bool:
        """Re-send spooled batches oldest first; True when the spool is empty."""
        batches = self.spool.batches()
        if not batches:
            return True
        if time.monotonic() < self._next_attempt:
            return False
        for batch in batches:
            try:
                self._post(batch.kind, batch.read())
            except SinkUnavailable:
                self._failed()
                return False
            except BatchRejected:
                self.rejected += batch.n_items
            except FileNotFoundError:
                continue
            else:
                self.sent += batch.n_items
            self.spool.remove(batch)
        return True

    def _failed(self) -> None:
        self._backoff = min(self.max_backoff_s, max(0.1, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff

    def _post(self, endpoint: str, body: bytes) -> None:
        import httpx

        try:
            resp = self._client.post(f"{self.url}/v1/{endpoint}", content=body)
        except httpx.HTTPError as exc:
            raise SinkUnavailable(f"{self.url}: {exc}") from exc
        if resp.status_code < 300:
            self._backoff = 0.0
            self._next_attempt = 0.0
            return
        if resp.status_code >= 500 or resp.status_code in self._RETRY_STATUS:
            raise SinkUnavailable(f"{self.url}/v1/{endpoint}: HTTP {resp.status_code}")
        raise BatchRejected(f"{self.url}/v1/{endpoint}: HTTP {resp.status_code}: {resp.text[:300]}", 0)


def _prefilter(records: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Drop records the store would refuse, and repeats of an event_id within the batch."""
    from collectors.schema import columnar_table, records_to_table, validate_table

    bad: set[int] = set()
    try:
        table = columnar_table(records)
        if table is not None:
            _, errors = validate_table(table, skip_bad=True)
        else:
            _, errors = records_to_table(records, skip_bad=True)
        bad = {e.row for e in errors}
    except SchemaError:  # a column-level problem: let the destination answer for the batch
        bad = set()
    seen: set[Any] = set()
    kept: list[Mapping[str, Any]] = []
    for i, rec in enumerate(records):
        eid = rec.get("event_id")
        if i in bad or eid in seen:
            continue
        seen.add(eid)
        kept.append(rec)
    return kept, len(records) - len(kept)


class ParquetSink(Sink):
    """Write each batch as a Parquet drop file the sidecar ingests.

    A file is written as ``<name>.parquet.tmp`` and renamed to
    ``<name>.parquet`` only when complete, so the sidecar never reads half a
    file. Records are checked before writing; bad ones are skipped and counted.

    With ``lake_replica``, ``directory`` is a fleet lake root and each batch is
    written into its layout instead (DESIGN §9:
    ``predictions/model=…/version=…/date=…/hour=…/replica=<id>-<uuid>.parquet``,
    one new file per model version and hour the batch spans; never appended).
    """

    def __init__(self, directory: str | Path, *, lake_replica: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lake_replica = lake_replica
        self.rejected = 0
        self.files_written = 0

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from collectors.schema import columnar_table, records_to_table, validate_table

        if not records:
            return 0
        table = columnar_table(records)
        try:
            if table is not None:
                table, bad = validate_table(table, skip_bad=True)
            else:
                table, bad = records_to_table(records, skip_bad=True)
        except SchemaError as exc:
            self.rejected += len(records)
            raise BatchRejected(str(exc), len(records)) from exc
        self.rejected += len({e.row for e in bad})
        if table.num_rows == 0:
            return 0
        if self.lake_replica is not None:
            return self._send_to_lake(table, self.lake_replica)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        final = self.directory / name
        tmp = final.with_name(name + ".tmp")
        try:
            pq.write_table(table, tmp)
            tmp.replace(final)
        except (OSError, pa.ArrowException) as exc:
            tmp.unlink(missing_ok=True)
            raise SinkUnavailable(f"cannot write {final}: {exc}") from exc
        self.files_written += 1
        return int(table.num_rows)

    def _send_to_lake(self, table: Any, replica: str) -> int:
        from monitor.lake.layout import write_predictions

        try:
            files = write_predictions(self.directory, table, replica=replica)
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc
        self.files_written += len(files)
        return int(table.num_rows)
