"""shiftwatch: drift monitoring and closed-loop retraining for BERT-family text classifiers.

The running system: settings, store, drift engine, policy, actions, scheduler,
retrain, registry, HTTP server and CLI. Heavy dependencies (torch,
transformers, evidently) are imported lazily by the modules that need them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shiftwatch")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
