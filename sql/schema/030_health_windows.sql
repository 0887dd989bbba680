-- Operational health per model version and window (the third monitoring layer beside
-- prediction behaviour and representation drift). Written by monitor.opshealth.save_health,
-- normally once per drift window by the scheduler (health_id = the drift run id then).
CREATE TABLE IF NOT EXISTS health_windows (
    health_id            VARCHAR PRIMARY KEY,
    run_id               VARCHAR,
    model_name           VARCHAR NOT NULL,
    model_version        VARCHAR,
    window_start         TIMESTAMPTZ,
    window_end           TIMESTAMPTZ,
    n_records            BIGINT NOT NULL,
    duration_s           DOUBLE,
    throughput_per_s     DOUBLE,
    latency_p50_ms       DOUBLE,
    latency_p95_ms       DOUBLE,
    latency_p99_ms       DOUBLE,
    n_errors             BIGINT NOT NULL,
    n_tokenizer_failures BIGINT NOT NULL,
    error_rate           DOUBLE,
    queue_depth_max      BIGINT,
    queue_capacity       BIGINT,
    dropped              BIGINT,
    sink_failures        BIGINT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
