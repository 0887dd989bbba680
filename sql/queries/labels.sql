-- name: upsert_labels
-- Insert or replace delayed ground truth from the registered batch `_labels`.
INSERT OR REPLACE INTO labels (event_id, label, labeled_at, source)
SELECT event_id, label, labeled_at, source FROM _labels;
