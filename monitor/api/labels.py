"""``POST /v1/labels``: delayed ground truth ``{"labels": [{event_id, label, labeled_at?, source?}]}``."""

from __future__ import annotations

import pyarrow as pa
from fastapi import APIRouter, Request

from monitor.api.body import check_fields, parse_json, read_body, surrogate_errors, take_batch
from monitor.api.errors import ApiError
from monitor.api.state import AppState, StateDep
from monitor.errors import SchemaError, StoreError

__all__ = ["router"]

router = APIRouter(tags=["labels"])

_LABEL_FIELDS = {"event_id": "str", "label": "str", "labeled_at": "str?", "source": "str?"}


def _store_labels(state: AppState, body: bytes) -> dict[str, int]:
    store = state.open_store()
    labels = take_batch(parse_json(body), "labels", state.settings.max_batch_records)
    problems = surrogate_errors(labels)
    for i, item in enumerate(labels):
        problems.extend(check_fields(i, item, _LABEL_FIELDS))
    if problems:
        raise ApiError(422, "invalid labels; nothing was written", problems[:100])
    try:
        n = store.insert_labels(labels)
    except SchemaError as exc:
        raise ApiError(422, f"invalid labels; nothing was written: {exc}", exc.errors) from exc
    except StoreError as exc:
        raise ApiError(503, f"the store could not commit the labels; retry: {exc}") from exc
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise ApiError(422, f"labels cannot be converted; nothing was written: {exc}") from exc
    state.metrics.labels.inc(n)
    return {"accepted": n}


@router.post("/v1/labels", status_code=202)
async def post_labels(request: Request, state: StateDep) -> dict[str, int]:
    """Upsert delayed labels; answer once they are committed."""
    body = await read_body(request, state.settings.max_body_bytes)
    return await state.run_ingest(_store_labels, state, body)
