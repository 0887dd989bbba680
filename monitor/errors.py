"""The shiftwatch exception hierarchy.

    ShiftwatchError         base of everything shiftwatch raises on purpose
    ├── ConfigError         a settings value, policy file or option is invalid
    ├── StoreError          DuckDB could not be opened, migrated, read or written
    │   └── NotFoundError       a named thing (drift run, reference set …) does not exist
    ├── SchemaError         one or more prediction records are malformed (carries RecordError rows)
    ├── CalculatorError     a drift calculator was misused (not fitted, wrong dims, NaN input)
    ├── PolicyError         a policy file is invalid or a rule cannot be evaluated
    ├── ActionError         an action (webhook, command, retrain, rollback) failed
    ├── RegistryError       a model version is missing, or a promotion/rollback is impossible
    ├── RetrainError        training data is insufficient or a training run failed
    │   ├── InsufficientLabels  too few labelled production rows (``needed``, ``found``)
    │   └── RetrainCancelled    an operator cancelled the run between two training steps
    └── SidecarError        the running sidecar refused a request or cannot be reached

Third-party errors (duckdb, pyarrow, httpx, torch) are translated at the module
boundary that calls them, with ``raise X(...) from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ActionError",
    "CalculatorError",
    "ConfigError",
    "InsufficientLabels",
    "NotFoundError",
    "PolicyError",
    "RecordError",
    "RegistryError",
    "RetrainCancelled",
    "RetrainError",
    "SchemaError",
    "ShiftwatchError",
    "SidecarError",
    "StoreError",
]


class ShiftwatchError(Exception):
    """Base class of every error shiftwatch raises on purpose."""


class ConfigError(ShiftwatchError):
    """A setting, option or configuration file is invalid."""


class StoreError(ShiftwatchError):
    """The DuckDB store could not be opened, migrated, read or written."""


class NotFoundError(StoreError):
    """A named thing (a drift run, a reference set, a retrain run) does not exist (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class RecordError:
    """One problem with one field of one record.

    ``row`` is the 0-based position of the record in its batch or file
    (for JSON Lines files, the 1-based line number is ``row + 1``).
    """

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: field {self.field}: {self.message}"


class SchemaError(ShiftwatchError):
    """One or more prediction records are malformed.

    ``errors`` lists every problem found (capped); ``source`` names the file or
    endpoint the records came from, when known.
    """

    def __init__(self, errors: Sequence[RecordError], source: str | None = None) -> None:
        self.errors: tuple[RecordError, ...] = tuple(errors)
        self.source = source
        first = str(self.errors[0]) if self.errors else "invalid records"
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{first}{more}")


class CalculatorError(ShiftwatchError):
    """A drift calculator was misused: not fitted, wrong dimensions, NaN input."""


class PolicyError(ShiftwatchError):
    """A policy file is invalid or a rule cannot be evaluated."""


class ActionError(ShiftwatchError):
    """An action (webhook, command, retrain, rollback) failed."""


class RegistryError(ShiftwatchError):
    """A model version is missing, or a promotion or rollback is impossible."""


class RetrainError(ShiftwatchError):
    """Training data is insufficient or a training run failed."""


class InsufficientLabels(RetrainError):
    """Too few labelled production rows to retrain: ``needed`` rows, ``found`` so far."""

    def __init__(self, message: str, *, needed: int, found: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.found = found


class RetrainCancelled(RetrainError):
    """A retrain was cancelled; the trainer stopped between two steps and nothing was registered."""


class SidecarError(ShiftwatchError):
    """The running sidecar answered a request with an error (``status``), or cannot be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
