"""Fleet drift: partials on demand, merged per model/version/hour (and per group), tested.

    windows = fleet_drift(lake, reference_file, engine="duckdb", by="replica")
    for w in windows: print(json.dumps(w.to_dict()))

A window is one UTC hour of one model version, merged over every replica and
source; with ``by`` each (hour, replica) or (hour, source) is reported as well.
``since``/``until`` (UTC dates, inclusive) restrict the range: backfilling a
past month is re-merging its partials. Partials missing for a replica-hour, or
stale because its prediction files changed, are computed first and written to
``partials/``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from monitor.drift.frame import DriftFrame
from monitor.drift.rff import RFFMap
from monitor.drift.suite import DriftReport
from monitor.errors import ConfigError
from monitor.lake.engines import LakeEngine, make_engine
from monitor.lake.kll import DEFAULT_K
from monitor.lake.layout import (
    HourPartition,
    file_names,
    list_partials,
    list_predictions,
    write_partials_file,
)
from monitor.lake.partials import SAMPLE_K, Partial, PartialKey, merge_partials, partial_from_frame
from monitor.lake.signals import report_from_partials, sketch_comparisons

__all__ = ["FleetWindow", "GroupBy", "LakeConfig", "ensure_partials", "fleet_drift",
           "reference_partial"]

log = logging.getLogger(__name__)

GroupBy = Literal["replica", "source"]


@dataclass(frozen=True, slots=True)
class LakeConfig:
    """How partials are built (fixed per lake: partials with other values do not merge)."""

    n_features: int = 64
    rff_seed: int = 0
    sample_k: int = SAMPLE_K
    kll_k: int = DEFAULT_K


@dataclass(frozen=True, slots=True)
class FleetWindow:
    """One merged window (or one group of it) and its drift report."""

    model_name: str
    model_version: str
    date: str
    hour: str
    group: dict[str, str] | None
    report: DriftReport
    partials: int
    #: informational comparisons of the KLL-sketched columns (never part of the verdict)
    sketches: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """DESIGN §5's JSON object with the window, and ``group`` when grouped (§9)."""
        start = HourPartition(self.model_name, self.model_version, self.date, self.hour, "").start
        out = {"model_name": self.model_name, "model_version": self.model_version,
               "window": {"start": start.isoformat(),
                          "end": (start + timedelta(hours=1)).isoformat()},
               **self.report.to_dict()}
        if self.group is not None:
            out["group"] = dict(self.group)
        out["partials"] = self.partials
        if self.sketches:
            out["sketches"] = self.sketches
        return out


def _in_range(part: HourPartition, since: date | None, until: date | None) -> bool:
    d = date.fromisoformat(part.date)
    return (since is None or d >= since) and (until is None or d <= until)


def ensure_partials(lake: str | Path, engine: LakeEngine, *, config: LakeConfig = LakeConfig(),
                    since: date | None = None, until: date | None = None
                    ) -> dict[HourPartition, list[Partial]]:
    """The partials of every replica-hour in range, computing (and writing) missing or stale
    ones; a partials file is stale when its recorded source files differ from the lake's."""
    from monitor.lake.partials import partials_to_arrow

    root = Path(lake)
    predictions = {p: f for p, f in list_predictions(root).items() if _in_range(p, since, until)}
    existing = {p: f for p, f in list_partials(root).items() if _in_range(p, since, until)}
    have: dict[HourPartition, list[Partial]] = {}
    if existing:
        by_part: dict[HourPartition, list[Partial]] = {}
        for stat in engine.read_partials(list(existing.values())):
            k = stat.key
            by_part.setdefault(HourPartition(k.model_name, k.model_version, k.date, k.hour,
                                             k.replica), []).append(stat)
        have = by_part
    todo: dict[HourPartition, list[Path]] = {}
    for part, files in predictions.items():
        got = have.get(part)
        names = tuple(file_names(files, root))
        if (got is None or any(p.files != names for p in got)
                or any(_config_of(p) not in (None, replace(config, kll_k=DEFAULT_K))
                       for p in got)
                or any(p.sketches is None or any(k.k != config.kll_k for k in p.sketches.values())
                       for p in got)):
            todo[part] = files
    if todo:
        log.info("computing partials of %d replica-hour(s) with %s", len(todo), engine.name)
        computed = engine.compute_partials(root, todo, n_features=config.n_features,
                                           rff_seed=config.rff_seed, sample_k=config.sample_k,
                                           kll_k=config.kll_k)
        for part, parts in computed.items():
            write_partials_file(root, part, partials_to_arrow(parts))
            have[part] = parts
    return {p: have[p] for p in sorted(have) if _in_range(p, since, until)
            and (p in predictions or p in existing)}


