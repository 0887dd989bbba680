-- name: server_pending_enrichment_versions
-- Model versions that have records with text but no embedding or tokenizer stats yet.
SELECT model_name, model_version, count(*) AS n
FROM predictions
WHERE text IS NOT NULL AND (embedding IS NULL OR n_tokens IS NULL)
GROUP BY ALL ORDER BY model_name, model_version;

-- name: server_pending_enrichment
-- Up to $n records of one model version still waiting for zero-instrumentation enrichment.
SELECT event_id, text, embedding IS NOT NULL AS has_embedding
FROM predictions
WHERE model_name = $model_name AND model_version = $model_version
  AND text IS NOT NULL AND (embedding IS NULL OR n_tokens IS NULL)
  AND NOT list_contains($skip, event_id)
ORDER BY ts, event_id
LIMIT $n;

-- name: server_apply_enrichment
-- Fill missing embedding / tokenizer stats from the registered batch `_enriched`; values the
-- record already carried are kept.
UPDATE predictions
SET embedding = coalesce(predictions.embedding, e.embedding),
    n_tokens  = coalesce(predictions.n_tokens, e.n_tokens),
    n_unk     = coalesce(predictions.n_unk, e.n_unk),
    truncated = coalesce(predictions.truncated, e.truncated),
    n_chars   = coalesce(predictions.n_chars, e.n_chars)
FROM _enriched e
WHERE predictions.event_id = e.event_id;

-- name: server_latest_drift
-- The newest drift run of each model (optionally one model), with its JSON result.
SELECT run_id, model_name, model_version, reference_name, window_start, window_end,
       n_reference, n_current, drifted, CAST(result AS VARCHAR) AS result, report_path, created_at
FROM drift_runs
WHERE ($model_name IS NULL OR model_name = $model_name)
QUALIFY row_number() OVER (PARTITION BY model_name ORDER BY created_at DESC, run_id DESC) = 1
ORDER BY model_name;

-- name: server_latest_signals
-- Each signal's result in the newest drift run of each model (for /metrics gauges).
SELECT r.model_name, r.model_version, d.signal, d.method, d.statistic, d.p_value, d.drifted,
       d.status, epoch(r.created_at) AS run_at
FROM (
    SELECT run_id, model_name, model_version, created_at FROM drift_runs
    QUALIFY row_number() OVER (PARTITION BY model_name ORDER BY created_at DESC, run_id DESC) = 1
) r
JOIN drift_results d USING (run_id)
ORDER BY r.model_name, d.signal;

-- name: server_drift_run_counts
-- Drift runs per model and whether they found drift.
SELECT model_name, drifted, count(*) AS n FROM drift_runs GROUP BY ALL ORDER BY ALL;

-- name: server_alert_counts
-- Alerts fired per model, rule and severity.
SELECT model_name, rule, severity, count(*) AS n FROM alerts GROUP BY ALL ORDER BY ALL;

-- name: server_action_counts
-- Actions per kind and status.
SELECT kind, status, count(*) AS n FROM actions GROUP BY ALL ORDER BY ALL;

-- name: server_job_stats
-- Per job: runs by status, the last run's duration, the last success time (epoch seconds).
SELECT job,
       count(*) FILTER (WHERE status = 'ok') AS n_ok,
       count(*) FILTER (WHERE status = 'failed') AS n_failed,
       arg_max(duration_s, started_at) FILTER (WHERE duration_s IS NOT NULL) AS last_duration_s,
       epoch(max(finished_at) FILTER (WHERE status = 'ok')) AS last_success_at
FROM job_runs GROUP BY job ORDER BY job;

-- name: server_prediction_counts
-- Stored prediction records per model version.
SELECT model_name, model_version, count(*) AS n FROM predictions GROUP BY ALL ORDER BY ALL;

-- name: server_collector_drops
-- The latest heartbeat of each collector: cumulative drops, queue depth and capacity.
SELECT collector_id, model_name, model_version, dropped, queue_depth, queue_capacity,
       sink_failures, spooled, sent, rejected, evicted, epoch(ts) AS ts
FROM collector_heartbeats
QUALIFY row_number() OVER (PARTITION BY collector_id ORDER BY ts DESC) = 1
ORDER BY collector_id;

-- name: server_serving_error_counts
-- Serving errors reported by collectors, per model version and kind.
SELECT model_name, model_version, kind, count(*) AS n FROM serving_errors GROUP BY ALL ORDER BY ALL;

