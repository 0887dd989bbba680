"""``rollback``: make the previously active model version active again (through the registry service)."""

from __future__ import annotations

from typing import ClassVar

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams

__all__ = ["RollbackAction", "RollbackParams"]


class RollbackParams(ActionParams):
    """Parameters of :class:`RollbackAction`: ``to`` a given version (default: the previous one)."""

    to: str | None = None


class RollbackAction(Action):
    """Roll the alert's model back through the context's :class:`ModelServices`."""

    kind: ClassVar[str] = "rollback"
    Params = RollbackParams
    params: RollbackParams

    def describe(self, context: ActionContext) -> str:
        target = self.params.to or "the previous active version"
        return f"roll {context.alert.get('model_name')} back to {target}"

    def _run(self, context: ActionContext) -> ActionOutcome:
        a = context.alert
        reason = f"policy rule {a.get('rule')} on drift run {a.get('run_id')} (alert {a.get('alert_id')})"
        done = context.model_services().rollback(str(a["model_name"]), to=self.params.to, reason=reason)
        return ActionOutcome("ok", detail={"from_version": a.get("model_version"), **done})
