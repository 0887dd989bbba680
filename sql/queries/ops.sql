-- name: ops_models
-- Each model with its newest version (by the newest record) and record count.
SELECT model_name, arg_max(model_version, ts) AS model_version, count(*) AS n, max(ts) AS last_ts
FROM predictions GROUP BY model_name ORDER BY model_name;

-- name: ops_newest_ts
-- The newest record time of one model version.
SELECT max(ts) AS last_ts, count(*) AS n FROM predictions
WHERE model_name = $model_name AND model_version = $model_version;

-- name: ops_last_run
-- The drift run of one model version whose window reaches furthest (where the next window starts).
SELECT run_id, window_start, window_end, created_at FROM drift_runs
WHERE model_name = $model_name AND model_version = $model_version AND window_end IS NOT NULL
ORDER BY window_end DESC, created_at DESC LIMIT 1;

-- name: ops_run
-- One drift run with its JSON result.
SELECT run_id, model_name, model_version, reference_name, window_start, window_end, n_reference,
       n_current, drifted, CAST(result AS VARCHAR) AS result, created_at
FROM drift_runs WHERE run_id = $run_id;

-- name: ops_run_history
-- The newest $n drift runs of one model up to and including run $run_id's time, newest first.
SELECT run_id, model_name, model_version, window_start, window_end, n_current, drifted,
       CAST(result AS VARCHAR) AS result, created_at
FROM drift_runs
WHERE model_name = $model_name
  AND created_at <= (SELECT created_at FROM drift_runs WHERE run_id = $run_id)
ORDER BY created_at DESC, run_id DESC LIMIT $n;

-- name: ops_run_health
-- The health window saved for a drift run, if any.
SELECT latency_p50_ms, latency_p95_ms, latency_p99_ms, throughput_per_s, error_rate, n_errors,
       n_tokenizer_failures, queue_depth_max, queue_capacity, dropped, sink_failures
FROM health_windows WHERE run_id = $run_id;

-- name: ops_model_version
-- Registry facts of one model version used as policy evidence: when it was last promoted
-- over another active version (registry_events kind 'promote').
SELECT v.version, v.status, v.parent_version, v.activated_at, CAST(v.metrics AS VARCHAR) AS metrics,
       (SELECT max(e.created_at) FROM registry_events e
        WHERE e.model_name = v.model_name AND e.to_version = v.version AND e.kind = 'promote'
          AND e.from_version IS NOT NULL) AS promoted_at
FROM model_versions v WHERE v.model_name = $model_name AND v.version = $model_version;

-- name: ops_recent_decisions
-- Fired decisions of one model since $since (for cooldowns), excluding run $run_id.
SELECT rule, run_id, created_at FROM policy_decisions
WHERE model_name = $model_name AND outcome = 'fired' AND created_at >= $since
  AND (run_id IS NULL OR run_id <> $run_id)
ORDER BY created_at DESC;

-- name: ops_insert_decision
-- Record one policy decision; a decision of the same rule and run already stored is kept.
INSERT OR IGNORE INTO policy_decisions
    (decision_id, run_id, model_name, model_version, rule, severity, outcome, alert_id, evidence,
     created_at)
VALUES ($decision_id, $run_id, $model_name, $model_version, $rule, $severity, $outcome, $alert_id,
        $evidence, $created_at);

-- name: ops_insert_alert
-- Record one alert; an alert with the same id (same rule and run) already stored is kept.
INSERT OR IGNORE INTO alerts (alert_id, model_name, rule, severity, run_id, evidence, created_at)
VALUES ($alert_id, $model_name, $rule, $severity, $run_id, $evidence, $created_at);

-- name: ops_get_action
-- The action stored under an idempotency key.
SELECT action_id, alert_id, kind, idempotency_key, status, dry_run, attempts,
       CAST(detail AS VARCHAR) AS detail
FROM actions WHERE idempotency_key = $key;

