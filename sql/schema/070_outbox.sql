-- 070: the durable notification outbox (docs/alerts.md).
-- A notification is written here in the same transaction as the decision (or registry /
-- retrain outcome) that causes it; the delivery job posts it, retrying with backoff until it
-- is delivered, refused for good (a 4xx other than 408/429) or expired. dedupe_key is the
-- primary key: enqueuing the same (rule, model, version, window) twice stores one row, and a
-- delivered row is never sent again.
CREATE TABLE IF NOT EXISTS outbox (
    dedupe_key      VARCHAR PRIMARY KEY,
    kind            VARCHAR NOT NULL,      -- alert | retrain | promote | rollback | recover
    model_name      VARCHAR,
    model_version   VARCHAR,
    rule            VARCHAR,
    run_id          VARCHAR,
    decision_id     VARCHAR,               -- policy_decisions.decision_id of an alert
    url             VARCHAR NOT NULL,
    format          VARCHAR NOT NULL,      -- generic | slack | alertmanager
    headers         JSON,
    body            JSON NOT NULL,         -- the request body, already in its format
    timeout_s       DOUBLE NOT NULL,
    status          VARCHAR NOT NULL,      -- pending | delivered | failed | expired
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    last_error      VARCHAR
);

-- Every delivery attempt: when, the HTTP status (NULL on a transport error) and the error.
CREATE TABLE IF NOT EXISTS outbox_attempts (
    dedupe_key   VARCHAR NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code  INTEGER,
    error        VARCHAR,
    elapsed_ms   DOUBLE,
    PRIMARY KEY (dedupe_key, attempt)
);
