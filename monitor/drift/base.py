"""The drift-calculator protocol and its result.

A calculator is configured in ``__init__`` (keyword-only), learns from a
reference with :meth:`DriftCalculator.fit` and tests a current window with
:meth:`DriftCalculator.compute`. Subclasses implement ``_fit`` and
``_compute``; the base checks sample sizes, turns too few rows into
``insufficient_data`` (never a silent "no drift") and translates unexpected
numerical failures into ``status="error"`` results.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self, cast

from monitor.drift.frame import DriftFrame
from monitor.errors import CalculatorError

__all__ = ["DriftCalculator", "DriftResult", "Status"]

log = logging.getLogger(__name__)

Status = Literal["ok", "insufficient_data", "error"]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """The outcome of one signal on one window (DESIGN §4, JSON shape of §5)."""

    signal: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    status: Status = "ok"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary; non-finite floats become ``None``."""
        return {
            "signal": self.signal,
            "method": self.method,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "status": self.status,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "details": _jsonable(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        """Rebuild a result from :meth:`to_dict` output; :class:`KeyError` / :class:`ValueError`
        / :class:`TypeError` when a required field is missing or malformed."""
        status = str(data.get("status", "ok"))
        if status not in ("ok", "insufficient_data", "error"):
            raise ValueError(f"signal {data.get('signal')!r}: unknown status {status!r}")
        return cls(signal=str(data["signal"]), method=str(data["method"]),
                   statistic=_optional_float(data.get("statistic")),
                   p_value=_optional_float(data.get("p_value")), threshold=float(data["threshold"]),
                   drifted=bool(data["drifted"]), n_reference=int(data["n_reference"]),
                   n_current=int(data["n_current"]), status=cast(Status, status),
                   details=dict(data.get("details") or {}))


def _optional_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays and non-finite floats for JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return _finite(value)
    return value


class DriftCalculator(ABC):
    """Base of every signal calculator.

    Class attributes ``signal`` and ``method`` name the result; ``min_rows``
    is the smallest sample (per side) for which the test is meaningful.
    """

    signal: str = ""
    method: str = ""

    def __init__(self, *, threshold: float = 0.01, min_rows: int = 20) -> None:
        if not threshold > 0:
            raise CalculatorError(f"{type(self).__name__}: threshold must be positive")
        self.threshold = threshold
        self.min_rows = min_rows
        self._n_reference: int | None = None

    def fit(self, reference: DriftFrame) -> Self:
        """Learn whatever the test needs from the reference window."""
        self._n_reference = self._count(reference)
        if self._n_reference >= self.min_rows:
            self._fit(reference)
        return self

    def compute(self, current: DriftFrame) -> DriftResult:
        """Test the current window against the fitted reference."""
        if self._n_reference is None:
            raise CalculatorError(f"{type(self).__name__}: call fit() before compute()")
        n_cur = self._count(current)
        if self._n_reference < self.min_rows or n_cur < self.min_rows:
            return self.result(
                statistic=None, p_value=None, drifted=False, n_current=n_cur,
                status="insufficient_data",
                details={"min_rows": self.min_rows,
                         "reason": f"needs at least {self.min_rows} rows on each side"},
            )
        try:
            return self._compute(current)
        except CalculatorError:
            raise
        except (ArithmeticError, ValueError, RuntimeError, MemoryError, IndexError) as exc:
            log.exception("%s/%s failed", self.signal, self.method)
            return self.result(statistic=None, p_value=None, drifted=False, n_current=n_cur,
                               status="error", details={"error": f"{type(exc).__name__}: {exc}"})

    def result(
        self,
        *,
        statistic: float | None,
        p_value: float | None,
        drifted: bool,
        n_current: int,
        status: Status = "ok",
        details: dict[str, Any] | None = None,
    ) -> DriftResult:
        """Build a result carrying this calculator's names, threshold and reference size."""
        return DriftResult(
            signal=self.signal, method=self.method, statistic=statistic, p_value=p_value,
            threshold=self.threshold, drifted=drifted, n_reference=self._n_reference or 0,
            n_current=n_current, status=status, details=details or {},
        )

    def _count(self, frame: DriftFrame) -> int:
        """Rows usable by this signal (override when a column may be absent)."""
        return frame.n

    @abstractmethod
    def _fit(self, reference: DriftFrame) -> None: ...

    @abstractmethod
    def _compute(self, current: DriftFrame) -> DriftResult: ...
