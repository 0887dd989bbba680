-- 086: where a model version's embedding dimension came from, and when (issue 13). Idempotent.
-- origin: 'first_record' (fixed by the first accepted record), 'declared' (CLI / HTTP),
-- 'registry' (given when the version was registered). NULL for rows written before 086.
ALTER TABLE embedding_dims ADD COLUMN IF NOT EXISTS origin VARCHAR;
ALTER TABLE embedding_dims ADD COLUMN IF NOT EXISTS set_at TIMESTAMPTZ;
