"""The lake's file layout (DESIGN §9) and its writers.

    <lake>/predictions/model=<m>/version=<v>/date=<YYYY-MM-DD>/hour=<HH>/replica=<id>-<uuid>.parquet
    <lake>/partials/model=<m>/version=<v>/date=<YYYY-MM-DD>/hour=<HH>/replica=<id>.parquet

A prediction file has one writer and is never appended to: each write is a
new ``<uuid>`` file, written as ``.tmp`` and renamed when complete. A partials
file holds one row per source slice of one replica-hour; it is rewritten
(again ``.tmp`` and rename) when the hour's prediction files change.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from monitor.errors import ConfigError, StoreError

__all__ = ["HourPartition", "list_partials", "list_predictions", "partial_path",
           "write_partials_file", "write_predictions"]

_VALUE = re.compile(r"^[A-Za-z0-9._+@-]+$")
_FILE = re.compile(r"^replica=(?P<replica>.+)-(?P<uuid>[0-9a-f]{32})\.parquet$")
_PARTIAL = re.compile(r"^replica=(?P<replica>.+)\.parquet$")


@dataclass(frozen=True, slots=True, order=True)
class HourPartition:
    """One replica's hour of one model version."""

    model_name: str
    model_version: str
    date: str
    hour: str
    replica: str

    @property
    def start(self) -> datetime:
        return datetime.strptime(f"{self.date} {self.hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)


def _check(value: str, what: str) -> str:
    if not _VALUE.match(value):
        raise ConfigError(f"lake: {what} '{value}' may hold only letters, digits and . _ + @ -")
    return value


def _hour_dir(root: Path, kind: str, model: str, version: str, date: str, hour: str) -> Path:
    return (root / kind / f"model={model}" / f"version={version}" / f"date={date}"
            / f"hour={hour}")


def write_predictions(lake: str | Path, table: pa.Table, *, replica: str) -> list[Path]:
    """Write validated prediction records into the lake, one new file per (model, version,
    UTC hour) they span; returns the files written."""
    root = Path(lake)
    _check(replica, "replica id")
    if table.num_rows == 0:
        return []
    ts = table["ts"].cast(pa.timestamp("us", tz="UTC"))
    hours = pc.strftime(ts, format="%Y-%m-%d %H").to_pylist()
    keys = [f"{m}\x00{v}\x00{h}" for m, v, h in zip(table["model_name"].to_pylist(),
                                                     table["model_version"].to_pylist(), hours,
                                                     strict=True)]
    written: list[Path] = []
    uniq, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    for i, key in enumerate(uniq.tolist()):
        model, version, dh = str(key).split("\x00")
        date, hour = dh.split(" ")
        folder = _hour_dir(root, "predictions", _check(model, "model_name"),
                           _check(version, "model_version"), date, hour)
        part = table.take(pa.array(np.flatnonzero(inverse == i)))
        written.append(_write_atomic(part, folder / f"replica={replica}-{uuid.uuid4().hex}.parquet"))
    return written


def _write_atomic(table: pa.Table, final: Path) -> Path:
    tmp = final.with_name(final.name + ".tmp")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        tmp.replace(final)
    except (OSError, pa.ArrowException) as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {final}: {exc}") from exc
    return final


def _walk(root: Path, kind: str) -> Iterator[tuple[str, str, str, str, Path]]:
    base = root / kind
    if not base.is_dir():
        return
    for path in sorted(base.glob("model=*/version=*/date=*/hour=*/replica=*.parquet")):
        hour_dir = path.parent
        parts = [p.name.partition("=")[2] for p in
                 (hour_dir.parent.parent.parent, hour_dir.parent.parent, hour_dir.parent, hour_dir)]
        yield parts[0], parts[1], parts[2], parts[3], path


def list_predictions(lake: str | Path) -> dict[HourPartition, list[Path]]:
    """Every replica-hour of the lake with its prediction files (sorted)."""
    out: dict[HourPartition, list[Path]] = {}
    for model, version, date, hour, path in _walk(Path(lake), "predictions"):
        m = _FILE.match(path.name)
        if m is None:
            continue
        out.setdefault(HourPartition(model, version, date, hour, m["replica"]), []).append(path)
    return dict(sorted(out.items()))


def partial_path(lake: str | Path, part: HourPartition) -> Path:
    """Where the partials of one replica-hour live."""
    return (_hour_dir(Path(lake), "partials", part.model_name, part.model_version, part.date,
                      part.hour) / f"replica={part.replica}.parquet")


def list_partials(lake: str | Path) -> dict[HourPartition, Path]:
    """Every partials file of the lake."""
    out: dict[HourPartition, Path] = {}
    for model, version, date, hour, path in _walk(Path(lake), "partials"):
        m = _PARTIAL.match(path.name)
        if m is not None:
            out[HourPartition(model, version, date, hour, m["replica"])] = path
    return dict(sorted(out.items()))


def write_partials_file(lake: str | Path, part: HourPartition, table: pa.Table) -> Path:
    """(Re)write one replica-hour's partials file atomically."""
    return _write_atomic(table, partial_path(lake, part))


def file_names(files: list[Path], lake: str | Path) -> list[str]:
    """Lake-relative names of prediction files (what a partial records as its sources)."""
    root = Path(lake)
    return sorted(str(f.relative_to(root)) for f in files)


