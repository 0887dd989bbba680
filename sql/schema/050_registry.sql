-- 050: model registry. Every statement is idempotent.

-- Checksum of the weights file and the registered original training data of each version.
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS weights_sha256 VARCHAR;
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS train_file VARCHAR;

-- History of registry changes (register, promote, rollback, reject, recover) and why.
CREATE TABLE IF NOT EXISTS registry_events (
    event_id     VARCHAR PRIMARY KEY,
    model_name   VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,  -- register | promote | rollback | reject | recover
    from_version VARCHAR,
    to_version   VARCHAR,
    reason       VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
