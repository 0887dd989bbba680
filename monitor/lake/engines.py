"""Engines that read the lake and compute partials: DuckDB (embedded default) and Spark.

Both read the prediction files of a replica-hour, sort its rows by
``(event_id, ts)`` and hand each source slice to the same
:func:`monitor.lake.partials.partial_from_frame`; so on the same lake they
produce identical partials (the test suite checks it). DuckDB reads local
Parquet trees, and fsspec/S3 URLs where its ``httpfs`` extension is installed;
Spark (``pyspark``, master URL from settings) is for lakes that outgrow one
machine: it fans replica-hours out over executors with ``applyInPandas``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from monitor.drift.frame import DriftFrame
from monitor.drift.rff import RFFMap
from monitor.errors import ConfigError, StoreError
from monitor.lake.kll import DEFAULT_K
from monitor.lake.layout import HourPartition
from monitor.lake.partials import Partial, PartialKey, partial_from_frame, partials_from_arrow

__all__ = ["ENGINES", "DuckDBEngine", "LakeEngine", "SparkEngine", "make_engine",
           "partials_of_table"]

_COLUMNS = ("event_id", "predicted_label", "confidence", "probs", "embedding", "n_tokens",
            "n_unk", "truncated", "n_chars", "latency_ms", "source")


class LakeEngine(Protocol):
    """What ``fleet drift`` needs from an engine."""

    name: str

    def compute_partials(self, lake: Path, jobs: Mapping[HourPartition, Sequence[Path]], *,
                         n_features: int, rff_seed: int, sample_k: int, kll_k: int = DEFAULT_K
                         ) -> dict[HourPartition, list[Partial]]: ...

    def read_partials(self, files: Sequence[Path]) -> list[Partial]: ...

    def close(self) -> None: ...


def partials_of_table(part: HourPartition, table: pa.Table, files: Sequence[str], *,
                      n_features: int, rff_seed: int, sample_k: int,
                      kll_k: int = DEFAULT_K) -> list[Partial]:
    """The partials (one per source slice) of a replica-hour's rows, sorted by event id."""
    if table.num_rows == 0:
        return []
    sources = [str(s or "") for s in table["source"].to_pylist()]
    out = []
    for source in sorted(set(sources)):
        mask = pa.array(np.asarray(sources, dtype=object) == source)
        frame = DriftFrame.from_arrow(table.filter(mask))
        fmap = (RFFMap(dim=int(frame.embedding.shape[1]), n_features=n_features, seed=rff_seed)
                if frame.embedding is not None else None)
        key = PartialKey(part.model_name, part.model_version, part.date, part.hour, part.replica,
                         source)
        out.append(partial_from_frame(key, frame, feature_map=fmap, files=files,
                                      sample_k=sample_k, kll_k=kll_k))
    return out


class DuckDBEngine:
    """The embedded default: DuckDB reads the Parquet files (through the store's named SQL)."""

    name = "duckdb"

    def __init__(self) -> None:
        from monitor.store import Store

        self._store = Store(":memory:")

    def compute_partials(self, lake: Path, jobs: Mapping[HourPartition, Sequence[Path]], *,
                         n_features: int, rff_seed: int, sample_k: int, kll_k: int = DEFAULT_K
                         ) -> dict[HourPartition, list[Partial]]:
        out: dict[HourPartition, list[Partial]] = {}
        for part, files in sorted(jobs.items()):
            table = self._store.fetch_arrow("lake_read_predictions",
                                            {"files": [str(f) for f in files]})
            names = sorted(str(Path(f).relative_to(lake)) for f in files)
            out[part] = partials_of_table(part, table, names, n_features=n_features,
                                          rff_seed=rff_seed, sample_k=sample_k, kll_k=kll_k)
        return out

    def read_partials(self, files: Sequence[Path]) -> list[Partial]:
        if not files:
            return []
        table = self._store.fetch_arrow("lake_read_partials", {"files": [str(f) for f in files]})
        return partials_from_arrow(table)

    def close(self) -> None:
        self._store.close()


