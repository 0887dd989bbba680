"""``/v1/review``: export the review queue to a file for labelling, import the labelled file back.

Both files are paths on the sidecar's host (the CLI sends absolute paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from monitor import operations
from monitor.api.ops import Body, run_op
from monitor.api.state import StateDep

__all__ = ["router"]

router = APIRouter(tags=["review"])


class ExportBody(Body):
    out: str
    model: str | None = None
    all_rows: bool = False


class ImportBody(Body):
    file: str
    source: str = "review"


@router.post("/v1/review/export")
async def export_review(state: StateDep, body: ExportBody) -> dict[str, Any]:
    """Write queued rows (pending ones unless ``all_rows``) to ``out`` (.csv / .jsonl)."""
    return await run_op(state, operations.review_export, **body.model_dump())


@router.post("/v1/review/import")
async def import_review(state: StateDep, body: ImportBody) -> dict[str, Any]:
    """Store the labels of a filled-in export as delayed ground truth."""
    return await run_op(state, operations.review_import, **body.model_dump())
