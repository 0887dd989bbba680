"""Operator routes without a resource of their own: ``POST /v1/ingest`` and ``/v1/exports`` (record
files on the sidecar's host), ``POST /v1/reports/render`` (HTML into a directory) and
``POST /v1/checks`` (one drift → policy → actions → reports cycle)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from monitor import operations
from monitor.api.ops import Body, run_op
from monitor.api.state import StateDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class IngestBody(Body):
    file: str
    skip_bad: bool = False


class ExportBody(Body):
    out: str
    model: str | None = None
    start: datetime | None = None
    end: datetime | None = None


class RenderBody(Body):
    out: str
    model: str | None = None
    run: str | None = None


class CheckBody(Body):
    dry_run: bool = False
    reports: bool = True
    retention: bool = False
    policy_file: str | None = None


@router.post("/v1/ingest")
async def ingest(state: StateDep, body: IngestBody) -> dict[str, Any]:
    """Import a Parquet / JSON Lines records file."""
    return await run_op(state, operations.ingest_file, **body.model_dump())


@router.post("/v1/exports")
async def export(state: StateDep, body: ExportBody) -> dict[str, Any]:
    """Export records to a Hive-partitioned Parquet dataset."""
    return await run_op(state, operations.export_records, **body.model_dump())


@router.post("/v1/reports/render")
async def render(state: StateDep, body: RenderBody) -> dict[str, Any]:
    """Render reports into ``out`` (``/reports/`` keeps serving ``settings.reports_dir``)."""
    return await run_op(state, operations.render_reports, **body.model_dump())


@router.post("/v1/checks")
async def check(state: StateDep, body: CheckBody) -> dict[str, Any]:
    """One cycle now, on the sidecar's scheduler when it runs one (never overlapping its own)."""
    return await run_op(state, operations.check, scheduler=state.scheduler, **body.model_dump())
