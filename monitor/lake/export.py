"""The sidecar's export job: newly ingested records into the fleet lake's ``predictions/``.

Each run writes the records ingested since the previous run's watermark (up to
``now − grace``, so a batch still being committed is left for the next run) as
new files, one per model version and UTC hour, and records the new watermark
in ``lake_exports``. A late record (old ``ts``, new ingestion) lands as a new
file in its old hour; ``fleet drift`` then sees that hour's files changed and
recomputes its partials. Files are never appended to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from monitor.lake.layout import write_predictions
from monitor.store import Store

__all__ = ["export_to_lake"]


def export_to_lake(store: Store, lake: str | Path, replica: str, *, now: datetime,
                   grace: timedelta = timedelta(seconds=60)) -> dict[str, Any]:
    """Export newly ingested records; returns ``{"rows", "files", "ingested_until"}``."""
    from collectors.schema import ARROW_SCHEMA

    until = now - grace
    with store.transaction():
        rows = store.execute("lake_export_watermark")
        after = rows[0][0] if rows else None
        if after is not None and after >= until:
            return {"rows": 0, "files": 0, "ingested_until": after.isoformat()}
        table = store.fetch_arrow("lake_export_rows", {"after": after, "until": until})
        table = table.cast(ARROW_SCHEMA) if table.num_rows else pa.Table.from_pylist(
            [], schema=ARROW_SCHEMA)
        files = write_predictions(lake, table, replica=replica)
        store.execute("lake_export_record", {"until": until, "rows": table.num_rows,
                                             "n_files": len(files), "lake": str(lake),
                                             "replica": replica})
    return {"rows": int(table.num_rows), "files": len(files), "ingested_until": until.isoformat()}
