-- name: promotion_out_of_scope_rows
-- Labelled rows with text of a model whose label lies outside the label set $labels, newest first,
-- at most $n; only rows ingested at or after $ingested_since when it is set (a shadow candidate's
-- window, on the store's clock). Label precedence as in
-- retrain_labelled_rows: delayed label, then review-queue label, then the label logged with the row.
SELECT p.event_id, p.ts, p.model_version, p.text, lab.label
FROM predictions p
LEFT JOIN labels l USING (event_id)
LEFT JOIN review_queue r ON r.event_id = p.event_id
CROSS JOIN LATERAL (SELECT coalesce(l.label, CASE WHEN r.status = 'labeled' THEN r.label END, p.label)
                    AS label) lab
WHERE p.model_name = $model_name
  AND p.text IS NOT NULL
  AND ($ingested_since IS NULL OR p.ingested_at >= $ingested_since)
  AND lab.label IS NOT NULL
  AND NOT list_contains(CAST($labels AS VARCHAR[]), lab.label)
ORDER BY p.ts DESC, p.event_id DESC
LIMIT $n;

-- name: promotion_label_sets
-- The label set (registered preprocessing) of the model version that made each of the given predictions.
SELECT p.event_id, p.model_name, p.model_version, v.preprocessing
FROM predictions p
LEFT JOIN model_versions v ON v.model_name = p.model_name AND v.version = p.model_version
WHERE list_contains($ids, p.event_id);

-- name: promotion_parent_version
-- The version a model version was trained from or promoted over (its registered parent).
SELECT parent_version FROM model_versions WHERE model_name = $model_name AND version = $model_version;
