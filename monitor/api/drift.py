"""``GET /v1/drift``: the latest drift run of each model (optionally ``?model_name=``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from monitor.api.errors import ApiError
from monitor.api.state import StateDep
from monitor.errors import StoreError
from monitor.persist.runs import stored_report

__all__ = ["latest_drift", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["drift"])


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def latest_drift(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON-ready rows of ``server_latest_drift``: timestamps ISO 8601, ``result`` the run's
    :class:`~monitor.drift.suite.DriftReport` (read back from the store) as its DESIGN §5 object,
    or ``None`` when the stored result cannot be read."""
    out = []
    for r in rows:
        item = {k: _iso(v) for k, v in r.items() if k != "result"}
        try:
            item["result"] = stored_report(r["result"]).to_dict() if r["result"] else None
        except StoreError as exc:
            log.warning("drift run %s: %s", r.get("run_id"), exc)
            item["result"] = None
        out.append(item)
    return out


@router.get("/v1/drift")
def get_drift(state: StateDep, model_name: str | None = None) -> dict[str, Any]:
    """The newest drift run per model with its per-signal results (DESIGN §5 JSON)."""
    store = state.open_store()
    try:
        rows = store.fetch_dicts("server_latest_drift", {"model_name": model_name})
    except StoreError as exc:
        raise ApiError(503, f"cannot read drift runs: {exc}") from exc
    return {"models": latest_drift(rows)}
