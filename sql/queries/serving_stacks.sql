-- name: server_enrich_backlog
-- Per model version: text-only records still waiting for enrichment and the age of the oldest (seconds).
SELECT model_name, model_version, count(*) AS n,
       epoch(current_timestamp) - epoch(min(ingested_at)) AS oldest_s
FROM predictions
WHERE text IS NOT NULL AND (embedding IS NULL OR n_tokens IS NULL)
GROUP BY ALL ORDER BY model_name, model_version;

-- name: server_retrain_states
-- Retrain runs per model and status (running, promoted, rejected, shadow, dry_run, failed).
SELECT model_name, status, count(*) AS n,
       max(epoch(coalesce(finished_at, started_at))) AS last_at
FROM retrain_runs
GROUP BY ALL ORDER BY model_name, status;

-- name: server_active_versions
-- The active version of every registered model.
SELECT model_name, version FROM model_versions WHERE status = 'active' ORDER BY model_name, version;
