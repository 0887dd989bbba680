-- name: embedding_dim_get
-- The embedding dimension of one model version, with where it came from.
SELECT model_name, model_version, dim, coalesce(origin, 'first_record') AS origin, set_at
FROM embedding_dims
WHERE model_name = $model_name AND model_version = $model_version;

-- name: embedding_dim_list
-- Every known embedding dimension (optionally of one model), with where it came from.
SELECT model_name, model_version, dim, coalesce(origin, 'first_record') AS origin, set_at
FROM embedding_dims
WHERE $model_name IS NULL OR model_name = $model_name
ORDER BY model_name, model_version;

-- name: embedding_dim_declare
-- Declare (or replace) the embedding dimension of one model version.
INSERT OR REPLACE INTO embedding_dims (model_name, model_version, dim, origin, set_at)
VALUES ($model_name, $model_version, $dim, $origin, current_timestamp);

-- name: embedding_dim_reset
-- Forget the embedding dimension of one model version: the next accepted record fixes it again.
DELETE FROM embedding_dims WHERE model_name = $model_name AND model_version = $model_version
RETURNING dim;
