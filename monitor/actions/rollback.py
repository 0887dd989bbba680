"""``rollback``: make the previously active model version active again (:mod:`monitor.registry`)."""

from __future__ import annotations

from typing import ClassVar

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams

__all__ = ["RollbackAction", "RollbackParams"]


class RollbackParams(ActionParams):
    """Parameters of :class:`RollbackAction`: ``to`` a given version (default: the previous one)."""

    to: str | None = None


class RollbackAction(Action):
    """Call ``Registry(store, settings.registry_dir).rollback(model_name, reason=...)``."""

    kind: ClassVar[str] = "rollback"
    Params = RollbackParams
    params: RollbackParams

    def describe(self, context: ActionContext) -> str:
        target = self.params.to or "the previous active version"
        return f"roll {context.alert.get('model_name')} back to {target}"

    def _run(self, context: ActionContext) -> ActionOutcome:
        from monitor.registry import Registry

        a = context.alert
        reason = f"policy rule {a.get('rule')} on drift run {a.get('run_id')} (alert {a.get('alert_id')})"
        mv = Registry(context.store, context.settings.registry_dir, settings=context.settings).rollback(
            str(a["model_name"]), to=self.params.to, reason=reason)
        return ActionOutcome("ok", detail={"from_version": a.get("model_version"),
                                           "active_version": mv.version})
