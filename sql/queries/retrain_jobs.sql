-- name: retrain_jobs_insert_refusal
-- Record a retrain refused for too few labelled rows (what it needed and asked for).
INSERT INTO retrain_refusals (run_id, model_name, needed, found, reason, config)
VALUES ($run_id, $model_name, $needed, $found, $reason, $config)
ON CONFLICT DO NOTHING;

-- name: retrain_jobs_open_refusals
-- The newest not yet retried refusal of each model, oldest model first.
SELECT run_id, model_name, needed, found, reason, config, refused_at
FROM retrain_refusals
WHERE retried_run_id IS NULL
QUALIFY row_number() OVER (PARTITION BY model_name ORDER BY refused_at DESC, run_id DESC) = 1
ORDER BY refused_at;

-- name: retrain_jobs_mark_retried
-- Close every open refusal of a model: the retrain $retried_run_id was started for them.
UPDATE retrain_refusals SET retried_run_id = $retried_run_id, retried_at = current_timestamp
WHERE model_name = $model_name AND retried_run_id IS NULL;

-- name: retrain_jobs_run
-- One retrain run record.
SELECT run_id, model_name, parent_version, candidate_version, status, reason, reasons, metrics, error,
       started_at, finished_at
FROM retrain_runs WHERE run_id = $run_id;

-- name: retrain_jobs_last_step_time
-- Seconds per training step of a model's newest finished run that trained (for estimates).
SELECT run_id, CAST(json_extract(metrics, '$.train.wall_s') AS DOUBLE) AS wall_s,
       CAST(json_extract(metrics, '$.train.steps') AS INTEGER) AS steps
FROM retrain_runs
WHERE model_name = $model_name AND status IN ('promoted', 'rejected', 'shadow', 'undecided')
  AND CAST(json_extract(metrics, '$.train.steps') AS INTEGER) > 0
ORDER BY finished_at DESC NULLS LAST LIMIT 1;
