-- name: registry_insert_version
-- Add one model version.
INSERT INTO model_versions (model_name, version, status, parent_version, artifact_dir, preprocessing,
                            metrics, reason, weights_sha256, train_file)
VALUES ($model_name, $version, $status, $parent_version, $artifact_dir, $preprocessing,
        $metrics, $reason, $weights_sha256, $train_file);

-- name: registry_get_version
-- One model version.
SELECT model_name, version, status, parent_version, artifact_dir, preprocessing, metrics, reason,
       created_at, activated_at, weights_sha256, train_file
FROM model_versions WHERE model_name = $model_name AND version = $version;

-- name: registry_list_versions
-- All versions (of one model when $model_name is set), oldest first.
SELECT model_name, version, status, parent_version, artifact_dir, preprocessing, metrics, reason,
       created_at, activated_at, weights_sha256, train_file
FROM model_versions
WHERE $model_name IS NULL OR model_name = $model_name
ORDER BY model_name, created_at, version;

-- name: registry_active_versions
-- The active version(s) of a model (exactly one when the registry is consistent).
SELECT version FROM model_versions WHERE model_name = $model_name AND status = 'active'
ORDER BY activated_at DESC NULLS LAST;

-- name: registry_model_names
-- Every model name that has at least one version.
SELECT DISTINCT model_name FROM model_versions ORDER BY 1;

-- name: registry_retire_active
-- Retire every active version of a model except $keep.
UPDATE model_versions SET status = 'retired'
WHERE model_name = $model_name AND status = 'active' AND version <> $keep;

-- name: registry_activate
-- Make one version active.
UPDATE model_versions SET status = 'active', activated_at = current_timestamp, reason = $reason
WHERE model_name = $model_name AND version = $version;

-- name: registry_set_status
-- Set the status (and reason) of one version.
UPDATE model_versions SET status = $status, reason = $reason
WHERE model_name = $model_name AND version = $version;

-- name: registry_set_metrics
-- Replace the metrics JSON of one version.
UPDATE model_versions SET metrics = $metrics WHERE model_name = $model_name AND version = $version;

-- name: registry_previous_active
-- The most recently activated version other than $current (the rollback target).
SELECT version FROM model_versions
WHERE model_name = $model_name AND version <> $current AND activated_at IS NOT NULL
  AND status IN ('retired', 'active')
ORDER BY activated_at DESC LIMIT 1;

-- name: registry_insert_event
-- Record one registry change and why.
INSERT INTO registry_events (event_id, model_name, kind, from_version, to_version, reason)
VALUES ($event_id, $model_name, $kind, $from_version, $to_version, $reason);

-- name: registry_events
-- Registry history of a model, oldest first.
SELECT event_id, model_name, kind, from_version, to_version, reason, created_at
FROM registry_events WHERE model_name = $model_name ORDER BY created_at, event_id;
