"""``POST /v1/labels``: delayed ground truth ``{"labels": [{event_id, label, labeled_at?, source?}]}``.

Items are checked by the record codec (:func:`collectors.codec.labels_to_table`): names by the
name rule, ``labeled_at`` by the timestamp rule of predictions, and one event_id at most once
per request (a repeat is a 422 naming its row). ``accepted`` counts the labels stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from monitor.api.body import parse_json, read_body, take_batch
from monitor.api.errors import ApiError
from monitor.api.state import AppState, StateDep
from monitor.errors import SchemaError, StoreError

__all__ = ["router"]

router = APIRouter(tags=["labels"])

def _store_labels(state: AppState, body: bytes) -> dict[str, int]:
    store = state.open_store()
    labels = take_batch(parse_json(body), "labels", state.settings.max_batch_records)
    try:
        n = store.insert_labels(labels)
    except SchemaError as exc:
        raise ApiError(422, f"invalid labels; nothing was written: {exc}", exc.errors) from exc
    except StoreError as exc:
        raise ApiError(503, f"the store could not commit the labels; retry: {exc}") from exc
    state.metrics.labels.inc(n)
    return {"accepted": n}


@router.post("/v1/labels", status_code=202)
async def post_labels(request: Request, state: StateDep) -> dict[str, int]:
    """Upsert delayed labels; answer once they are committed."""
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.run_ingest(_store_labels, state, body)
