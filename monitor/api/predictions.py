"""``POST /v1/predictions``: ingest a batch of prediction records.

``202 {"accepted": n, "duplicates": d}`` is sent only after the batch is committed to DuckDB
(202 means durable). A bad batch is answered ``422`` listing each bad row and field, and
nothing of it is written. Re-sent ``event_id`` values count as duplicates (idempotent retries);
the same ``event_id`` twice *within* one batch is a client bug and rejected. Text-only records
are committed as they are and enriched in place afterwards (see :mod:`monitor.enrich`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from collectors.codec import records_to_table
from monitor.api.body import parse_json, read_body, take_batch
from monitor.api.errors import ApiError
from monitor.api.state import AppState, StateDep
from monitor.errors import RecordError, SchemaError, StoreError

__all__ = ["ingest", "router"]

router = APIRouter(tags=["predictions"])


def _duplicate_rows(records: list[Mapping[str, Any]]) -> list[RecordError]:
    first: dict[Any, int] = {}
    out: list[RecordError] = []
    for i, rec in enumerate(records):
        eid = rec.get("event_id")
        if not isinstance(eid, str):
            continue
        if eid in first:
            out.append(RecordError(i, "event_id", f"repeats the event_id of row {first[eid]} in this batch"))
        else:
            first[eid] = i
    return out


def _needs_enrichment(records: list[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {
        (str(r["model_name"]), str(r["model_version"]))
        for r in records
        if r.get("text") is not None and (r.get("embedding") is None or r.get("n_tokens") is None)
    }


def ingest(state: AppState, body: bytes) -> dict[str, int]:
    """Parse, validate and commit one batch (runs in a worker thread)."""
    store = state.open_store()
    started = time.perf_counter()
    records = take_batch(parse_json(body), "records", state.settings.max_batch_records)
    problems = _duplicate_rows(records)
    if problems:
        state.metrics.rejected.inc(len(records))
        raise ApiError(422, f"{len(problems)} problem(s) in the batch; nothing was written",
                       sorted(problems, key=lambda e: e.row)[:100])
    try:
        # the codec's conversion and checks run here, outside the store's lock (against the
        # dimensions known now); the store re-checks the table vectorised under its lock
        table, _ = records_to_table(records, embedding_dims=store.embedding_dims())
        result = store.insert_predictions(table)
    except SchemaError as exc:
        state.metrics.rejected.inc(len(records))
        raise ApiError(422, f"invalid records; nothing was written: {exc}", exc.errors,
                       event_ids=[r.get("event_id") if isinstance(r, Mapping) else None
                                  for r in records]) from exc
    except StoreError as exc:
        raise ApiError(503, f"the store could not commit the batch; retry: {exc}") from exc
    state.metrics.ingested.inc(result.accepted)
    state.metrics.duplicated.inc(result.duplicates)
    state.metrics.ingest_seconds.observe(time.perf_counter() - started)
    if state.enricher is not None and result.accepted:
        for model_name, model_version in _needs_enrichment(records):
            state.enricher.notify(model_name, model_version)
    return {"accepted": result.accepted, "duplicates": result.duplicates}


@router.post("/v1/predictions", status_code=202)
async def post_predictions(request: Request, state: StateDep) -> dict[str, int]:
    """Commit a batch of prediction records; answer only once they are durable."""
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.run_ingest(ingest, state, body)