-- name: server_health_predictions
-- Record count, time range and latency quantiles of one model (optionally one version)
-- in [start, end).
SELECT count(*) AS n,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       quantile_cont(latency_ms, 0.50) AS p50,
       quantile_cont(latency_ms, 0.95) AS p95,
       quantile_cont(latency_ms, 0.99) AS p99,
       count(latency_ms) AS n_latency
FROM predictions
WHERE model_name = $model_name
  AND ($model_version IS NULL OR model_version = $model_version)
  AND ($start IS NULL OR ts >= $start)
  AND ($end IS NULL OR ts < $end);

-- name: server_health_errors
-- Serving errors of one model (optionally one version) in [start, end): all, and tokenizer ones.
SELECT count(*) AS n,
       count(*) FILTER (WHERE lower(kind) LIKE 'tokeniz%') AS n_tokenizer
FROM serving_errors
WHERE model_name = $model_name
  AND ($model_version IS NULL OR model_version = $model_version)
  AND ($start IS NULL OR ts >= $start)
  AND ($end IS NULL OR ts < $end);

-- name: server_health_heartbeats
-- Collector health of one model (optionally one version) in [start, end): the largest queue
-- depth and capacity seen, and the drops / sink failures that happened inside the window
-- (cumulative counters: last value in the window minus the last value before it).
WITH inside AS (
    SELECT collector_id, max(queue_depth) AS depth, max(queue_capacity) AS cap,
           max(dropped) AS dropped, max(sink_failures) AS failures
    FROM collector_heartbeats
    WHERE model_name = $model_name
      AND ($model_version IS NULL OR model_version = $model_version)
      AND ($start IS NULL OR ts >= $start)
      AND ($end IS NULL OR ts < $end)
    GROUP BY collector_id
), before AS (
    SELECT collector_id, max(dropped) AS dropped, max(sink_failures) AS failures
    FROM collector_heartbeats
    WHERE model_name = $model_name
      AND ($model_version IS NULL OR model_version = $model_version)
      AND $start IS NOT NULL AND ts < $start
    GROUP BY collector_id
)
SELECT count(*) AS n_collectors,
       max(i.depth) AS queue_depth_max,
       max(i.cap) AS queue_capacity,
       sum(greatest(i.dropped - coalesce(b.dropped, 0), 0)) AS dropped,
       sum(greatest(i.failures - coalesce(b.failures, 0), 0)) AS sink_failures
FROM inside i LEFT JOIN before b USING (collector_id);

-- name: server_save_health
-- Insert or replace one health window from the registered one-row batch `_health`.
INSERT OR REPLACE INTO health_windows (
    health_id, run_id, model_name, model_version, window_start, window_end, n_records, duration_s,
    throughput_per_s, latency_p50_ms, latency_p95_ms, latency_p99_ms, n_errors,
    n_tokenizer_failures, error_rate, queue_depth_max, queue_capacity, dropped, sink_failures
)
SELECT health_id, run_id, model_name, model_version, window_start, window_end, n_records,
       duration_s, throughput_per_s, latency_p50_ms, latency_p95_ms, latency_p99_ms, n_errors,
       n_tokenizer_failures, error_rate, queue_depth_max, queue_capacity, dropped, sink_failures
FROM _health;

-- name: server_health_history
-- Health windows of one model, newest first, at most $n.
SELECT health_id, run_id, model_name, model_version, window_start, window_end, n_records,
       duration_s, throughput_per_s, latency_p50_ms, latency_p95_ms, latency_p99_ms, n_errors,
       n_tokenizer_failures, error_rate, queue_depth_max, queue_capacity, dropped, sink_failures,
       created_at
FROM health_windows
WHERE model_name = $model_name
ORDER BY coalesce(window_end, created_at) DESC, created_at DESC
LIMIT $n;

-- name: server_latest_health
-- The newest health window of each model version (for /metrics gauges).
SELECT model_name, coalesce(model_version, '') AS model_version, throughput_per_s,
       latency_p50_ms, latency_p95_ms, latency_p99_ms, error_rate, queue_depth_max, dropped
FROM health_windows
QUALIFY row_number() OVER (PARTITION BY model_name, model_version
                           ORDER BY coalesce(window_end, created_at) DESC, created_at DESC) = 1
ORDER BY ALL;
