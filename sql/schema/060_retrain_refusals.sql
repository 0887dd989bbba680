-- 060: retrains refused for too few labelled rows, re-tried once enough labels arrive.
-- Every statement is idempotent.

-- One row per refused retrain run (its run in retrain_runs has status 'failed'): how many
-- labelled rows it needed, how many it found, and the retrain it asked for (reason, config),
-- so the sidecar can start it again; retried_run_id is set once it has.
CREATE TABLE IF NOT EXISTS retrain_refusals (
    run_id          VARCHAR PRIMARY KEY,
    model_name      VARCHAR NOT NULL,
    needed          INTEGER NOT NULL,
    found           INTEGER NOT NULL,
    reason          VARCHAR,
    config          JSON,
    refused_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    retried_run_id  VARCHAR,
    retried_at      TIMESTAMPTZ
);
