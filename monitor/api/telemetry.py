"""Collector telemetry: ``POST /v1/errors`` (serving errors, tokenizer failures) and
``POST /v1/heartbeat`` (queue depth, drops, sink failures), stored through
:mod:`monitor.health` (which validates every field: a bad item is a 422 naming row and field,
nothing written) in ``serving_errors`` / ``collector_heartbeats``.

Shapes (DESIGN §6, collectors' ``HttpSink``)::

    {"errors": [{"ts", "model_name", "model_version", "kind", "message", "source"}]}
    {"collector_id", "ts", "model_name", "model_version", "queue_depth", "queue_capacity",
     "dropped", "sink_failures", "spooled", "sent"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Request

from monitor import health
from monitor.api.body import parse_json, read_body, take_batch
from monitor.api.errors import ApiError
from monitor.api.state import AppState, StateDep
from monitor.errors import SchemaError, ShiftwatchError, StoreError

__all__ = ["router"]

router = APIRouter(tags=["telemetry"])

def _insert(state: AppState, fn: str, rows: list[Mapping[str, Any]]) -> int:
    store = state.open_store()
    try:
        n = getattr(health, fn)(store, rows)
    except SchemaError as exc:
        raise ApiError(422, f"invalid {fn.removeprefix('insert_')}; nothing was written: {exc}",
                       exc.errors) from exc
    except StoreError as exc:
        raise ApiError(503, f"the store could not commit; retry: {exc}") from exc
    except (ShiftwatchError, pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise ApiError(422, f"invalid {fn.removeprefix('insert_')}; nothing was written: {exc}") from exc
    return int(n) if isinstance(n, int) else len(rows)


def _store_errors(state: AppState, body: bytes) -> dict[str, int]:
    items = take_batch(parse_json(body), "errors", state.settings.max_batch_records)
    n = _insert(state, "insert_serving_errors", items)
    state.metrics.errors_reported.inc(len(items))
    return {"accepted": n}


def _store_heartbeat(state: AppState, body: bytes) -> dict[str, int]:
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise ApiError(422, "expected a heartbeat JSON object")
    n = _insert(state, "insert_heartbeats", [payload])
    state.metrics.heartbeats.inc()
    return {"accepted": n}


@router.post("/v1/errors", status_code=202)
async def post_errors(request: Request, state: StateDep) -> dict[str, int]:
    """Store serving errors / tokenizer failures reported by a collector."""
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.run_ingest(_store_errors, state, body)


@router.post("/v1/heartbeat", status_code=202)
async def post_heartbeat(request: Request, state: StateDep) -> dict[str, int]:
    """Store one collector heartbeat."""
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.run_ingest(_store_heartbeat, state, body)
