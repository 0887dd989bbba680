-- 051: retrain runs. Every statement is idempotent.

-- One row per retrain request: what was trained, the decision and why.
CREATE TABLE IF NOT EXISTS retrain_runs (
    run_id            VARCHAR PRIMARY KEY,
    model_name        VARCHAR NOT NULL,
    parent_version    VARCHAR,
    candidate_version VARCHAR,
    status            VARCHAR NOT NULL,  -- running | promoted | rejected | shadow | dry_run | failed
    reason            VARCHAR,
    reasons           JSON,
    metrics           JSON,
    config            JSON,
    error             VARCHAR,
    started_at        TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    finished_at       TIMESTAMPTZ
);
