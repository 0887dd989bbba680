"""The fleet lake: partitioned Parquet prediction files, mergeable window partials, engines.

    layout    paths of ``predictions/`` and ``partials/``; writing and listing files
    partials  :class:`Partial`, the mergeable statistics of one (replica, hour, source)
    signals   a DriftReport from a merged reference partial and a merged current partial
    engines   reading the lake: DuckDB (embedded default) or Spark
    fleet     ``fleet drift`` / ``fleet report``: partials on demand, merge, test, group
"""
