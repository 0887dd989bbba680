"""The action interface: what a policy decision can do, and what doing it returned.

An :class:`Action` is configured once from validated parameters (its ``Params`` pydantic
model) and run with an :class:`ActionContext` (the alert, the store, the settings, loaders for
the window and its reference). :meth:`Action.run` never raises for a failure of the action
itself: it returns an :class:`ActionOutcome` with ``status="failed"`` and the error, so one
broken webhook cannot stop the other actions of a decision. ``dry_run=True`` performs
nothing and returns ``status="dry_run"`` with a description of what would have happened.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.errors import ActionError, ShiftwatchError

if TYPE_CHECKING:
    import pyarrow as pa

    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["Action", "ActionContext", "ActionOutcome", "ActionParams", "ModelServices", "OutcomeStatus"]

log = logging.getLogger(__name__)

OutcomeStatus = Literal["ok", "failed", "skipped", "dry_run"]


class ActionParams(BaseModel):
    """Base of every action's parameter model (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelServices(Protocol):
    """The model services the ``retrain`` and ``rollback`` actions call.

    Actions sit below the services (registry, retrain) in the layers, so they do not import
    them: whoever runs the actions passes an implementation in
    (:class:`monitor.services.LocalModelServices` in the scheduler). Each returns the JSON-ready
    detail the action records.
    """

    def retrain(self, model_name: str, *, reason: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Start (in the sidecar: in the background) or run a retrain of ``model_name``."""
        ...

    def rollback(self, model_name: str, *, to: str | None, reason: str) -> dict[str, Any]:
        """Make the previous (or ``to``) version of ``model_name`` active again."""
        ...


@dataclass(frozen=True, slots=True)
class ActionContext:
    """Everything an action may use.

    ``alert`` is the JSON-ready alert (alert_id, rule, severity, model_name, model_version,
    run_id, summary, evidence, created_at). ``window`` / ``reference`` load the drift run's
    current window and reference records on demand (``None`` when unknown). ``occurrence`` is
    n for the n-th action of the same kind in one decision (it keeps their outbox rows apart).
    ``services`` are the registry and retrain operations (``None``: retrain and rollback fail
    with an error saying so).
    """

    store: Store
    settings: Settings
    alert: Mapping[str, Any]
    now: datetime
    window: Callable[[], pa.Table] | None = None
    reference: Callable[[], pa.Table] | None = None
    occurrence: int = 1
    services: ModelServices | None = None

    def model_services(self) -> ModelServices:
        """The services, or :class:`ActionError` when this context has none."""
        if self.services is None:
            raise ActionError("no model services in this context (retrain and rollback need the "
                              "registry: run actions through the scheduler)")
        return self.services


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What one action run did; ``detail`` is JSON-ready (stored in ``actions.detail``)."""

    status: OutcomeStatus
    attempts: int = 1
    detail: dict[str, Any] = field(default_factory=dict)


class Action(ABC):
    """Base of every action; subclasses set ``kind``, ``Params`` and write :meth:`_run`."""

    kind: ClassVar[str] = ""
    Params: ClassVar[type[ActionParams]] = ActionParams

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.params = self.Params.model_validate(dict(params or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ActionError(f"action '{self.kind}': parameter '{where}': {err['msg']}") from exc

    def run(self, context: ActionContext, *, dry_run: bool) -> ActionOutcome:
        """Perform the action (or, with ``dry_run``, describe it); failures become outcomes."""
        if dry_run:
            return ActionOutcome("dry_run", attempts=0, detail={"would": self.describe(context)})
        try:
            return self._run(context)
        except ShiftwatchError as exc:
            log.warning("action %s failed for alert %s: %s", self.kind, context.alert.get("alert_id"), exc)
            return ActionOutcome("failed", detail={"error": f"{type(exc).__name__}: {exc}"})

    def describe(self, context: ActionContext) -> str:
        """One line saying what :meth:`run` would do."""
        return f"{self.kind} for {context.alert.get('model_name')} ({context.alert.get('rule')})"

    @abstractmethod
    def _run(self, context: ActionContext) -> ActionOutcome:
        """Do it; raise :class:`~monitor.errors.ShiftwatchError` subclasses on failure."""
