"""Where a :class:`~collectors.collector.Collector` delivers its batches.

    Sink            the interface: send(records), send_errors(errors), send_heartbeat(beat)
    ├── DuckDBSink  embedded mode: straight into a :class:`monitor.store.Store`
    ├── HttpSink    sidecar mode: POST /v1/predictions, /v1/errors, /v1/heartbeat; spools to disk
    │               while the sidecar is unreachable and re-sends oldest first
    └── ParquetSink drop files (``.tmp`` written, then renamed) that the sidecar ingests

A sink raises :class:`SinkUnavailable` for a transient failure (the collector
retries with backoff and counts it) and :class:`BatchRejected` when the batch
itself is invalid (retrying cannot help; the collector counts and drops it).
Sinks never lose good records for a bad one: each record is validated on its
own (:func:`split_valid`), and what the destination refuses is narrowed down to
the records it names (HttpSink: the rows of a 422; DuckDBSink: bisection of a
failed insert). What a sink refuses is counted in :attr:`Sink.rejected`.
Sinks run on the collector's background thread only (except
:meth:`Sink.spool_records`, which :meth:`Collector.close` calls at its deadline).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.secrets import read_token_file
from collectors.spool import Spool, private_dir
from monitor.errors import ConfigError, RecordError, SchemaError, ShiftwatchError, StoreError

__all__ = [
    "BatchRejected",
    "DuckDBSink",
    "HttpSink",
    "ParquetSink",
    "Sink",
    "SinkUnavailable",
    "encode_json",
    "encode_records",
    "read_token",
    "split_valid",
]

log = logging.getLogger("shiftwatch.collector")


class SinkUnavailable(ShiftwatchError):
    """A transient delivery failure: the batch may succeed later."""


class BatchRejected(ShiftwatchError):
    """The destination refused the batch as invalid; ``n`` items are lost.

    ``rows`` are the indices of the records the destination named as bad (empty: it named
    none, the refusal may be about any of them).
    """

    def __init__(self, message: str, n: int, *, rows: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.n = n
        self.rows = tuple(rows)


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
        """Items deleted from the spool to respect its disk bound (evicted)."""
        return 0

    #: records the destination (or the sink's own validation) refused as invalid
    rejected: int = 0
    #: deliveries refused for a missing or wrong token (401/403)
    auth_failures: int = 0
    #: failed delivery attempts the sink handled itself (e.g. spooled while unreachable)
    delivery_failures: int = 0

    def spool_records(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Keep ``records`` for a later delivery without contacting the destination; return how
        many were kept (0: this sink cannot spool). Used by :meth:`Collector.close` when its
        timeout is reached; must be fast and must not block on the network."""
        return 0

    def close(self) -> None:
        """Release resources; called once by :meth:`Collector.close`."""


def _table_of(records: Sequence[Mapping[str, Any]], first_row: int,
              dims: Mapping[tuple[str, str], int] | None) -> tuple[Any, list[RecordError]]:
    from collectors.schema import columnar_table, records_to_table, validate_table

    table = columnar_table(records)
    if table is not None:
        try:
            return validate_table(table, skip_bad=True, first_row=first_row, embedding_dims=dims)
        except SchemaError:  # a column-level problem: the record path names rows and fields
            pass
    return records_to_table(records, skip_bad=True, first_row=first_row, embedding_dims=dims)


def split_valid(
    records: Sequence[Mapping[str, Any]],
    *,
    embedding_dims: Mapping[tuple[str, str], int] | None = None,
    first_row: int = 0,
) -> tuple[Any, list[RecordError]]:
    """The valid records as one Arrow table, and a :class:`RecordError` per refused record.

    Validation is per record: a record the validator cannot even process (it raises something
    other than a per-row error) is isolated by bisection and refused alone, with field
    ``<record>``; the others are kept. Rows in the errors are indices into ``records``
    (offset by ``first_row``).
    """
    import pyarrow as pa

    from collectors.schema import ARROW_SCHEMA

    try:
        return _table_of(records, first_row, embedding_dims)
    except Exception as exc:
        if len(records) <= 1:
            message = f"cannot be validated: {type(exc).__name__}: {exc}"[:300]
            return ARROW_SCHEMA.empty_table(), [RecordError(first_row, "<record>", message)]
    half = len(records) // 2
    left, bad_left = split_valid(records[:half], embedding_dims=embedding_dims, first_row=first_row)
    right, bad_right = split_valid(records[half:], embedding_dims=embedding_dims,
                                   first_row=first_row + half)
    # (the halves were checked apart; the store re-checks the dimension rule across them)
    return pa.concat_tables([left, right]), bad_left + bad_right


