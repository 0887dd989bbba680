-- name: reports_run
-- One drift run by id, with its JSON result as text.
SELECT run_id, model_name, model_version, reference_name, window_start, window_end,
       n_reference, n_current, drifted, CAST(result AS VARCHAR) AS result, report_path, created_at
FROM drift_runs
WHERE run_id = $run_id;

-- name: reports_runs
-- Drift runs (all models when $model_name is NULL), newest first.
SELECT run_id, model_name, model_version, reference_name, window_start, window_end,
       n_reference, n_current, drifted, CAST(result AS VARCHAR) AS result, report_path, created_at
FROM drift_runs
WHERE ($model_name IS NULL OR model_name = $model_name)
ORDER BY model_name, created_at DESC, run_id DESC;

-- name: reports_run_statuses
-- Each run's signal statuses (for the index colour), all models when $model_name is NULL.
SELECT d.run_id, d.signal, d.drifted, d.status
FROM drift_results d
JOIN drift_runs r USING (run_id)
WHERE ($model_name IS NULL OR r.model_name = $model_name)
ORDER BY d.run_id, d.signal;

-- name: reports_set_path
-- Remember where the HTML report of a run was written.
UPDATE drift_runs SET report_path = $report_path WHERE run_id = $run_id;

-- name: reports_signal_history
-- Every signal result of one model over time (oldest first), for the timeline.
SELECT r.run_id, r.model_version, coalesce(r.window_end, r.created_at) AS event_at, r.created_at,
       d.signal, d.method, d.statistic, d.p_value, d.threshold, d.drifted, d.status
FROM drift_results d
JOIN drift_runs r USING (run_id)
WHERE r.model_name = $model_name
ORDER BY event_at, r.run_id, d.signal;

-- name: reports_alerts
-- Alerts of one model with the time of the run they refer to, oldest first.
SELECT a.alert_id, a.rule, a.severity, a.run_id, a.created_at,
       coalesce(r.window_end, r.created_at, a.created_at) AS event_at
FROM alerts a
LEFT JOIN drift_runs r USING (run_id)
WHERE a.model_name = $model_name
ORDER BY a.created_at, a.alert_id;

-- name: reports_version_activations
-- When each version of one model was last made active.
SELECT version, status, activated_at AS event_at
FROM model_versions
WHERE model_name = $model_name AND activated_at IS NOT NULL
ORDER BY activated_at;

-- name: reports_version_actions
-- Promote / rollback actions of one model (through their alert), oldest first.
SELECT x.action_id, x.kind, x.status, CAST(x.detail AS VARCHAR) AS detail,
       coalesce(x.finished_at, x.created_at) AS event_at
FROM actions x
JOIN alerts a USING (alert_id)
WHERE a.model_name = $model_name AND x.kind IN ('rollback', 'promote')
  AND x.status IN ('ok', 'dry_run')
ORDER BY event_at;

-- name: reports_model_version
-- Artifact directory and preprocessing of one model version (for its tokenizer).
SELECT version, status, artifact_dir, CAST(preprocessing AS VARCHAR) AS preprocessing
FROM model_versions
WHERE model_name = $model_name AND version = $version;

-- name: reports_health
-- Operational health windows of one model, oldest first (table of the server engineer).
SELECT coalesce(window_end, created_at) AS event_at, model_version, n_records,
       latency_p50_ms, latency_p95_ms, latency_p99_ms, n_errors, error_rate, dropped
FROM health_windows
WHERE model_name = $model_name
ORDER BY event_at;

-- name: reports_registry_events
-- Promotions and rollbacks of one model from the registry history, oldest first.
SELECT kind, from_version, to_version, reason, created_at AS event_at
FROM registry_events
WHERE model_name = $model_name AND kind IN ('promote', 'rollback')
ORDER BY created_at;
