"""``POST /v1/drift/checks``: test a stored window against a reference set now (a recorded drift run)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from monitor import operations
from monitor.api.ops import Body, run_op
from monitor.api.state import StateDep

__all__ = ["router"]

router = APIRouter(tags=["drift"])


class WindowBody(Body):
    model: str
    model_version: str | None = None
    reference_name: str | None = None
    last: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    signals: list[str] | None = None
    alpha: float = 0.01
    options: dict[str, dict[str, Any]] | None = None
    seed: int = 0


@router.post("/v1/drift/checks")
async def check_window(state: StateDep, body: WindowBody) -> dict[str, Any]:
    """DESIGN §5 JSON of the window, plus its ``run_id``."""
    return await run_op(state, operations.drift_window, **body.model_dump())
