"""Actions a policy decision can take: ``notify``, ``review``, ``retrain``, ``rollback``, ``command``.

:func:`build_action` makes one from its kind and parameters (modules are imported on first
use); :func:`run_decision_actions` (in :mod:`monitor.actions.runner`) runs a decision's actions
with idempotency keys and records each in the ``actions`` table.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams
from monitor.errors import ActionError

__all__ = ["ACTIONS", "Action", "ActionContext", "ActionOutcome", "ActionParams", "action_class",
           "build_action"]

#: kind -> "module:Class" (imported lazily).
ACTIONS: dict[str, str] = {
    "notify": "monitor.actions.notify:NotifyAction",
    "review": "monitor.actions.review:ReviewAction",
    "retrain": "monitor.actions.retrain:RetrainAction",
    "rollback": "monitor.actions.rollback:RollbackAction",
    "command": "monitor.actions.command:CommandAction",
}


def action_class(kind: str) -> type[Action]:
    """The :class:`Action` subclass of ``kind``."""
    try:
        module, name = ACTIONS[kind].split(":")
    except KeyError as exc:
        raise ActionError(f"unknown action kind '{kind}'; known: {', '.join(ACTIONS)}") from exc
    cls: type[Action] = getattr(importlib.import_module(module), name)
    return cls


def build_action(kind: str, params: Mapping[str, Any] | None = None) -> Action:
    """An action of ``kind`` configured with ``params`` (validated; :class:`ActionError` if bad)."""
    return action_class(kind)(params)
