-- name: lake_read_predictions
-- The prediction records of a list of lake files, in event-id order (the order partials sum in).
SELECT event_id, predicted_label, confidence, probs, embedding, n_tokens, n_unk, truncated,
       n_chars, latency_ms, COALESCE(source, '') AS source
FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
ORDER BY event_id, ts;

-- name: lake_read_partials
-- The rows of a list of partials files, in key order.
SELECT *
FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
ORDER BY model_name, model_version, date, hour, replica, source;

-- name: lake_export_watermark
-- The newest ingestion time already exported to the lake (NULL before the first export).
SELECT max(ingested_until) AS ingested_until FROM lake_exports;

-- name: lake_export_rows
-- Records ingested in ($after, $until] (every record when $after is NULL), as lake records.
SELECT event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
       n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
FROM predictions
WHERE ($after IS NULL OR ingested_at > $after) AND ingested_at <= $until
ORDER BY model_name, model_version, ts, event_id;

-- name: lake_export_record
-- Record one export run's watermark.
INSERT INTO lake_exports (ingested_until, rows, files, lake, replica)
VALUES ($until, $rows, $n_files, $lake, $replica);
