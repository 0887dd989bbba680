-- Watermarks of the sidecar's export into the fleet lake (DESIGN §9): every record ingested
-- at or before `ingested_until` has been written to the lake as new prediction files.
CREATE TABLE IF NOT EXISTS lake_exports (
    ingested_until TIMESTAMPTZ NOT NULL PRIMARY KEY,
    rows           BIGINT NOT NULL,
    files          INTEGER NOT NULL,
    lake           VARCHAR NOT NULL,
    replica        VARCHAR NOT NULL,
    exported_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
