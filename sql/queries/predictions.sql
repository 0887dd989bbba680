-- name: insert_predictions
-- Insert the registered Arrow batch `_batch` (event_ids unique within it), skipping ids already
-- stored with a ts in [$ts_min, $ts_max]; the fast path (the PRIMARY KEY still guards the rest).
INSERT INTO predictions (
    event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
    n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
)
SELECT event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
       n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
FROM _batch
WHERE event_id NOT IN (SELECT event_id FROM predictions WHERE ts >= $ts_min AND ts <= $ts_max);

-- name: predictions_insert_or_ignore
-- Insert the registered Arrow batch `_batch`, ignoring every event_id already stored (slow path,
-- used when a re-sent event_id carries a different ts).
INSERT OR IGNORE INTO predictions (
    event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
    n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
)
SELECT event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
       n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
FROM _batch;

-- name: known_embedding_dims
-- Embedding dimension per model version.
SELECT model_name, model_version, dim FROM embedding_dims;

-- name: record_embedding_dims
-- Remember dimensions of model versions first seen in the registered batch `_dims`.
INSERT OR IGNORE INTO embedding_dims (model_name, model_version, dim, origin, set_at)
SELECT model_name, model_version, dim, 'first_record', current_timestamp FROM _dims;

-- name: read_window
-- Prediction records of a model (optionally one version) in [start, end), oldest first,
-- with delayed labels filled in.
SELECT p.event_id, p.ts, p.model_name, p.model_version, p.predicted_label, p.confidence,
       p.probs, p.embedding, p.n_tokens, p.n_unk, p.truncated, p.n_chars, p.latency_ms,
       p.text, p.text_sha256, p.source, coalesce(l.label, p.label) AS label
FROM predictions p
LEFT JOIN labels l USING (event_id)
WHERE p.model_name = $model_name
  AND ($model_version IS NULL OR p.model_version = $model_version)
  AND ($start IS NULL OR p.ts >= $start)
  AND ($end IS NULL OR p.ts < $end)
ORDER BY p.ts, p.event_id;

-- name: read_last_n
-- The newest $n prediction records of a model (optionally one version), oldest first.
SELECT * FROM (
    SELECT p.event_id, p.ts, p.model_name, p.model_version, p.predicted_label, p.confidence,
           p.probs, p.embedding, p.n_tokens, p.n_unk, p.truncated, p.n_chars, p.latency_ms,
           p.text, p.text_sha256, p.source, coalesce(l.label, p.label) AS label
    FROM predictions p
    LEFT JOIN labels l USING (event_id)
    WHERE p.model_name = $model_name
      AND ($model_version IS NULL OR p.model_version = $model_version)
      AND ($end IS NULL OR p.ts < $end)
    ORDER BY p.ts DESC, p.event_id DESC
    LIMIT $n
) ORDER BY ts, event_id;

-- name: count_predictions
-- Number of stored prediction records.
SELECT count(*) FROM predictions;

-- name: export_window
-- Every column of predictions in [start, end) (all models when $model_name is NULL),
-- with the partition date, for Parquet export.
SELECT p.*, CAST(timezone('UTC', p.ts) AS DATE) AS date
FROM predictions p
WHERE ($model_name IS NULL OR p.model_name = $model_name)
  AND ($start IS NULL OR p.ts >= $start)
  AND ($end IS NULL OR p.ts < $end)
ORDER BY p.ts;

-- name: delete_window
-- Delete predictions older than $end (all models when $model_name is NULL).
DELETE FROM predictions
WHERE ($model_name IS NULL OR model_name = $model_name) AND ts < $end;

-- name: list_models
-- Models and versions with their record counts and time range.
SELECT model_name, model_version, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts
FROM predictions GROUP BY ALL ORDER BY model_name, model_version;

-- name: predictions_count_model
-- Number of stored prediction records of one model (optionally one version).
SELECT count(*) FROM predictions
WHERE model_name = $model_name AND ($model_version IS NULL OR model_version = $model_version);
