"""What the app's lifespan opens and the routers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from monitor.api.errors import ApiError
from monitor.enrich import Enricher
from monitor.metrics import ServerMetrics
from monitor.settings import Settings
from monitor.store import Store

__all__ = ["AppState", "StateDep", "get_state"]


@dataclass
class AppState:
    """Per-app state: settings, metrics, and (between startup and shutdown) store and workers."""

    settings: Settings
    metrics: ServerMetrics
    store: Store | None = None
    enricher: Enricher | None = None
    scheduler: Any = None

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
