"""The embedding dimension of a model version: read, declare, reset.

    GET    /v1/models/{model_name}/versions/{model_version}/embedding-dim
    PUT    /v1/models/{model_name}/versions/{model_version}/embedding-dim   {"dim": 384}
    DELETE /v1/models/{model_name}/versions/{model_version}/embedding-dim

A version's dimension comes from the registry (registered with one), from a declaration
(``PUT``), or from the first accepted record with an embedding. ``DELETE`` forgets it, so the
next accepted record fixes it again (the fix for a stray first record of the wrong size).
Records already stored are never touched.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from monitor.api.body import parse_json, read_body
from monitor.api.errors import ApiError
from monitor.api.state import AppState, StateDep
from monitor.errors import SchemaError, StoreError
from monitor.store import MAX_EMBEDDING_DIM

__all__ = ["MAX_NAME_CHARS", "router"]

router = APIRouter(tags=["models"])

#: model names and versions in paths are at most this long (and carry no control characters)
MAX_NAME_CHARS = 200
_PATH = "/v1/models/{model_name}/versions/{model_version}/embedding-dim"


def _check(model_name: str, model_version: str) -> None:
    for field, value in (("model_name", model_name), ("model_version", model_version)):
        if not value.strip() or len(value) > MAX_NAME_CHARS:
            raise ApiError(422, f"{field} must have 1 to {MAX_NAME_CHARS} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ApiError(422, f"{field} must not contain control characters")


def _out(row: dict[str, Any] | None, model_name: str, model_version: str) -> dict[str, Any]:
    if row is None:
        return {"model_name": model_name, "model_version": model_version, "dim": None,
                "origin": None, "set_at": None}
    set_at = row.get("set_at")
    return {"model_name": model_name, "model_version": model_version, "dim": int(row["dim"]),
            "origin": row["origin"], "set_at": set_at.isoformat() if set_at is not None else None}


def _get(state: AppState, model_name: str, model_version: str) -> dict[str, Any]:
    store = state.open_store()
    try:
        return _out(store.embedding_dim(model_name, model_version), model_name, model_version)
    except StoreError as exc:
        raise ApiError(503, f"cannot read the embedding dimension: {exc}") from exc


def _declare(state: AppState, model_name: str, model_version: str, body: bytes) -> dict[str, Any]:
    payload = parse_json(body)
    dim = payload.get("dim") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or set(payload) != {"dim"}:
        raise ApiError(422, 'expected {"dim": <integer>}')
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_EMBEDDING_DIM:
        raise ApiError(422, f"dim must be an integer in [1, {MAX_EMBEDDING_DIM}]")
    store = state.open_store()
    try:
        store.declare_embedding_dim(model_name, model_version, dim)
    except SchemaError as exc:
        raise ApiError(422, str(exc), exc.errors) from exc
    except StoreError as exc:
        raise ApiError(503, f"cannot declare the embedding dimension; retry: {exc}") from exc
    return _get(state, model_name, model_version)


def _reset(state: AppState, model_name: str, model_version: str) -> dict[str, Any]:
    store = state.open_store()
    try:
        previous = store.reset_embedding_dim(model_name, model_version)
    except StoreError as exc:
        raise ApiError(503, f"cannot reset the embedding dimension; retry: {exc}") from exc
    return {**_out(None, model_name, model_version), "previous_dim": previous}


@router.get(_PATH)
async def get_embedding_dim(model_name: str, model_version: str, state: StateDep) -> dict[str, Any]:
    """The embedding dimension of a model version (``dim: null`` when none is fixed yet)."""
    _check(model_name, model_version)
    return await state.run_ingest(_get, state, model_name, model_version)


@router.put(_PATH)
async def put_embedding_dim(model_name: str, model_version: str, request: Request,
                            state: StateDep) -> dict[str, Any]:
    """Declare the embedding dimension of a model version (``{"dim": 384}``)."""
    _check(model_name, model_version)
    body = await read_body(request, 4096)
    return await state.run_ingest(_declare, state, model_name, model_version, body)


@router.delete(_PATH)
async def delete_embedding_dim(model_name: str, model_version: str, state: StateDep) -> dict[str, Any]:
    """Forget the embedding dimension; the next accepted record with an embedding fixes it."""
    _check(model_name, model_version)
    return await state.run_ingest(_reset, state, model_name, model_version)