def _config_of(part: Partial) -> LakeConfig | None:
    fmap = part.feature_map
    if fmap is None:
        return None
    return LakeConfig(n_features=fmap.n_features, rff_seed=fmap.seed, sample_k=part.sample_k)


def reference_partial(reference: DriftFrame, *, config: LakeConfig = LakeConfig()) -> Partial:
    """The reference window's statistics, built with the lake's feature map."""
    fmap = (RFFMap(dim=int(reference.embedding.shape[1]), n_features=config.n_features,
                   seed=config.rff_seed) if reference.embedding is not None else None)
    return partial_from_frame(PartialKey("reference", "", "", "", ""), reference,
                              feature_map=fmap, sample_k=config.sample_k, kll_k=config.kll_k)


def fleet_drift(lake: str | Path, reference: DriftFrame | Partial, *,
                engine: str | LakeEngine = "duckdb", by: GroupBy | None = None,
                since: date | None = None, until: date | None = None, alpha: float = 0.01,
                min_rows: int = 20, config: LakeConfig = LakeConfig(),
                spark_master: str = "local[2]") -> list[FleetWindow]:
    """Drift of every model/version/hour in range (and of each group with ``by``)."""
    if by not in (None, "replica", "source"):
        raise ConfigError(f"--by must be replica or source, got '{by}'")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    ref = reference if isinstance(reference, Partial) else reference_partial(reference,
                                                                             config=config)
    eng = make_engine(engine, spark_master=spark_master) if isinstance(engine, str) else engine
    try:
        parts = ensure_partials(lake, eng, config=config, since=since, until=until)
    finally:
        if isinstance(engine, str):
            eng.close()
    return windows_of(parts, ref, by=by, alpha=alpha, min_rows=min_rows)


def windows_of(parts: dict[HourPartition, list[Partial]], reference: Partial, *,
               by: GroupBy | None = None, alpha: float = 0.01, min_rows: int = 20
               ) -> list[FleetWindow]:
    """Merge partials per model/version/hour (and per group) and test each against the
    reference."""
    hours: dict[tuple[str, str, str, str], list[Partial]] = {}
    for hp, ps in parts.items():
        hours.setdefault((hp.model_name, hp.model_version, hp.date, hp.hour), []).extend(ps)
    out: list[FleetWindow] = []
    for (model, version, d, h), ps in sorted(hours.items()):
        out.append(_window(model, version, d, h, None, ps, reference, alpha, min_rows))
        if by is None:
            continue
        groups: dict[str, list[Partial]] = {}
        for p in ps:
            groups.setdefault(p.key.replica if by == "replica" else p.key.source, []).append(p)
        for g, gps in sorted(groups.items()):
            out.append(_window(model, version, d, h, {by: g}, gps, reference, alpha, min_rows))
    return out


def _window(model: str, version: str, d: str, h: str, group: dict[str, str] | None,
            parts: Sequence[Partial], reference: Partial, alpha: float, min_rows: int
            ) -> FleetWindow:
    key = PartialKey(model, version, d, h, (group or {}).get("replica", "*"),
                     (group or {}).get("source", "*"))
    merged = merge_partials(list(parts), key)
    report = report_from_partials(reference, merged, alpha=alpha, min_rows=min_rows)
    return FleetWindow(model, version, d, h, group, report, len(parts),
                       sketch_comparisons(reference, merged, alpha=alpha, min_rows=min_rows))


