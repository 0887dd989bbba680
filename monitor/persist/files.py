"""Drift between record files: the service behind ``shiftwatch drift --reference R --current C``.

References are read and fitted once per distinct path, so many (reference,
current) pairs in one process cost one fit per reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from monitor.drift.frame import DriftFrame
from monitor.drift.suite import DriftReport, DriftSuite
from monitor.errors import CalculatorError, ConfigError

__all__ = ["compare_files", "pair_files", "read_frame"]


def pair_files(references: Sequence[Path], currents: Sequence[Path]) -> list[tuple[Path, Path]]:
    """One reference for all currents, or as many references as currents (paired in order)."""
    if not references:
        raise ConfigError("give --reference")
    if not currents:
        raise ConfigError("give at least one --current")
    if len(references) == 1:
        return [(references[0], c) for c in currents]
    if len(references) != len(currents):
        raise ConfigError(f"--reference given {len(references)} times but --current {len(currents)} "
                          "times; give one reference, or exactly one per current")
    return list(zip(references, currents, strict=True))


def read_frame(path: Path) -> tuple[pa.Table, DriftFrame]:
    """Read and validate a record file; errors name the file (and row/field)."""
    from monitor.recordfile import read_records

    table, _ = read_records(path)
    try:
        return table, DriftFrame.from_arrow(table)
    except CalculatorError as exc:
        raise CalculatorError(f"{path}: {exc}") from exc


def compare_files(
    references: Sequence[Path],
    currents: Sequence[Path],
    *,
    signals: Sequence[str] | None = None,
    alpha: float = 0.01,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
) -> Iterator[tuple[Path, Path, DriftReport]]:
    """Yield ``(reference, current, report)`` per current window, in order.

    All files are validated before the first report is produced, so bad input
    fails fast with nothing half-printed.
    """
    pairs = pair_files(references, currents)
    DriftSuite(signals, alpha=alpha, options=options, seed=seed)  # validate configuration first
    frames = {p: read_frame(p)[1] for p in dict.fromkeys([p for pair in pairs for p in pair])}
    suites: dict[Path, DriftSuite] = {}
    for ref, cur in pairs:
        if ref not in suites:
            suites[ref] = DriftSuite(signals, alpha=alpha, options=options, seed=seed).fit(frames[ref])
        try:
            report = suites[ref].compute(frames[cur])
        except CalculatorError as exc:
            raise CalculatorError(f"{cur} vs {ref}: {exc}") from exc
        yield ref, cur, report