class SparkEngine:
    """pyspark over the same lake; ``master`` e.g. ``local[2]`` or ``spark://host:7077``."""

    name = "spark"

    def __init__(self, master: str = "local[2]", *, app_name: str = "shiftwatch-fleet",
                 conf: Mapping[str, str] | None = None) -> None:
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ConfigError("the spark engine needs pyspark: pip install 'shiftwatch[spark]' "
                              "and a Java 17 runtime") from exc
        builder = SparkSession.builder.master(master).appName(app_name)
        # Python workers run this interpreter (with shiftwatch and pyarrow) unless the operator
        # chose another with PYSPARK_PYTHON: the python3 on PATH may be a bare system one.
        # (Spark reads the variable when it starts a worker; the conf key alone is not enough
        # for pandas UDFs in local mode.)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        settings = {"spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
                    "spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false",
                    "spark.sql.execution.arrow.pyspark.enabled": "true",
                    "spark.sql.session.timeZone": "UTC", **dict(conf or {})}
        for k, v in settings.items():
            builder = builder.config(k, v)
        try:
            self._spark: Any = builder.getOrCreate()
        except Exception as exc:  # py4j/JVM start failures have no common base class
            raise StoreError(f"cannot start Spark ({master}): {exc}") from exc

    def compute_partials(self, lake: Path, jobs: Mapping[HourPartition, Sequence[Path]], *,
                         n_features: int, rff_seed: int, sample_k: int, kll_k: int = DEFAULT_K
                         ) -> dict[HourPartition, list[Partial]]:
        if not jobs:
            return {}
        import pandas as pd
        from pyspark.sql import functions as sf

        from monitor.lake.partials import PARTIAL_SCHEMA, partials_to_arrow

        names = {part: sorted(str(Path(f).relative_to(lake)) for f in files)
                 for part, files in jobs.items()}
        keys = sorted(jobs)
        file_job = self._spark.createDataFrame(
            [(name, i) for i, part in enumerate(keys) for name in names[part]],
            "rel string, job int")
        paths = [str(Path(f).resolve()) for part in keys for f in jobs[part]]
        df = (self._spark.read.option("mergeSchema", "true")
              .option("recursiveFileLookup", "true")  # no partition columns from the path
              .parquet(*paths))
        # the file a row came from, as its lake-relative name (input_file_name is a URI)
        rel = sf.regexp_extract(sf.url_decode(sf.input_file_name()), r"(predictions/.*)$", 1)
        df = df.withColumn("rel", rel)
        for c in _COLUMNS:
            if c not in df.columns:
                df = df.withColumn(c, sf.lit(None))
        df = df.join(sf.broadcast(file_job), on="rel").select("job", "ts", *_COLUMNS)
        cfg = (n_features, rff_seed, sample_k, kll_k)

        def per_job(pdf: pd.DataFrame) -> pd.DataFrame:
            job = int(pdf["job"].iloc[0])
            part = keys[job]
            pdf = pdf.sort_values(["event_id", "ts"], kind="stable")
            table = pa.Table.from_pandas(pdf.drop(columns=["job", "ts"]), preserve_index=False)
            parts = partials_of_table(part, table, names[part], n_features=cfg[0],
                                      rff_seed=cfg[1], sample_k=cfg[2], kll_k=cfg[3])
            out = partials_to_arrow(parts).to_pandas()
            out.insert(0, "job", job)
            return out

        schema = pa.schema([pa.field("job", pa.int64()), *PARTIAL_SCHEMA])
        from pyspark.sql.pandas.types import from_arrow_schema

        result = df.groupBy("job").applyInPandas(per_job, schema=from_arrow_schema(schema))
        rows = result.toArrow() if hasattr(result, "toArrow") else pa.Table.from_pandas(
            result.toPandas())
        by_job: dict[HourPartition, list[Partial]] = {part: [] for part in keys}
        jobs_col = rows["job"].to_pylist()
        parts_all = partials_from_arrow(rows.drop_columns(["job"]).cast(PARTIAL_SCHEMA))
        for j, p in zip(jobs_col, parts_all, strict=True):
            by_job[keys[int(j)]].append(p)
        return {part: sorted(ps, key=lambda p: p.key) for part, ps in by_job.items()}

    def read_partials(self, files: Sequence[Path]) -> list[Partial]:
        if not files:
            return []
        from monitor.lake.partials import PARTIAL_SCHEMA

        df = (self._spark.read.option("recursiveFileLookup", "true")
              .parquet(*[str(Path(f).resolve()) for f in files]))
        rows = df.toArrow() if hasattr(df, "toArrow") else pa.Table.from_pandas(df.toPandas())
        parts = partials_from_arrow(rows.select(PARTIAL_SCHEMA.names).cast(PARTIAL_SCHEMA))
        return sorted(parts, key=lambda p: p.key)

    def close(self) -> None:
        self._spark.stop()


ENGINES = ("duckdb", "spark")


def make_engine(name: str, *, spark_master: str = "local[2]") -> LakeEngine:
    """An engine by name (``duckdb`` or ``spark``)."""
    if name == "duckdb":
        return DuckDBEngine()
    if name == "spark":
        return SparkEngine(spark_master)
    raise ConfigError(f"unknown engine '{name}' (choose from {', '.join(ENGINES)})")
