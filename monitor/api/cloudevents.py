"""``POST /v1/cloudevents``: KServe / Seldon Core 1.x inference-logger events (DESIGN §10).

Point the serving stack's payload logger here (KServe ``logger: {mode: all, url:
http://shiftwatch:8686/v1/cloudevents}``). Both CloudEvents HTTP modes are accepted: binary
(``ce-*`` headers, JSON body — what both loggers send) and structured
(``Content-Type: application/cloudevents+json``).

The request and response halves are joined by ``ce-id`` (see :class:`monitor.cloudevents.PairBuffer`);
each joined pair becomes text-only records of the model ``?model=`` (default: the
``inferenceservicename`` extension) and version ``?version=`` (default: the registry's active
version), whose registered label names map the response's scores. The records are committed in
one transaction and then enriched like any text-only record (:mod:`monitor.enrich`).

Answers: ``202 {"status": "pending"}`` (half kept), ``202 {"status": "stored", "accepted": n,
"duplicates": d}``, ``202 {"status": "duplicate"}`` (this id was already joined); ``4xx
{"detail", "errors": [{"row": 0, "field", "message"}]}`` naming the attribute or data field of a
bad event (nothing is kept of it). The KServe logger cannot send an ``Authorization`` header:
with a token set, this route also takes it as the ``token`` query parameter.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from monitor.api.body import read_body
from monitor.api.errors import ApiError
from monitor.api.state import AppState, StateDep
from monitor.cloudevents import (
    EventError,
    Half,
    PairBuffer,
    pair_records,
    parse_binary,
    parse_structured,
    request_texts,
    response_outputs,
)
from monitor.errors import RecordError, RegistryError, SchemaError, StoreError

__all__ = ["buffer_of", "router"]

router = APIRouter(tags=["cloudevents"])

_lock = threading.Lock()


def buffer_of(request: Request, state: AppState) -> PairBuffer:
    """The app's join buffer (created on first use). Halves evicted unmatched are counted in
    ``shiftwatch_cloudevents_unmatched_total``; every ``/metrics`` scrape sweeps expired halves
    (so they are counted even when no further event arrives) and reports the rest as
    ``shiftwatch_cloudevents_pending``."""
    app_state = request.app.state
    with _lock:
        buf: PairBuffer | None = getattr(app_state, "cloudevents_buffer", None)
        if buf is None:
            unmatched = state.metrics.cloudevents_unmatched
            buf = PairBuffer(on_unmatched=lambda kind: unmatched.labels(kind=kind).inc())
            state.metrics.cloudevents_pending.set_function(buf.sweep)
            app_state.cloudevents_buffer = buf
    return buf


def _error(exc: EventError) -> ApiError:
    return ApiError(exc.status, f"invalid CloudEvent: {exc}; nothing was stored",
                    [RecordError(0, exc.field, exc.message)])


def _version(state: AppState, model: str, version: str | None, *,
             model_field: str) -> tuple[str, tuple[str, ...]]:
    from monitor.registry import Registry  # lazy: the registry module pulls the artifact helpers

    registry = Registry(state.open_store(), state.settings.registry_dir)
    try:
        mv = registry.get(model, version) if version else registry.active(model)
    except RegistryError as exc:
        raise EventError("version", str(exc)) from exc
    if mv is None:
        raise EventError(model_field,
                         f"model {model!r} has no active version in the registry; register one "
                         "or pass ?model=&version=")
    return mv.version, mv.preprocessing.labels


def _count(state: AppState, kind: str, outcome: str) -> None:
    state.metrics.cloudevents.labels(kind=kind, outcome=outcome).inc()


def handle_event(state: AppState, buffer: PairBuffer, headers: dict[str, str], body: bytes,
                 model: str | None, version: str | None) -> dict[str, Any]:
    """Parse one event, join it and store the pair once complete (runs in a worker thread)."""
    store = state.open_store()
    kind = "unknown"
    try:
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/cloudevents-batch+json":
            raise EventError("content-type", "batched CloudEvents are not supported", status=415)
        event = (parse_structured(body) if media == "application/cloudevents+json"
                 else parse_binary(headers, body))
        kind = event.kind
        model_name = model or event.service
        if not model_name:
            raise EventError("ce-inferenceservicename", "missing; send it or pass ?model=")
        model_version, labels = _version(state, model_name, version,
                                         model_field="model" if model else "ce-inferenceservicename")
        half = (Half(event, texts=request_texts(event.data)) if event.kind == "request"
                else Half(event, outputs=response_outputs(event.data, labels)))
        join = buffer.offer(f"{model_name}\x00{model_version}", half)
        if join.status != "joined":
            _count(state, kind, join.status)
            return {"status": join.status}
        records = pair_records(join, model_name=model_name, model_version=model_version, labels=labels)
    except EventError as exc:
        _count(state, kind, "rejected")
        raise _error(exc) from exc
    try:
        result = store.insert_predictions(records)
    except SchemaError as exc:
        _count(state, kind, "rejected")
        raise ApiError(422, f"the joined pair makes invalid records; nothing was stored: {exc}",
                       exc.errors) from exc
    except StoreError as exc:
        buffer.put_back(f"{model_name}\x00{model_version}", join)
        raise ApiError(503, f"the store could not commit the pair; retry: {exc}") from exc
    _count(state, kind, "joined")
    state.metrics.ingested.inc(result.accepted)
    state.metrics.duplicated.inc(result.duplicates)
    if state.enricher is not None and result.accepted:
        state.enricher.notify(model_name, model_version)
    return {"status": "stored", "accepted": result.accepted, "duplicates": result.duplicates}


@router.post("/v1/cloudevents", status_code=202)
async def post_cloudevent(
    request: Request,
    state: StateDep,
    model: Annotated[str | None, Query(max_length=200)] = None,
    version: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Take one inference-logger CloudEvent (binary or structured mode)."""
    body = await read_body(request, state.settings.max_body_bytes)
    buffer = buffer_of(request, state)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await state.run_ingest(handle_event, state, buffer, headers, body, model, version)

