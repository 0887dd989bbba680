-- 002: what collectors report besides predictions. Idempotent (IF NOT EXISTS).

-- Serving errors and tokenizer failures reported by collectors (POST /v1/errors, log_error()).
CREATE TABLE IF NOT EXISTS serving_errors (
    ts            TIMESTAMPTZ NOT NULL,
    model_name    VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    message       VARCHAR NOT NULL,
    source        VARCHAR,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Periodic collector heartbeats (POST /v1/heartbeat); counters are cumulative per collector.
CREATE TABLE IF NOT EXISTS collector_heartbeats (
    collector_id   VARCHAR NOT NULL,
    ts             TIMESTAMPTZ NOT NULL,
    model_name     VARCHAR,
    model_version  VARCHAR,
    queue_depth    BIGINT NOT NULL,
    queue_capacity BIGINT NOT NULL,
    dropped        BIGINT NOT NULL,
    sink_failures  BIGINT NOT NULL,
    spooled        BIGINT NOT NULL,
    sent           BIGINT NOT NULL,
    PRIMARY KEY (collector_id, ts)
);
