-- name: demo_windows
-- Drift runs of a model, oldest window first, with the signals that fired and the alerts/actions they led to.
SELECT r.run_id, r.model_version, r.reference_name, r.window_start, r.window_end,
       r.n_reference, r.n_current, r.drifted, r.report_path,
       (SELECT string_agg(d.signal, ', ' ORDER BY d.signal)
          FROM drift_results d WHERE d.run_id = r.run_id AND d.drifted) AS signals_fired,
       (SELECT count(*) FROM alerts a WHERE a.run_id = r.run_id) AS n_alerts,
       (SELECT string_agg(DISTINCT a.rule, ', ') FROM alerts a WHERE a.run_id = r.run_id) AS rules,
       (SELECT string_agg(x.kind || ':' || x.status, ', ' ORDER BY x.created_at, x.kind)
          FROM actions x JOIN alerts a ON x.alert_id = a.alert_id
         WHERE a.run_id = r.run_id) AS actions
FROM drift_runs r
WHERE r.model_name = $model_name
ORDER BY r.window_end NULLS LAST, r.created_at;

-- name: demo_signal_results
-- Every signal result of a model's drift runs (for the summary's per-signal view).
SELECT r.run_id, r.window_end, d.signal, d.method, d.statistic, d.p_value, d.threshold, d.drifted, d.status
FROM drift_runs r JOIN drift_results d ON d.run_id = r.run_id
WHERE r.model_name = $model_name
ORDER BY r.window_end, d.signal;

-- name: demo_alerts
-- Alerts of a model, oldest first.
SELECT alert_id, rule, severity, run_id, created_at FROM alerts
WHERE model_name = $model_name ORDER BY created_at, alert_id;

-- name: demo_actions
-- Actions taken for a model's alerts, oldest first, with their outcome detail.
SELECT x.action_id, x.alert_id, a.rule, x.kind, x.status, x.dry_run, x.attempts, x.detail,
       x.created_at, x.finished_at
FROM actions x JOIN alerts a ON x.alert_id = a.alert_id
WHERE a.model_name = $model_name
ORDER BY x.created_at, x.kind;

-- name: demo_review_pending
-- Review-queue rows of a model still waiting for a label, with the logged text and its hash.
SELECT q.event_id, q.reason, q.score, p.text, p.text_sha256, p.source
FROM review_queue q JOIN predictions p ON p.event_id = q.event_id
WHERE q.model_name = $model_name AND q.status = 'pending'
ORDER BY q.queued_at, q.event_id;

-- name: demo_review_counts
-- Review-queue rows of a model by status.
SELECT status, count(*) AS n FROM review_queue WHERE model_name = $model_name GROUP BY status ORDER BY status;

-- name: demo_labelled_rows
-- Labelled production rows of a model per model version (delayed labels and review labels).
SELECT p.model_version, count(*) AS n
FROM predictions p JOIN labels l ON l.event_id = p.event_id
WHERE p.model_name = $model_name
GROUP BY p.model_version ORDER BY p.model_version;

-- name: demo_versions
-- Registered versions of a model, oldest first, with status and why.
SELECT version, status, parent_version, reason, metrics, created_at, activated_at
FROM model_versions WHERE model_name = $model_name ORDER BY created_at, version;

-- name: demo_retrain_runs
-- Retrain runs of a model, oldest first: candidate, decision and its reasons.
SELECT run_id, parent_version, candidate_version, status, reason, reasons, metrics, error,
       started_at, finished_at
FROM retrain_runs WHERE model_name = $model_name ORDER BY started_at, run_id;

-- name: demo_reference_sets
-- Reference sets of a model, oldest first.
SELECT name, model_version, origin, n_rows, created_at FROM reference_sets
WHERE model_name = $model_name ORDER BY created_at, name;

-- name: demo_registry_events
-- Registry history of a model (register, promote, reject, rollback), oldest first.
SELECT kind, from_version, to_version, reason, created_at FROM registry_events
WHERE model_name = $model_name ORDER BY created_at, event_id;

-- name: demo_reported_runs
-- Drift runs of a model that have an HTML report.
SELECT run_id, report_path FROM drift_runs
WHERE model_name = $model_name AND report_path IS NOT NULL ORDER BY window_end;

-- name: demo_job_runs
-- Scheduler job runs by job name and status.
SELECT job, status, count(*) AS n, sum(duration_s) AS total_s FROM job_runs GROUP BY ALL ORDER BY job, status;

-- name: demo_window_rows
-- Logged rows of one traffic window (tagged with the window's name as source), oldest first.
SELECT event_id, ts, model_version, predicted_label, text FROM predictions
WHERE model_name = $model_name AND source = $source ORDER BY ts, event_id;

-- name: demo_run_sources
-- For each drift run of a model, the traffic-window tags (source) of the rows it checked, oldest first.
SELECT r.run_id, r.model_version, r.drifted, r.report_path,
       string_agg(DISTINCT p.source, ',' ORDER BY p.source) AS sources, count(*) AS n_rows
FROM drift_runs r
JOIN predictions p ON p.model_name = r.model_name AND p.model_version = r.model_version
                  AND p.ts >= r.window_start AND p.ts < r.window_end
WHERE r.model_name = $model_name
GROUP BY r.run_id, r.model_version, r.drifted, r.report_path
ORDER BY min(p.ts);
