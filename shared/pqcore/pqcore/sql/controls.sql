-- Pausing a queue and limiting it: what the claim must respect (pqcore.controls).
-- A queue_controls row exists only while something is set, so the ordinary claims
-- (queries.sql) skip every queue that has one and the limited path claims from those.

-- name: controls_all
SELECT * FROM queue_controls ORDER BY queue;

-- name: control_get
SELECT * FROM queue_controls WHERE queue = :queue;

-- name: control_lock
-- Claims of a limited queue take turns on its row: the count of running jobs or of
-- recent claims and the claim that depends on it are then one decision (no race).
SELECT * FROM queue_controls WHERE queue = :queue {lock_row};

-- name: control_pause
INSERT INTO queue_controls (queue, paused, paused_at, paused_by, pause_reason,
                            updated_at, updated_by)
VALUES (:queue, TRUE, :now, :actor, :reason, :now, :actor)
ON CONFLICT (queue) DO UPDATE
   SET paused = TRUE, paused_at = excluded.paused_at, paused_by = excluded.paused_by,
       pause_reason = excluded.pause_reason, updated_at = excluded.updated_at,
       updated_by = excluded.updated_by
RETURNING *;

-- name: control_resume
UPDATE queue_controls
   SET paused = FALSE, paused_at = NULL, paused_by = NULL, pause_reason = NULL,
       updated_at = :now, updated_by = :actor
 WHERE queue = :queue
RETURNING *;

-- name: control_set_limits
INSERT INTO queue_controls (queue, paused, concurrency_limit, key_concurrency_limit,
                            rate_limit, key_rate_limit, rate_period, updated_at, updated_by)
VALUES (:queue, FALSE, :concurrency_limit, :key_concurrency_limit, :rate_limit,
        :key_rate_limit, :rate_period, :now, :actor)
ON CONFLICT (queue) DO UPDATE
   SET concurrency_limit = excluded.concurrency_limit,
       key_concurrency_limit = excluded.key_concurrency_limit,
       rate_limit = excluded.rate_limit, key_rate_limit = excluded.key_rate_limit,
       rate_period = excluded.rate_period, updated_at = excluded.updated_at,
       updated_by = excluded.updated_by
RETURNING *;

-- name: control_drop_if_unset
DELETE FROM queue_controls
 WHERE queue = :queue AND NOT paused AND concurrency_limit IS NULL
   AND key_concurrency_limit IS NULL AND rate_limit IS NULL AND key_rate_limit IS NULL;

-- name: processing_count_for_queue
SELECT count(*) AS n FROM jobs WHERE status = 'processing' AND queue = :queue;

-- name: claim_log_prune
DELETE FROM claim_log WHERE queue = :queue AND at <= :now - :rate_period;

-- name: claim_log_window
-- The queue's claims inside the window, and when the oldest of them leaves it.
SELECT count(*) AS n, min(at) AS oldest FROM claim_log
 WHERE queue = :queue AND at > :now - :rate_period;

-- name: claim_log_record
INSERT INTO claim_log (queue, concurrency_key, at)
SELECT queue, concurrency_key, :now FROM jobs WHERE id IN_LIST(:ids);

-- name: runnable_wait_for_queue
SELECT CASE WHEN min(run_at) <= :now THEN 0.0 ELSE min(run_at) - :now END AS wait
  FROM jobs WHERE status = 'pending' AND waiting_for = 0 AND queue = :queue;

-- ---------------------------------------------------------------- limited claims

-- name: claim_limited_queue
-- Queue-wide limits only: the caller has already cut :limit to what they allow.
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
     WHERE status = 'pending' AND waiting_for = 0 AND queue = :queue AND run_at <= :now
     ORDER BY priority DESC, run_at, id
     LIMIT :limit {skip_locked}
)
{_claim_picked};

-- name: _key_limited_picks
-- Per-key limits: a job with a concurrency key is picked only while its key has room,
-- counting the key's running jobs (and recent claims) plus the key's jobs picked before
-- it in claim order. Jobs without a key are limited by the queue alone.
WITH running AS (
    SELECT concurrency_key AS k, count(*) AS n FROM jobs
     WHERE status = 'processing' AND queue = :queue AND concurrency_key IS NOT NULL
     GROUP BY concurrency_key
), recent AS (
    SELECT concurrency_key AS k, count(*) AS n FROM claim_log
     WHERE queue = :queue AND at > :now - :rate_period AND concurrency_key IS NOT NULL
     GROUP BY concurrency_key
), ranked AS (
    SELECT id, priority, run_at, concurrency_key AS k,
           row_number() OVER (PARTITION BY concurrency_key
                              ORDER BY priority DESC, run_at, id) AS place
      FROM jobs
     WHERE status = 'pending' AND waiting_for = 0 AND queue = :queue AND run_at <= :now
), picked AS MATERIALIZED (
    SELECT r.id FROM ranked AS r
      LEFT JOIN running AS c ON c.k = r.k
      LEFT JOIN recent AS w ON w.k = r.k
     WHERE r.k IS NULL
        OR ((CAST(:key_concurrency_limit AS INTEGER) IS NULL
             OR r.place + coalesce(c.n, 0) <= :key_concurrency_limit)
            AND (CAST(:key_rate_limit AS INTEGER) IS NULL
                 OR r.place + coalesce(w.n, 0) <= :key_rate_limit))
     ORDER BY r.priority DESC, r.run_at, r.id
     LIMIT :limit
)

-- name: claim_key_limited_queue
{_key_limited_picks}
{_claim_picked};

-- name: key_limited_claimable
-- Whether a claim now would get anything (a waiting consumer's check).
{_key_limited_picks}
SELECT count(*) AS n FROM picked;
