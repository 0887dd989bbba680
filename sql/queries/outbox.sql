-- name: outbox_insert
-- Enqueue one notification; a row with the same dedupe key already stored is kept as it is.
INSERT OR IGNORE INTO outbox (dedupe_key, kind, model_name, model_version, rule, run_id, decision_id, url,
                              format, headers, body, timeout_s, status, attempts, next_attempt_at,
                              expires_at, created_at)
VALUES ($dedupe_key, $kind, $model_name, $model_version, $rule, $run_id, $decision_id, $url, $format,
        CAST($headers AS JSON), CAST($body AS JSON), $timeout_s, 'pending', 0, $now, $expires_at, $now);

-- name: outbox_get
-- One notification by dedupe key.
SELECT dedupe_key, kind, model_name, model_version, rule, run_id, decision_id, url, format,
       CAST(headers AS VARCHAR) AS headers, CAST(body AS VARCHAR) AS body, timeout_s, status, attempts,
       next_attempt_at, expires_at, created_at, delivered_at, last_error
FROM outbox WHERE dedupe_key = $dedupe_key;

-- name: outbox_expire
-- Give up on pending notifications whose expiry has passed; returns their keys.
UPDATE outbox SET status = 'expired', next_attempt_at = expires_at
WHERE status = 'pending' AND expires_at <= $now
RETURNING dedupe_key;

-- name: outbox_due
-- Pending notifications whose next attempt is due, oldest first.
SELECT dedupe_key, kind, url, format, CAST(headers AS VARCHAR) AS headers, CAST(body AS VARCHAR) AS body,
       timeout_s, attempts, expires_at
FROM outbox WHERE status = 'pending' AND next_attempt_at <= $now
ORDER BY created_at, dedupe_key LIMIT $n;

-- name: outbox_record_attempt
-- Record one delivery attempt.
INSERT INTO outbox_attempts (dedupe_key, attempt, attempted_at, status_code, error, elapsed_ms)
VALUES ($dedupe_key, $attempt, $attempted_at, $status_code, $error, $elapsed_ms);

-- name: outbox_mark
-- Store the outcome of an attempt: the new status, the attempt count and when to try next.
UPDATE outbox SET status = $status, attempts = $attempts, next_attempt_at = $next_attempt_at,
                  delivered_at = $delivered_at, last_error = $last_error
WHERE dedupe_key = $dedupe_key AND status = 'pending';

-- name: outbox_attempts
-- The recorded attempts of one notification, in order.
SELECT attempt, attempted_at, status_code, error, elapsed_ms FROM outbox_attempts
WHERE dedupe_key = $dedupe_key ORDER BY attempt;

-- name: outbox_list
-- Notifications (all when $status is NULL), newest first.
SELECT dedupe_key, kind, model_name, model_version, rule, run_id, url, format, status, attempts,
       next_attempt_at, expires_at, created_at, delivered_at, last_error
FROM outbox WHERE ($status IS NULL OR status = $status)
ORDER BY created_at DESC, dedupe_key LIMIT $n;

-- name: outbox_cooldown_marks
-- Fired decisions of one (model, version) since $since, other than run $run_id, with the time
-- their cooldown counts from: the delivery of their alert notification, or the decision time
-- when the decision queued no notification. A decision whose notifications were queued but
-- none delivered does not count (a failed send starts no cooldown).
SELECT d.rule, d.run_id, d.model_version,
       CASE WHEN count(o.dedupe_key) = 0 THEN d.created_at ELSE max(o.delivered_at) END AS counted_at
FROM policy_decisions d LEFT JOIN outbox o ON o.decision_id = d.decision_id
WHERE d.model_name = $model_name AND d.model_version = $model_version AND d.outcome = 'fired'
  AND (d.run_id IS NULL OR d.run_id <> $run_id)
GROUP BY d.decision_id, d.rule, d.run_id, d.model_version, d.created_at
HAVING counted_at IS NOT NULL AND counted_at >= $since
ORDER BY counted_at DESC;

-- name: outbox_any_pending
-- Whether any notification waits for delivery.
SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1;

-- name: outbox_counts
-- Notifications by kind and status, with the oldest queue time (epoch seconds) of each group.
SELECT kind, status, count(*) AS n, epoch(min(created_at)) AS oldest_at
FROM outbox GROUP BY kind, status ORDER BY kind, status;
