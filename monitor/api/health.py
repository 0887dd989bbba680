"""``GET /healthz``: liveness and store readiness (no token needed, no details leaked)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from monitor import __version__
from monitor.api.state import StateDep
from monitor.errors import StoreError

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
