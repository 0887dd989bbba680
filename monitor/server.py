"""The sidecar: ``create_app(settings)`` builds the FastAPI app of DESIGN §6.

The lifespan opens the :class:`~monitor.store.Store` (unless one is passed in), reconciles the
registry's ACTIVE pointers with the DB (:meth:`monitor.registry.Registry.recover`), starts the
zero-instrumentation :class:`~monitor.enrich.Enricher` and — with ``start_scheduler=True`` —
the ops :class:`monitor.scheduler.Scheduler`, and stops all of them in ``finally`` (the store
last, and only if the app opened it). Handlers are thin routers in :mod:`monitor.api`; all
DuckDB work runs in the threadpool, never on the event loop, and the store's lock serialises
writers.

Guarantees: ``POST /v1/predictions`` answers 202 only after the batch is committed; a
re-sent ``event_id`` is counted as a duplicate and not stored twice; a bad batch is a 4xx
listing rows and fields with nothing written; the body size and batch size are bounded
(413); every path but ``/healthz`` needs the bearer token (``settings.bearer_token()``: a token
or token file is required unless ``settings.auth == "off"``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from monitor import __version__
from monitor.api import (
    cloudevents,
    drift,
    embedding_dims,
    health,
    labels,
    metrics,
    models,
    ops_routes,
    predictions,
    references,
    retrains,
    review,
    telemetry,
    windows,
)
from monitor.api.auth import BearerAuth
from monitor.api.errors import ApiError, api_error_handler
from monitor.api.reports import reports_app
from monitor.api.state import AppState
from monitor.discovery import remove_discovery, write_discovery
from monitor.enrich import EncoderResolver, Enricher, registry_resolver
from monitor.metrics import ServerMetrics
from monitor.settings import Settings
from monitor.store import Store

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _recover_registry(settings: Settings, store: Store) -> None:
    """Reconcile the registry's ACTIVE pointers with the DB (a crash between a promotion's
    commit and its pointer write); the sidecar is the process that owns the DB."""
    try:
        from monitor.registry import Registry

        repaired = Registry(store, settings.registry_dir, settings=settings).recover()
    except Exception:  # a broken registry must not keep the ingest API down
        log.exception("registry recovery failed")
        return
    if repaired:
        log.warning("registry pointers repaired on start: %s", ", ".join(repaired))


def _start_scheduler(settings: Settings, store: Store) -> Any:
    from monitor.scheduler import Scheduler  # lazy: APScheduler and the ops stack

    scheduler = Scheduler(settings, store)
    scheduler.start()
    return scheduler


def _start_retrains(settings: Settings, store: Store, server_metrics: ServerMetrics, *, retry: bool) -> Any:
    from monitor.retrain.background import RetrainJobs, register_metrics

    jobs = RetrainJobs(store, settings).attach()
    register_metrics(jobs, server_metrics.registry)
    if retry:
        jobs.start_retry_loop(settings.drift_interval_s)
    return jobs


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
              for e in exc.errors()]
    return JSONResponse({"detail": "invalid request parameters", "errors": errors}, status_code=422)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    start_scheduler: bool = True,
    enrich: bool = True,
    encoder_resolver: EncoderResolver | None = None,
    enrich_sweep_s: float = 30.0,
    discovery_url: str | None = None,
) -> FastAPI:
    """Build the sidecar app.

    ``store``: use this open store instead of opening ``settings.db_path`` (the caller keeps
    ownership and closes it). ``start_scheduler``: run the drift/policy/report jobs in this
    process. ``enrich``: compute embeddings and tokenizer stats of text-only records, with
    encoders from ``encoder_resolver`` (default: the model registry under
    ``settings.registry_dir``); ``enrich_sweep_s`` is the period of the catch-up sweep.
    ``discovery_url``: write the discovery file beside the DB advertising this URL while the
    app runs (:mod:`monitor.discovery`; ``shiftwatch serve`` does). Background retrains
    (:mod:`monitor.retrain.background`) always run in the app; the retry of refused ones runs
    with the scheduler.
    """
    token = settings.bearer_token()  # ConfigError: no app is built without a token by accident
    if token is None:
        log.warning("authentication is OFF (SHIFTWATCH_AUTH=off / --no-auth): every route is open "
                    "to anyone who can reach %s:%d", settings.host, settings.port)
    state = AppState(settings=settings, metrics=ServerMetrics(lambda: state.store))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        state.ingest_slots = anyio.CapacityLimiter(4)
        state.store = store if store is not None else await run_in_threadpool(Store, settings.db_path)
        scheduler: Any = None
        try:
            settings.reports_dir.mkdir(parents=True, exist_ok=True)
            await run_in_threadpool(_recover_registry, settings, state.store)
            if enrich:
                resolver = encoder_resolver or registry_resolver(state.store, settings.registry_dir)
                state.enricher = Enricher(state.store, resolver, metrics=state.metrics,
                                          sweep_interval_s=enrich_sweep_s)
                state.enricher.start()
            state.retrains = _start_retrains(settings, state.store, state.metrics, retry=start_scheduler)
            if start_scheduler:
                scheduler = await run_in_threadpool(_start_scheduler, settings, state.store)
                state.scheduler = scheduler
            if discovery_url is not None:
                write_discovery(settings.db_path, discovery_url)
            log.info("shiftwatch sidecar %s ready on %s", __version__, settings.db_path)
            yield
        finally:
            if discovery_url is not None:
                remove_discovery(settings.db_path)
            if state.retrains is not None:
                await run_in_threadpool(state.retrains.shutdown)
                state.retrains = None
            if scheduler is not None:
                try:
                    await run_in_threadpool(scheduler.shutdown)
                except Exception:  # shutting down must go on to close the store
                    log.exception("scheduler shutdown failed")
            state.scheduler = None
            if state.enricher is not None:
                await run_in_threadpool(state.enricher.stop)
                state.enricher = None
            opened, state.store = state.store, None
            if owned and opened is not None:
                await run_in_threadpool(opened.close)

    app = FastAPI(title="shiftwatch sidecar", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.shiftwatch = state
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for module in (predictions, labels, telemetry, drift, embedding_dims, metrics, health, cloudevents,
                   models, references, review, retrains, windows, ops_routes):
        app.include_router(module.router)
    app.mount("/reports", reports_app(settings.reports_dir), name="reports")
    app.add_middleware(BearerAuth, token=token, metrics=state.metrics)
    return app
