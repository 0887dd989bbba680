"""Actions a policy decision can take: ``notify``, ``review``, ``retrain``, ``rollback``, ``command``.

:func:`build_action` makes one from its kind and parameters (modules are imported on first
use); :func:`run_decision_actions` (in :mod:`monitor.actions.runner`) runs a decision's actions
with idempotency keys and records each in the ``actions`` table.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor import policy as _policy
from monitor.actions.base import Action, ActionContext, ActionOutcome, ActionParams
from monitor.errors import ActionError
from monitor.policy import Policy

__all__ = ["ACTIONS", "Action", "ActionContext", "ActionOutcome", "ActionParams", "action_class",
           "build_action", "check_action_params", "load_policy", "parse_policy"]

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


def check_action_params(kind: str, params: Mapping[str, Any]) -> None:
    """Validate ``params`` with the model of action ``kind`` (pydantic ``ValidationError``)."""
    action_class(kind).Params.model_validate(params)


def load_policy(path: str | Path | None = None) -> Policy:
    """:func:`monitor.policy.load_policy` with every action's parameters checked at load time."""
    return _policy.load_policy(path, check_params=check_action_params)


def parse_policy(text: str, *, origin: str = "<policy>") -> Policy:
    """:func:`monitor.policy.parse_policy` with every action's parameters checked."""
    return _policy.parse_policy(text, origin=origin, check_params=check_action_params)
