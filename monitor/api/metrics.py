"""``GET /metrics``: Prometheus text exposition (DB-backed values read at scrape time)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from monitor.api.state import StateDep
from monitor.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
def get_metrics(state: StateDep) -> Response:
    """Every metric of this app (runs in the threadpool: the DB queries block)."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
