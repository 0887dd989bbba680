-- name: retrain_insert_training_logs
-- Append training log rows from the registered batch `_training_logs`.
INSERT INTO training_logs (train_run_id, model_name, step, phase, lr, train_loss, val_loss, val_macro_f1,
                           grad_norm)
SELECT train_run_id, model_name, step, phase, lr, train_loss, val_loss, val_macro_f1, grad_norm
FROM _training_logs;

-- name: retrain_training_logs
-- Training log rows of one training run, in step order.
SELECT train_run_id, model_name, step, phase, lr, train_loss, val_loss, val_macro_f1, grad_norm, logged_at
FROM training_logs WHERE train_run_id = $train_run_id ORDER BY step, phase;

-- name: retrain_labelled_rows
-- Labelled production rows with text of a model: delayed labels first, then review-queue labels,
-- then labels logged with the prediction; oldest first. Only rows logged at or after $since when
-- it is set (a shadow candidate's window), and only rows ingested at or after $ingested_since when
-- that is set (the sidecar's clock: rows that arrived after a promotion); all rows when both are NULL.
SELECT p.event_id, p.ts, p.model_version, p.text,
       coalesce(l.label, CASE WHEN r.status = 'labeled' THEN r.label END, p.label) AS label
FROM predictions p
LEFT JOIN labels l USING (event_id)
LEFT JOIN review_queue r ON r.event_id = p.event_id
WHERE p.model_name = $model_name
  AND p.text IS NOT NULL
  AND ($since IS NULL OR p.ts >= $since)
  AND ($ingested_since IS NULL OR p.ingested_at >= $ingested_since)
  AND coalesce(l.label, CASE WHEN r.status = 'labeled' THEN r.label END, p.label) IS NOT NULL
ORDER BY p.ts, p.event_id;

-- name: retrain_recent_texts
-- The newest $n production rows with text of a model (any version), newest first.
SELECT event_id, ts, model_version, text FROM predictions
WHERE model_name = $model_name AND text IS NOT NULL
ORDER BY ts DESC, event_id DESC LIMIT $n;

-- name: retrain_insert_run
-- Start a retrain run record.
INSERT INTO retrain_runs (run_id, model_name, parent_version, status, reason, config)
VALUES ($run_id, $model_name, $parent_version, 'running', $reason, $config);

-- name: retrain_finish_run
-- Close a retrain run record with its decision.
UPDATE retrain_runs SET status = $status, candidate_version = $candidate_version, reasons = $reasons,
       metrics = $metrics, error = $error, finished_at = current_timestamp
WHERE run_id = $run_id;

-- name: retrain_runs
-- Retrain runs (of one model when $model_name is set), newest first.
SELECT run_id, model_name, parent_version, candidate_version, status, reason, reasons, metrics, error,
       started_at, finished_at
FROM retrain_runs WHERE $model_name IS NULL OR model_name = $model_name
ORDER BY started_at DESC;

-- name: retrain_shadow_pending
-- Candidates a retrain kept for shadow evaluation (passed, or undecided by the paired test) that are
-- still candidates, oldest first; one row per candidate however often it was decided again.
SELECT r.model_name, r.candidate_version
FROM retrain_runs r
JOIN model_versions v ON v.model_name = r.model_name AND v.version = r.candidate_version
WHERE r.status IN ('shadow', 'undecided') AND v.status = 'candidate'
GROUP BY r.model_name, r.candidate_version
ORDER BY min(r.started_at), r.model_name, r.candidate_version;