class DuckDBSink(Sink):
    """Write into a store in the same process (embedded mode).

    Records are validated one by one before the insert (:func:`split_valid`), so a bad record
    is refused alone and counted in :attr:`rejected`. Should the insert still fail, the batch
    is bisected: the halves are inserted separately until the failing record is isolated (it
    is refused); when every part fails, the store is unavailable and the batch is retried by
    the collector (re-inserting is idempotent by ``event_id``).
    """

    supports_heartbeat = True

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rejected = 0

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        if not records:
            return 0
        try:
            dims = self.store.embedding_dims()
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc
        table, bad = split_valid(records, embedding_dims=dims)
        self.rejected += len({e.row for e in bad})
        if bad:
            _log_refused(bad, records)
        if table.num_rows == 0:
            return 0
        stored, failed = self._insert(table)
        if failed and stored == 0:
            raise SinkUnavailable(f"the store refused every part of the batch: {failed[0]}")
        self.rejected += len(failed)
        return stored

    def _insert(self, table: Any) -> tuple[int, list[str]]:
        """Insert ``table``; on failure bisect. Returns (rows stored or already present,
        messages of the single rows that failed)."""
        try:
            result = self.store.insert_predictions(table, skip_bad=True, source="collector")
        except (SchemaError, StoreError) as exc:
            if table.num_rows == 1:
                return 0, [str(exc)[:300]]
            half = table.num_rows // 2
            a, fa = self._insert(table.slice(0, half))
            b, fb = self._insert(table.slice(half))
            return a + b, fa + fb
        except Exception as exc:  # an unexpected failure of one row: isolate it the same way
            if table.num_rows == 1:
                return 0, [f"{type(exc).__name__}: {exc}"[:300]]
            half = table.num_rows // 2
            a, fa = self._insert(table.slice(0, half))
            b, fb = self._insert(table.slice(half))
            return a + b, fa + fb
        self.rejected += len(result.rejected)
        return int(result.accepted + result.duplicates), []

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


def _log_refused(errors: Sequence[RecordError], records: Sequence[Mapping[str, Any]]) -> None:
    """One DEBUG line per refusal (the collector's rate-limited WARNING carries the counts)."""
    if log.isEnabledFor(logging.DEBUG):
        for e in errors[:10]:
            eid = records[e.row].get("event_id") if 0 <= e.row < len(records) else None
            log.debug("record refused: row %d event_id %r: %s", e.row, str(eid)[:80], e)


def read_token(token: str | None = None, token_file: str | Path | None = None) -> str | None:
    """The bearer token: ``token``, else the first line of ``token_file`` with surrounding
    whitespace (the trailing newline of a mounted secret) trimmed. An empty result is a
    :class:`~monitor.errors.ConfigError`: a sink that sends no token would only collect 401s."""
    if token is not None:
        value = token.strip()
        if not value:
            raise ConfigError("the token is empty")
        return value
    return read_token_file(token_file) if token_file is not None else None


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


def _dumps(value: Any, n: int) -> str:
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BatchRejected(f"cannot encode the batch as JSON: {exc}", n) from exc


