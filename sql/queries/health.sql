-- name: health_insert_errors
-- Insert the registered Arrow batch `_errors` of serving errors.
INSERT INTO serving_errors (ts, model_name, model_version, kind, message, source)
SELECT ts, model_name, model_version, kind, message, source FROM _errors;

-- name: health_insert_heartbeats
-- Insert the registered Arrow batch `_beats`; a repeated (collector_id, ts) replaces the old one.
INSERT OR REPLACE INTO collector_heartbeats (
    collector_id, ts, model_name, model_version, queue_depth, queue_capacity, dropped,
    sink_failures, spooled, sent, rejected, evicted
)
SELECT collector_id, ts, model_name, model_version, queue_depth, queue_capacity, dropped,
       sink_failures, spooled, sent, rejected, evicted
FROM _beats;

-- name: health_recent_errors
-- The newest $n serving errors (all models when $model_name is NULL), newest first.
SELECT ts, model_name, model_version, kind, message, source
FROM serving_errors
WHERE $model_name IS NULL OR model_name = $model_name
ORDER BY ts DESC
LIMIT $n;

-- name: health_latest_heartbeats
-- The latest heartbeat of each collector.
SELECT collector_id, ts, model_name, model_version, queue_depth, queue_capacity, dropped,
       sink_failures, spooled, sent, rejected, evicted
FROM collector_heartbeats
QUALIFY row_number() OVER (PARTITION BY collector_id ORDER BY ts DESC) = 1
ORDER BY collector_id;
