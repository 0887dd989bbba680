-- name: parent_promotion
-- The newest promotion of a model version over another active version: when, and the version it
-- replaced (the parent the post-promotion paired test compares it with).
SELECT created_at AS promoted_at, from_version AS parent_version
FROM registry_events
WHERE model_name = $model_name AND to_version = $model_version AND kind = 'promote'
  AND from_version IS NOT NULL
ORDER BY created_at DESC, event_id DESC LIMIT 1;

-- name: parent_scored
-- Rows (event ids) a model version has already been re-scored on, with its predicted class.
SELECT event_id, predicted_label FROM version_scores
WHERE model_name = $model_name AND model_version = $model_version;

-- name: parent_insert_scores
-- Store predictions from the registered batch `_version_scores`; a row already scored is kept.
INSERT OR IGNORE INTO version_scores (model_name, model_version, event_id, predicted_label, confidence)
SELECT model_name, model_version, event_id, predicted_label, confidence FROM _version_scores;

-- name: parent_labelled_times
-- Timestamps of the labelled production rows of a model ingested at or after $since, with text or
-- not (label precedence as in retrain_labelled_rows); oldest first.
SELECT p.ts
FROM predictions p
LEFT JOIN labels l USING (event_id)
LEFT JOIN review_queue r ON r.event_id = p.event_id
WHERE p.model_name = $model_name
  AND p.ingested_at >= $since
  AND coalesce(l.label, CASE WHEN r.status = 'labeled' THEN r.label END, p.label) IS NOT NULL
ORDER BY p.ts;

-- name: parent_insert_check
-- Record the paired test of one drift run (re-checking the same run keeps the first record).
INSERT OR IGNORE INTO parent_checks (run_id, model_name, model_version, parent_version, evidence)
VALUES ($run_id, $model_name, $model_version, $parent_version, $evidence);

-- name: parent_check
-- The paired test recorded for a drift run, if any.
SELECT run_id, model_name, model_version, parent_version, CAST(evidence AS VARCHAR) AS evidence
FROM parent_checks WHERE run_id = $run_id;
