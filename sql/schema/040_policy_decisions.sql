-- 040: every policy decision (fired or held back by a cooldown) with its evidence.
-- Fired decisions also get an alerts row (alert_id = decision_id); the decision id is
-- derived from (rule, run_id), so re-evaluating the same window never adds a row.
CREATE TABLE IF NOT EXISTS policy_decisions (
    decision_id   VARCHAR PRIMARY KEY,
    run_id        VARCHAR,
    model_name    VARCHAR NOT NULL,
    model_version VARCHAR,
    rule          VARCHAR NOT NULL,
    severity      VARCHAR NOT NULL,
    outcome       VARCHAR NOT NULL,  -- fired | cooldown
    alert_id      VARCHAR,
    evidence      JSON,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
