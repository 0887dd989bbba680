"""The model services the policy's actions call: registry rollback and retrain.

:class:`LocalModelServices` implements :class:`monitor.actions.base.ModelServices` over this
process's store, settings and (inside the sidecar) its background retrain jobs. The scheduler
hands it to the actions; the actions themselves import no service module, so the layers run one
way (actions → services → scheduler).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.settings import Settings
    from monitor.store import Store

__all__ = ["LocalModelServices"]


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else repr(value)


class LocalModelServices:
    """Registry and retrain operations on ``store`` with ``settings``."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def retrain(self, model_name: str, *, reason: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """In the sidecar (background jobs attached to the store): start the retrain in the
        background and return its run id; elsewhere run it now and return its outcome."""
        from monitor.retrain.background import jobs_for
        from monitor.retrain.service import RetrainConfig, retrain

        cfg = RetrainConfig.from_dict(config) if config else None
        jobs = jobs_for(self.store)
        if jobs is not None:
            started = jobs.start(model_name, reason=reason, config=cfg)
            return {"run_id": started.run_id, "background": True}
        outcome = retrain(self.store, self.settings, model_name, reason=reason, dry_run=False, config=cfg)
        out: dict[str, Any] = _jsonable(outcome)
        return out

    def rollback(self, model_name: str, *, to: str | None, reason: str) -> dict[str, Any]:
        """Roll ``model_name`` back (the registry announces it through the outbox)."""
        from monitor.registry import Registry

        mv = Registry(self.store, self.settings.registry_dir, settings=self.settings).rollback(
            model_name, to=to, reason=reason)
        return {"active_version": mv.version}