def encode_records(records: Sequence[Mapping[str, Any]]) -> bytes:
    """``{"records": [...]}`` as JSON bytes: the same document as :func:`encode_json`, faster.

    A float32 ``numpy`` embedding is written by Arrow in one vectorised, GIL-free pass for the
    whole batch (``pyarrow.compute.cast`` to string: the shortest text that reads back as the
    same float32; ``-0.0`` reads back as ``0.0``). The standard library's encoder writes every
    element of a float32 vector as the 17-digit repr of a double, one Python call each: 0.3 ms
    of GIL-held time per 384-dim record on the collector's flush thread, which is what made
    the serving thread wait (docs/serving-stacks.md). Everything else, and embeddings of other
    types or with non-finite values, goes through :func:`encode_json`'s rules (a NaN still
    raises :class:`BatchRejected`).
    """
    n = len(records)
    rows: list[int] = []
    vectors: list[np.ndarray] = []
    for i, rec in enumerate(records):
        vec = rec.get("embedding")
        if isinstance(vec, np.ndarray) and vec.ndim == 1 and vec.dtype == np.float32 and vec.size:
            rows.append(i)
            vectors.append(vec)
    texts: dict[int, str] = {}
    if vectors:
        flat = np.concatenate(vectors)
        if not np.isfinite(flat).all():  # left to the standard encoder (which refuses them)
            keep = [j for j, v in enumerate(vectors) if np.isfinite(v).all()]
            rows, vectors = [rows[j] for j in keep], [vectors[j] for j in keep]
            flat = np.concatenate(vectors) if vectors else flat[:0]
        if vectors:
            offsets = np.zeros(len(vectors) + 1, dtype=np.int32)
            np.cumsum([v.size for v in vectors], out=offsets[1:])
            values = pc.cast(pa.array(flat, type=pa.float32()), pa.string())
            joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), ",")
            texts = dict(zip(rows, joined.to_pylist(), strict=True))
    parts: list[str] = []
    for i, rec in enumerate(records):
        text = texts.get(i)
        if text is None:
            parts.append(_dumps(dict(rec), n))
            continue
        head = _dumps({k: v for k, v in rec.items() if k != "embedding"}, n)
        parts.append(f"{head[:-1]}{',' if len(head) > 2 else ''}\"embedding\":[{text}]}}")
    return ('{"records":[' + ",".join(parts) + "]}").encode("utf-8")


