-- name: drift_insert_run
-- Record one drift check of one window (result = the DriftReport JSON).
INSERT INTO drift_runs (run_id, model_name, model_version, reference_name, window_start, window_end,
                        n_reference, n_current, drifted, result)
VALUES ($run_id, $model_name, $model_version, $reference_name, $window_start, $window_end,
        $n_reference, $n_current, $drifted, CAST($result AS JSON));

-- name: drift_insert_results
-- One row per signal of a run, from the registered Arrow batch `_drift_results`.
INSERT INTO drift_results (run_id, signal, method, statistic, p_value, threshold, drifted, status, details)
SELECT run_id, signal, method, statistic, p_value, threshold, drifted, status, CAST(details AS JSON)
FROM _drift_results;

-- name: drift_get_run
-- One drift run by id, with its stored report JSON.
SELECT run_id, model_name, model_version, reference_name, window_start, window_end, n_reference,
       n_current, drifted, CAST(result AS VARCHAR) AS result, report_path, created_at
FROM drift_runs WHERE run_id = $run_id;

-- name: drift_latest_version
-- The model version of a model's newest prediction record.
SELECT model_version FROM predictions WHERE model_name = $model_name
ORDER BY ts DESC, event_id DESC LIMIT 1;

-- name: drift_insert_reference_set
-- Register a named reference set.
INSERT INTO reference_sets (name, model_name, model_version, origin, n_rows)
VALUES ($name, $model_name, $model_version, $origin, $n_rows);

-- name: drift_insert_reference_rows
-- Copy the registered Arrow batch `_reference_rows` into reference_rows under $name.
INSERT INTO reference_rows (reference_name, event_id, ts, model_name, model_version, predicted_label,
                            confidence, probs, embedding, n_tokens, n_unk, truncated, n_chars,
                            latency_ms, text, text_sha256, source, label)
SELECT $name, event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
       n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
FROM _reference_rows;

-- name: drift_delete_reference_rows
-- Remove the rows of a reference set (before replacing it).
DELETE FROM reference_rows WHERE reference_name = $name;

-- name: drift_delete_reference_set
-- Remove a reference set's registration (before replacing it).
DELETE FROM reference_sets WHERE name = $name;

-- name: drift_reference_set
-- One reference set's registration.
SELECT name, model_name, model_version, origin, n_rows, created_at FROM reference_sets WHERE name = $name;

-- name: drift_reference_rows
-- The record columns of a reference set, oldest first.
SELECT event_id, ts, model_name, model_version, predicted_label, confidence, probs, embedding,
       n_tokens, n_unk, truncated, n_chars, latency_ms, text, text_sha256, source, label
FROM reference_rows WHERE reference_name = $name ORDER BY ts, event_id;

-- name: drift_reference_for
-- The newest reference set of a model version.
SELECT name FROM reference_sets WHERE model_name = $model_name AND model_version = $model_version
ORDER BY created_at DESC, name DESC LIMIT 1;

-- name: drift_list_references
-- Every reference set, newest first (all models when $model_name is NULL).
SELECT name, model_name, model_version, origin, n_rows, created_at FROM reference_sets
WHERE ($model_name IS NULL OR model_name = $model_name)
ORDER BY created_at DESC, name;
