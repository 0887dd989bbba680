"""``retrain``: re-fine-tune the model through the closed loop.

The retrain service assembles data, trains a candidate with gradual unfreezing, evaluates it
and promotes or rejects it; this action only asks the context's :class:`ModelServices` for it
and records the outcome. In the sidecar the service starts the retrain in the background and
the action records its run id, so the drift cycle is not held up by training.
"""

from __future__ import annotations

from typing import Any, ClassVar

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams

__all__ = ["RetrainAction", "RetrainParams"]


class RetrainParams(ActionParams):
    """Parameters of :class:`RetrainAction` (``config``: fields of ``RetrainConfig``)."""

    config: dict[str, Any] | None = None


class RetrainAction(Action):
    """Retrain the alert's model through the context's :class:`ModelServices`."""

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
        done = context.model_services().retrain(str(context.alert["model_name"]),
                                                reason=self._reason(context), config=self.params.config)
        return ActionOutcome("ok", detail={"retrain": done})
