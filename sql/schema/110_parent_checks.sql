-- 110: the post-promotion paired test of a promoted version against the version it replaced.
-- Every statement is idempotent.

-- Each model version's predicted class on labelled production rows it was re-scored on, so a
-- cycle scores only rows it has not seen (a version's weights never change, so neither does its
-- prediction on a row; the row's label is read fresh each time and may change).
CREATE TABLE IF NOT EXISTS version_scores (
    model_name      VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    event_id        VARCHAR NOT NULL,
    predicted_label VARCHAR NOT NULL,
    confidence      DOUBLE,
    scored_at       TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model_name, model_version, event_id)
);

-- The paired test of a drift run's promoted version against its parent, as of the run's window end
-- (the evidence the policy's parent_* metrics read).
CREATE TABLE IF NOT EXISTS parent_checks (
    run_id          VARCHAR PRIMARY KEY,
    model_name      VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    parent_version  VARCHAR NOT NULL,
    evidence        JSON NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
