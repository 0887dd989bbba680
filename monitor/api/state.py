"""What the app's lifespan opens and the routers use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from monitor.api.errors import ApiError
from monitor.enrich import Enricher
from monitor.metrics import ServerMetrics
from monitor.settings import Settings
from monitor.store import Store

__all__ = ["AppState", "StateDep", "get_state"]

_T = TypeVar("_T")


@dataclass
class AppState:
    """Per-app state: settings, metrics, and (between startup and shutdown) store and workers."""

    settings: Settings
    metrics: ServerMetrics
    store: Store | None = None
    enricher: Enricher | None = None
    scheduler: Any = None
    #: background retrains (:class:`monitor.retrain.background.RetrainJobs`), set by the lifespan
    retrains: Any = None
    #: at most this many request bodies are parsed and validated at once (memory bound: a
    #: parsed 16 MB JSON body is several times larger as Python objects; the store lock
    #: serialises the commits anyway)
    #: (created by the lifespan, inside the app's event loop)
    ingest_slots: anyio.CapacityLimiter | None = None

    async def run_ingest(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run blocking ingest work in a worker thread, bounded by :attr:`ingest_slots`."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.ingest_slots)

    def open_store(self) -> Store:
        """The open store, or a 503 when the app is not started."""
        if self.store is None:
            raise ApiError(503, "the store is not open (the app is starting or stopping)")
        return self.store


def get_state(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    state: AppState = request.app.state.shiftwatch
    return state


StateDep = Annotated[AppState, Depends(get_state)]
