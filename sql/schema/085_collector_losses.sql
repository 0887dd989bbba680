-- 085: collectors report what they refused and what their spool evicted (issue 13). Idempotent.
-- Both are cumulative per collector, like `dropped`; NULL for heartbeats of older collectors.
ALTER TABLE collector_heartbeats ADD COLUMN IF NOT EXISTS rejected BIGINT;
ALTER TABLE collector_heartbeats ADD COLUMN IF NOT EXISTS evicted BIGINT;
