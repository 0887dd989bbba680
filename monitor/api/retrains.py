"""``/v1/retrains``: retrains as background jobs of the sidecar (:mod:`monitor.retrain.background`).

``POST /v1/retrains`` starts one (202 with its progress; 409 while the model has one running)
or, with ``dry_run``, answers the plan and time estimate (200). ``GET /v1/retrains/{id}`` is its
progress (steps done / total, phase, elapsed, ETA) merged with its ``retrain_runs`` record;
``DELETE /v1/retrains/{id}`` cancels it between two training steps.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from monitor import operations
from monitor.api.errors import ApiError
from monitor.api.ops import Body, call, run_op
from monitor.api.state import AppState, StateDep
from monitor.retrain.background import RetrainJobs

__all__ = ["router"]

router = APIRouter(tags=["retrains"])


class RetrainBody(Body):
    model: str
    reason: str = "requested by CLI"
    dry_run: bool = False
    #: fields of ``RetrainConfig`` (nested ``train`` and ``guard``), as in a policy file
    config: dict[str, Any] | None = None


def _jobs(state: AppState) -> RetrainJobs:
    if state.retrains is None:
        raise ApiError(503, "background retrains are not available (the app is starting or stopping)")
    jobs: RetrainJobs = state.retrains
    return jobs


def _start(jobs: RetrainJobs, model: str, reason: str, config: dict[str, Any] | None) -> dict[str, Any]:
    from monitor.retrain.service import RetrainConfig

    cfg = RetrainConfig.from_dict(config) if config else None
    return jobs.start(model, reason=reason, config=cfg).to_dict()


@router.post("/v1/retrains", response_model=None)
async def start_retrain(state: StateDep, body: RetrainBody) -> JSONResponse | dict[str, Any]:
    """Start a background retrain (202), or answer a dry run's plan and estimate (200)."""
    if body.dry_run:
        return await run_op(state, operations.retrain_now, model=body.model, reason=body.reason,
                            dry_run=True, config=body.config)
    progress = await call(_start, _jobs(state), body.model, body.reason, body.config)
    return JSONResponse(progress, status_code=202)


@router.get("/v1/retrains")
async def list_retrains(state: StateDep, model_name: str | None = None) -> dict[str, Any]:
    """Retrain runs, newest first, with live progress where this sidecar runs them."""
    return {"runs": await call(_jobs(state).runs, model_name)}


@router.get("/v1/retrains/{run_id}")
async def get_retrain(state: StateDep, run_id: str) -> dict[str, Any]:
    """Progress and record of one run (404 if unknown)."""
    return await call(_jobs(state).get, run_id)


@router.delete("/v1/retrains/{run_id}", status_code=202)
async def cancel_retrain(state: StateDep, run_id: str) -> dict[str, Any]:
    """Ask a running retrain to stop between two steps (it is then recorded as cancelled)."""
    jobs = _jobs(state)
    await call(jobs.cancel, run_id)
    return await call(jobs.get, run_id)
