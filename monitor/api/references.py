"""``/v1/references``: named drift reference sets — create (from a file or a stored window), list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from monitor import operations
from monitor.api.ops import Body, run_op
from monitor.api.state import StateDep

__all__ = ["router"]

router = APIRouter(tags=["references"])


class ReferenceBody(Body):
    name: str
    from_file: str | None = None
    model: str | None = None
    model_version: str | None = None
    last: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    replace: bool = False


@router.get("/v1/references")
async def list_references(state: StateDep, model_name: str | None = None) -> dict[str, Any]:
    """Reference sets, newest first."""
    return {"references": await run_op(state, operations.reference_list, model=model_name)}


@router.post("/v1/references", status_code=201)
async def create_reference(state: StateDep, body: ReferenceBody) -> dict[str, Any]:
    """Create a reference set (``from_file`` is a path on the sidecar's host)."""
    return await run_op(state, operations.reference_create, **body.model_dump())
