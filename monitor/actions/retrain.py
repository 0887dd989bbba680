"""``retrain``: re-fine-tune the model through the closed loop (:mod:`monitor.retrain.service`).

The service assembles data, trains a candidate with gradual unfreezing, evaluates it and
promotes or rejects it; this action only calls it (imported lazily: torch is heavy) and
records its outcome. In the sidecar (background jobs attached to the store,
:func:`monitor.retrain.background.jobs_for`) it starts the retrain in the background and
records its run id, so the drift cycle is not held up by training.
"""

from __future__ import annotations

from typing import Any, ClassVar

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams

__all__ = ["RetrainAction", "RetrainParams"]


class RetrainParams(ActionParams):
    """Parameters of :class:`RetrainAction` (``config``: fields of ``RetrainConfig``)."""

    config: dict[str, Any] | None = None


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return repr(value)


class RetrainAction(Action):
    """Call ``monitor.retrain.service.retrain`` for the alert's model."""

    kind: ClassVar[str] = "retrain"
    Params = RetrainParams
    params: RetrainParams

    def describe(self, context: ActionContext) -> str:
        return f"retrain {context.alert.get('model_name')} (reason: {self._reason(context)})"

    @staticmethod
    def _reason(context: ActionContext) -> str:
        a = context.alert
        return f"policy rule {a.get('rule')} on drift run {a.get('run_id')} (alert {a.get('alert_id')})"

    def _run(self, context: ActionContext) -> ActionOutcome:
        from monitor.retrain.service import RetrainConfig, retrain

        config = RetrainConfig.from_dict(self.params.config) if self.params.config else None
        from monitor.retrain.background import jobs_for

        jobs = jobs_for(context.store)
        if jobs is not None:  # in the sidecar: train in the background, the drift cycle goes on
            started = jobs.start(str(context.alert["model_name"]), reason=self._reason(context),
                                 config=config)
            return ActionOutcome("ok", detail={"retrain": {"run_id": started.run_id, "background": True}})
        outcome = retrain(context.store, context.settings, str(context.alert["model_name"]),
                          reason=self._reason(context), dry_run=False, config=config)
        return ActionOutcome("ok", detail={"retrain": _jsonable(outcome)})
