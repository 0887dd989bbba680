-- name: lake_read_predictions
-- The prediction records of a list of lake files, in event-id order (the order partials sum in).
SELECT event_id, predicted_label, confidence, probs, embedding, n_tokens, n_unk, truncated,
       COALESCE(source, '') AS source
FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
ORDER BY event_id, ts;

-- name: lake_read_partials
-- The rows of a list of partials files, in key order.
SELECT *
FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
ORDER BY model_name, model_version, date, hour, replica, source;
