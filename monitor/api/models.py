"""``/v1/models``: the model registry — list, show, register, promote, rollback, shadow decisions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from monitor import operations
from monitor.api.ops import Body, run_op
from monitor.api.state import StateDep

__all__ = ["router"]

router = APIRouter(tags=["models"])


class RegisterBody(Body):
    """A model directory **on the sidecar's host** to register."""

    directory: str
    name: str
    version: str | None = None
    train_file: str | None = None
    labels: list[str] | None = None
    max_length: int = 128
    truncation_side: str = "right"
    pooling: str = "mean"
    activate: bool = False
    embedding_dim: int | None = None


class PromoteBody(Body):
    version: str
    reason: str = "promoted by CLI"
    webhook: str | None = None


class RollbackBody(Body):
    to: str | None = None
    reason: str = "rolled back by CLI"
    webhook: str | None = None


class ShadowBody(Body):
    model: str | None = None
    version: str | None = None
    min_rows: int | None = None


@router.get("/v1/models")
async def list_models(state: StateDep, model_name: str | None = None) -> dict[str, Any]:
    """Model versions (of ``model_name``), oldest first."""
    return {"versions": await run_op(state, operations.models_list, model=model_name)}


@router.get("/v1/models/{model_name}/versions/{version}")
async def show_model(state: StateDep, model_name: str, version: str) -> dict[str, Any]:
    """One version (``active`` for the active one) with its registry events."""
    return await run_op(state, operations.models_show, model=model_name, version=version)


@router.post("/v1/models", status_code=201)
async def register_model(state: StateDep, body: RegisterBody) -> dict[str, Any]:
    """Register a model directory on the sidecar's host as a new version."""
    return await run_op(state, operations.models_register, **body.model_dump())


@router.post("/v1/models/shadow")
async def decide_shadow(state: StateDep, body: ShadowBody) -> dict[str, Any]:
    """Decide pending shadow candidates (promote / reject / still waiting)."""
    return {"checks": await run_op(state, operations.models_shadow, **body.model_dump())}


@router.post("/v1/models/{model_name}/promote")
async def promote(state: StateDep, model_name: str, body: PromoteBody) -> dict[str, Any]:
    """Make a version active (DB + ACTIVE pointer)."""
    return await run_op(state, operations.promote, model=model_name, **body.model_dump())


@router.post("/v1/models/{model_name}/rollback")
async def rollback(state: StateDep, model_name: str, body: RollbackBody) -> dict[str, Any]:
    """Restore the previous (or a named) version."""
    return await run_op(state, operations.rollback, model=model_name, **body.model_dump())