class HttpSink(Sink):
    """POST to a shiftwatch sidecar; spool to ``spool_dir`` while it is unreachable.

    Connection errors, timeouts, 401/403, 408, 429 and 5xx spool the batch;
    the spool is re-sent oldest first on the next send or tick (with
    exponential backoff up to ``max_backoff_s``). Re-sending is safe: the
    sidecar ignores ``event_id`` values it already has. A 401/403 is counted in
    :attr:`auth_failures` (the collector logs it, rate-limited) and, with
    ``token_file``, the token is read again before the next attempt (a rotated
    secret is picked up). A 422 naming rows refuses only those records: they are
    counted in :attr:`rejected` and the rest of the batch is posted again; a 422
    (or other 4xx) naming no rows is narrowed down by bisection, so a whole
    batch is never refused for one record. Heartbeats are never spooled (a newer
    one follows).

    Before posting, records the sidecar would refuse anyway are left out and counted
    (per-record checks; the embedding dimension only against dimensions the sidecar
    has accepted from this sink, since the sidecar, not the first record of a batch,
    decides a model version's dimension).
    """

    supports_heartbeat = True
    _RETRY_STATUS = frozenset({401, 403, 408, 425, 429})

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        token_file: str | Path | None = None,
        spool_dir: str | Path = "shiftwatch-collector-spool",
        max_spool_bytes: int = 256 * 1024 * 1024,
        timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        max_body_bytes: int = 8 * 1024 * 1024,
        transport: Any = None,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.token_file = Path(token_file) if token_file is not None else None
        self._token = read_token(token, self.token_file) if (token or token_file) else None
        self.spool = Spool(spool_dir, max_bytes=max_spool_bytes)
        self.rejected = 0
        self.auth_failures = 0
        self.delivery_failures = 0
        self.sent = 0
        self.max_backoff_s = max_backoff_s
        self.max_body_bytes = max_body_bytes
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._dims: dict[tuple[str, str], int] = {}  # accepted by the sidecar from this sink
        self._client = httpx.Client(timeout=timeout_s, headers={"content-type": "application/json"},
                                    transport=transport)

    # -- Sink interface -------------------------------------------------------------------
    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        records, n_bad = _prefilter(records, self._dims)
        self.rejected += n_bad
        return self._send_split(records)

    def _send_split(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Post (or spool) in bodies of at most ``max_body_bytes`` (the sidecar answers 413 past
        its own limit, and a refused body would be lost)."""
        if not records:
            return 0
        body = encode_records(records)
        if len(body) > self.max_body_bytes and len(records) > 1:
            half = len(records) // 2
            return self._send_split(records[:half]) + self._send_split(records[half:])
        return self._deliver_records(list(records), body)

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

    def spool_records(self, records: Sequence[Mapping[str, Any]]) -> int:
        kept, n_bad = _prefilter(records, self._dims)
        self.rejected += n_bad
        if not kept:
            return 0
        try:
            body = encode_records(kept)
        except BatchRejected:
            self.rejected += len(kept)
            return 0
        return len(kept) if self.spool.put("predictions", body, len(kept)) is not None else 0

    @property
    def spooled(self) -> int:
        return self.spool.pending_items()

    @property
    def spool_dropped(self) -> int:
        return self.spool.dropped

    def close(self) -> None:
        self._client.close()

    # -- internals ----------------------------------------------------------------------
    def _deliver_records(self, records: list[Mapping[str, Any]], body: bytes) -> int:
        """Post a records body now if nothing older waits (else spool); narrow a refusal down
        to the refused records. Returns the records delivered or spooled."""
        if not self._drain(force=self.spool.would_evict(len(body))):
            self.spool.put("predictions", body, len(records))
            return len(records)
        try:
            self._post("predictions", body)
        except SinkUnavailable:
            self._failed()
            self.spool.put("predictions", body, len(records))
            return len(records)
        except BatchRejected as exc:
            return self._narrow(records, exc)
        self.sent += len(records)
        self._learn_dims(records)
        return len(records)

    def _narrow(self, records: list[Mapping[str, Any]], exc: BatchRejected) -> int:
        """The sidecar refused ``records``: drop the rows it names and post the rest again, or
        bisect when it names none."""
        rows = {r for r in exc.rows if 0 <= r < len(records)}
        if rows:
            self.rejected += len(rows)
            _log_named(exc, records)
            rest = [rec for i, rec in enumerate(records) if i not in rows]
            return self._send_split(rest) if rest else 0
        if len(records) == 1:
            self.rejected += 1
            log.debug("record refused: event_id %r: %s", str(records[0].get("event_id"))[:80], exc)
            return 0
        half = len(records) // 2
        return self._send_split(records[:half]) + self._send_split(records[half:])

    def _learn_dims(self, records: Sequence[Mapping[str, Any]]) -> None:
        for rec in records:
            emb = rec.get("embedding")
            if emb is not None:
                key = (str(rec.get("model_name")), str(rec.get("model_version")))
                self._dims.setdefault(key, len(emb))

    def _deliver(self, kind: str, body: bytes, n: int) -> None:
        """Send now if nothing older waits; otherwise (or on failure) spool."""
        if self._drain(force=self.spool.would_evict(len(body))):
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

    def _drain(self, *, force: bool = False) -> bool:
        """Re-send spooled batches oldest first; True when the spool is empty.

        During the backoff after a failure nothing is tried, unless ``force``: spooling the next
        batch would evict older ones, so the sidecar is tried first — once it is back, records
        are never evicted just because the backoff has not run out."""
        batches = self.spool.batches()
        if not batches:
            return True
        if time.monotonic() < self._next_attempt and not force:
            return False
        for batch in batches:
            try:
                body = batch.read()
            except FileNotFoundError:
                continue
            try:
                self._post(batch.kind, body)
            except SinkUnavailable:
                self._failed()
                return False
            except BatchRejected as exc:
                self.spool.remove(batch)
                if batch.kind == "predictions":
                    self._narrow_spooled(body, exc, batch.n_items)
                else:
                    self.rejected += batch.n_items
                continue
            else:
                self.sent += batch.n_items
            self.spool.remove(batch)
        return True

    def _narrow_spooled(self, body: bytes, exc: BatchRejected, n_items: int) -> None:
        try:
            records = json.loads(body)["records"]
        except (ValueError, KeyError, TypeError):
            self.rejected += n_items
            return
        self._narrow(list(records), exc)

    def _failed(self) -> None:
        self.delivery_failures += 1
        self._backoff = min(self.max_backoff_s, max(0.1, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._token}"} if self._token else {}

    def _post(self, endpoint: str, body: bytes) -> None:
        import httpx

        try:
            resp = self._client.post(f"{self.url}/v1/{endpoint}", content=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise SinkUnavailable(f"{self.url}: {exc}") from exc
        if resp.status_code < 300:
            self._backoff = 0.0
            self._next_attempt = 0.0
            return
        if resp.status_code in (401, 403):
            self.auth_failures += 1
            if self.token_file is not None:  # a rotated secret: read it again for the next try
                with contextlib.suppress(ConfigError):
                    self._token = read_token(None, self.token_file)
        if resp.status_code >= 500 or resp.status_code in self._RETRY_STATUS:
            raise SinkUnavailable(f"{self.url}/v1/{endpoint}: HTTP {resp.status_code}")
        raise BatchRejected(f"{self.url}/v1/{endpoint}: HTTP {resp.status_code}: {resp.text[:300]}", 0,
                            rows=_named_rows(resp))


def _named_rows(resp: Any) -> tuple[int, ...]:
    """Row indices named by a 422 body ``{"errors": [{"row": i, ...}]}`` (empty when none)."""
    if resp.status_code != 422:
        return ()
    try:
        errors = resp.json().get("errors") or []
        return tuple(sorted({int(e["row"]) for e in errors
                             if isinstance(e, dict) and isinstance(e.get("row"), int)}))
    except (ValueError, AttributeError, TypeError):
        return ()


def _log_named(exc: BatchRejected, records: Sequence[Mapping[str, Any]]) -> None:
    if log.isEnabledFor(logging.DEBUG):
        for r in exc.rows[:10]:
            if 0 <= r < len(records):
                log.debug("record refused by the sidecar: row %d event_id %r", r,
                          str(records[r].get("event_id"))[:80])


def _prefilter(
    records: Sequence[Mapping[str, Any]], dims: Mapping[tuple[str, str], int]
) -> tuple[list[Mapping[str, Any]], int]:
    """Drop records the sidecar would refuse, and repeats of an event_id within the batch.

    Records are validated in groups of one (model, version, embedding length), so that the
    in-batch dimension rule (first row wins) never refuses records here: only a dimension the
    sidecar has already accepted (``dims``) is enforced locally.
    """
    groups: dict[tuple[Any, Any, int], list[int]] = {}
    for i, rec in enumerate(records):
        try:
            emb = rec.get("embedding")
            n = len(emb) if emb is not None else -1
            key = (rec.get("model_name"), rec.get("model_version"), n)
            hash(key)
        except (AttributeError, TypeError):
            key = (None, None, -2)
        groups.setdefault(key, []).append(i)
    bad: set[int] = set()
    for idx in groups.values():
        part = [records[i] for i in idx]
        _, errors = split_valid(part, embedding_dims=dims)
        bad.update(idx[e.row] for e in errors if 0 <= e.row < len(idx))
    seen: set[Any] = set()
    kept: list[Mapping[str, Any]] = []
    for i, rec in enumerate(records):
        if i in bad:
            continue
        eid = rec.get("event_id")
        if eid in seen:
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
        self.directory = private_dir(directory)
        self.lake_replica = lake_replica
        self.rejected = 0
        self.files_written = 0

    def send(self, records: Sequence[Mapping[str, Any]]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not records:
            return 0
        table, bad = split_valid(records)
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
            os.chmod(tmp, 0o600)
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