-- name: ops_insert_action
-- Claim an idempotency key with a pending action row (no-op when the key exists).
INSERT OR IGNORE INTO actions (action_id, alert_id, kind, idempotency_key, status, dry_run, attempts)
VALUES ($action_id, $alert_id, $kind, $key, 'pending', $dry_run, 0);

-- name: ops_finish_action
-- Store the outcome of an action run.
UPDATE actions
SET status = $status, attempts = attempts + $attempts, detail = $detail, finished_at = $finished_at
WHERE idempotency_key = $key;

-- name: ops_actions_of_alert
-- Actions started for one alert.
SELECT kind, status, dry_run, attempts, CAST(detail AS VARCHAR) AS detail, idempotency_key
FROM actions WHERE alert_id = $alert_id ORDER BY created_at, kind;

-- name: ops_job_start
-- Record the start of one background-job run.
INSERT INTO job_runs (run_id, job, started_at, status) VALUES ($run_id, $job, $started_at, 'running');

-- name: ops_job_finish
-- Record the end of one background-job run.
UPDATE job_runs SET finished_at = $finished_at, duration_s = $duration_s, status = $status,
                    error = $error
WHERE run_id = $run_id;

-- name: ops_job_runs
-- Recorded runs of jobs whose name starts with $prefix, oldest first.
SELECT run_id, job, started_at, finished_at, duration_s, status, error
FROM job_runs WHERE starts_with(job, $prefix) ORDER BY started_at, run_id;

-- name: ops_review_insert
-- Queue the registered batch `_review` for labelling; rows already queued are kept.
INSERT OR IGNORE INTO review_queue (event_id, model_name, run_id, reason, score, status)
SELECT event_id, model_name, run_id, reason, score, 'pending' FROM _review;

-- name: ops_review_export
-- Queued rows (optionally of one model / status) with what a labeller needs to see.
SELECT q.event_id, q.model_name, p.model_version, q.run_id, q.reason, q.score, q.status,
       p.predicted_label, p.confidence, p.text, p.text_sha256, p.source, q.label, q.queued_at
FROM review_queue q LEFT JOIN predictions p USING (event_id)
WHERE ($model_name IS NULL OR q.model_name = $model_name)
  AND ($status IS NULL OR q.status = $status)
ORDER BY q.queued_at, q.score DESC, q.event_id;

-- name: ops_review_mark_labeled
-- Mark the queued rows of the registered batch `_labeled` (event_id, label, labeled_at) labelled.
UPDATE review_queue SET status = 'labeled', label = l.label, labeled_at = l.labeled_at
FROM _labeled l WHERE review_queue.event_id = l.event_id;

-- name: ops_review_known
-- Which of the given event ids are stored predictions.
SELECT event_id FROM predictions WHERE list_contains($ids, event_id);

-- name: ops_count_boundaries
-- Rows of one model version at or after $after (all when NULL), numbered by time: every $n-th
-- row's timestamp (count-window boundaries), the total and the newest time.
WITH pending AS (
    SELECT ts, row_number() OVER (ORDER BY ts, event_id) - 1 AS i, count(*) OVER () AS total,
           max(ts) OVER () AS last_ts
    FROM predictions
    WHERE model_name = $model_name AND model_version = $model_version
      AND ($after IS NULL OR ts >= $after)
)
SELECT i, ts, total, last_ts FROM pending WHERE i % $n = 0 ORDER BY i;

-- name: ops_first_ts
-- The oldest record time of one model version at or after $after.
SELECT min(ts) AS first_ts FROM predictions
WHERE model_name = $model_name AND model_version = $model_version AND ($after IS NULL OR ts >= $after);

-- name: ops_count_range
-- Records of one model version in [start, end).
SELECT count(*) FROM predictions
WHERE model_name = $model_name AND model_version = $model_version AND ts >= $start AND ts < $end;

-- name: ops_review_count
-- Rows in the review queue.
SELECT count(*) FROM review_queue;

-- name: ops_decision_exists
-- Whether a decision with this id is stored.
SELECT count(*) FROM policy_decisions WHERE decision_id = $decision_id;
