"""``GET /healthz``: liveness and store readiness (no token needed, no details leaked);
``GET /v1/health``: the stored operational-health windows of a model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from monitor import __version__
from monitor.api.errors import ApiError
from monitor.api.state import StateDep
from monitor.errors import StoreError
from monitor.opshealth import health_history

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def get_healthz(state: StateDep) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the store answers, else 503."""
    store = state.store
    if store is None:
        return JSONResponse({"status": "starting", "version": __version__}, status_code=503)
    try:
        store.fetchall_sql("SELECT 1")
    except StoreError:
        return JSONResponse({"status": "store_unavailable", "version": __version__}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


@router.get("/v1/health")
def get_health_windows(state: StateDep, model_name: str, limit: int = 100) -> dict[str, Any]:
    """Stored operational-health windows of ``model_name``, newest first (at most ``limit``)."""
    if not 1 <= limit <= 10_000:
        raise ApiError(422, "limit must be between 1 and 10000")
    store = state.open_store()
    try:
        rows = health_history(store, model_name, limit=limit)
    except StoreError as exc:
        raise ApiError(503, f"cannot read health windows: {exc}") from exc
    return {"model_name": model_name,
            "windows": [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
                        for r in rows]}
