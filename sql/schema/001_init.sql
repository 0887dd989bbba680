-- 001: core tables. Every statement is idempotent (IF NOT EXISTS).

CREATE TABLE IF NOT EXISTS predictions (
    event_id        VARCHAR PRIMARY KEY,
    ts              TIMESTAMPTZ NOT NULL,
    model_name      VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    predicted_label VARCHAR NOT NULL,
    confidence      DOUBLE NOT NULL,
    probs           FLOAT[],
    embedding       FLOAT[],
    n_tokens        INTEGER,
    n_unk           INTEGER,
    truncated       BOOLEAN,
    n_chars         INTEGER,
    latency_ms      DOUBLE,
    text            VARCHAR,
    text_sha256     VARCHAR,
    source          VARCHAR,
    label           VARCHAR,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- The embedding dimension of each model version, fixed by its first embedding.
CREATE TABLE IF NOT EXISTS embedding_dims (
    model_name    VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    dim           INTEGER NOT NULL,
    PRIMARY KEY (model_name, model_version)
);

-- Delayed ground truth.
CREATE TABLE IF NOT EXISTS labels (
    event_id   VARCHAR PRIMARY KEY,
    label      VARCHAR NOT NULL,
    labeled_at TIMESTAMPTZ NOT NULL,
    source     VARCHAR
);

CREATE TABLE IF NOT EXISTS model_versions (
    model_name     VARCHAR NOT NULL,
    version        VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,  -- candidate | active | rejected | retired
    parent_version VARCHAR,
    artifact_dir   VARCHAR,
    preprocessing  JSON,
    metrics        JSON,
    reason         VARCHAR,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    activated_at   TIMESTAMPTZ,
    PRIMARY KEY (model_name, version)
);

-- Named reference sets; their rows are copies of prediction records.
CREATE TABLE IF NOT EXISTS reference_sets (
    name          VARCHAR PRIMARY KEY,
    model_name    VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    origin        VARCHAR,
    n_rows        BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS reference_rows (
    reference_name  VARCHAR NOT NULL,
    event_id        VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    model_name      VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    predicted_label VARCHAR NOT NULL,
    confidence      DOUBLE NOT NULL,
    probs           FLOAT[],
    embedding       FLOAT[],
    n_tokens        INTEGER,
    n_unk           INTEGER,
    truncated       BOOLEAN,
    n_chars         INTEGER,
    latency_ms      DOUBLE,
    text            VARCHAR,
    text_sha256     VARCHAR,
    source          VARCHAR,
    label           VARCHAR,
    PRIMARY KEY (reference_name, event_id)
);

-- One row per drift check of one window.
CREATE TABLE IF NOT EXISTS drift_runs (
    run_id         VARCHAR PRIMARY KEY,
    model_name     VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    reference_name VARCHAR,
    window_start   TIMESTAMPTZ,
    window_end     TIMESTAMPTZ,
    n_reference    BIGINT NOT NULL,
    n_current      BIGINT NOT NULL,
    drifted        BOOLEAN NOT NULL,
    result         JSON NOT NULL,
    report_path    VARCHAR,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- One row per signal of a drift run (the timeline reads these).
CREATE TABLE IF NOT EXISTS drift_results (
    run_id      VARCHAR NOT NULL,
    signal      VARCHAR NOT NULL,
    method      VARCHAR NOT NULL,
    statistic   DOUBLE,
    p_value     DOUBLE,
    threshold   DOUBLE,
    drifted     BOOLEAN NOT NULL,
    status      VARCHAR NOT NULL,
    details     JSON,
    PRIMARY KEY (run_id, signal)
);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id   VARCHAR PRIMARY KEY,
    model_name VARCHAR NOT NULL,
    rule       VARCHAR NOT NULL,
    severity   VARCHAR NOT NULL,
    run_id     VARCHAR,
    evidence   JSON,
    created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS actions (
    action_id       VARCHAR PRIMARY KEY,
    alert_id        VARCHAR,
    kind            VARCHAR NOT NULL,
    idempotency_key VARCHAR UNIQUE,
    status          VARCHAR NOT NULL,  -- pending | ok | failed | skipped | dry_run
    dry_run         BOOLEAN NOT NULL DEFAULT false,
    attempts        INTEGER NOT NULL DEFAULT 0,
    detail          JSON,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    finished_at     TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS review_queue (
    event_id   VARCHAR PRIMARY KEY,
    model_name VARCHAR NOT NULL,
    run_id     VARCHAR,
    reason     VARCHAR NOT NULL,
    score      DOUBLE,
    status     VARCHAR NOT NULL DEFAULT 'pending',  -- pending | labeled
    label      VARCHAR,
    queued_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    labeled_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS job_runs (
    run_id      VARCHAR PRIMARY KEY,
    job         VARCHAR NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    duration_s  DOUBLE,
    status      VARCHAR NOT NULL,  -- running | ok | failed
    error       VARCHAR
);

CREATE TABLE IF NOT EXISTS training_logs (
    train_run_id VARCHAR NOT NULL,
    model_name   VARCHAR NOT NULL,
    step         INTEGER NOT NULL,
    phase        INTEGER NOT NULL,
    lr           DOUBLE,
    train_loss   DOUBLE,
    val_loss     DOUBLE,
    val_macro_f1 DOUBLE,
    grad_norm    DOUBLE,
    logged_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
