"""shiftwatch: drift monitoring and closed-loop retraining for BERT-family text classifiers.

The public surface, importable from ``monitor`` directly::

    from monitor import Store, DriftSuite, DriftReport, create_app, Scheduler, Registry
    from monitor import load_policy, load_settings

    settings = load_settings("sidecar.yaml")          # Settings (env prefix SHIFTWATCH_)
    with Store(settings.db_path) as store:            # the DuckDB store, migrated on open
        window = store.read_window("support-sentiment", last_n=500)
    report = DriftSuite().fit(reference).compute(current)   # DriftReport: verdict + signals
    app = create_app(settings)                        # the sidecar (FastAPI), scheduler included

Names are resolved on first use (PEP 562), so ``import monitor`` stays light: the collectors in a
serving process import ``monitor.errors`` without pulling in DuckDB, FastAPI or Evidently. Deep
imports (``monitor.drift.suite`` …) keep working; the names here are the stable contract.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("shiftwatch")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

_EXPORTS: dict[str, str] = {
    "Settings": "monitor.settings",
    "load_settings": "monitor.settings",
    "Store": "monitor.store",
    "DriftResult": "monitor.drift.base",
    "DriftReport": "monitor.drift.suite",
    "DriftSuite": "monitor.drift.suite",
    "Policy": "monitor.policy",
    "load_policy": "monitor.actions",  # the policy loader that also checks action parameters
    "evaluate": "monitor.policy",
    "Registry": "monitor.registry",
    "ModelVersion": "monitor.registry",
    "Scheduler": "monitor.scheduler",
    "create_app": "monitor.server",
    "ShiftwatchError": "monitor.errors",
}

__all__ = [
    "DriftReport", "DriftResult", "DriftSuite", "ModelVersion", "Policy", "Registry", "Scheduler",
    "Settings", "ShiftwatchError", "Store", "__version__", "create_app", "evaluate", "load_policy",
    "load_settings",
]

if TYPE_CHECKING:
    from monitor.actions import load_policy
    from monitor.drift.base import DriftResult
    from monitor.drift.suite import DriftReport, DriftSuite
    from monitor.errors import ShiftwatchError
    from monitor.policy import Policy, evaluate
    from monitor.registry import ModelVersion, Registry
    from monitor.scheduler import Scheduler
    from monitor.server import create_app
    from monitor.settings import Settings, load_settings
    from monitor.store import Store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'monitor' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
