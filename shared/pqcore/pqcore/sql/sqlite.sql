-- SQLite's overrides of the shared queries (queries.sql): only where the SQL must
-- differ, each saying why. Placeholders and macros as in queries.sql.

-- name: counts_by_status
-- Counts per (queue, status) live in job_counts, kept by triggers: no table scan. There
-- is never anything to fold (see postgresql.sql), so deltas is 0.
SELECT status, sum(n) AS n, 0 AS deltas FROM job_counts GROUP BY status;

-- name: counts_by_status_for_queue
SELECT status, n, 0 AS deltas FROM job_counts WHERE queue = :queue;

-- name: count_deltas_fold
-- job_counts holds one row per (queue, status), updated in place: nothing to fold.
SELECT 0;

-- name: audit_counts
SELECT coalesce(a.queue, c.queue) AS queue, coalesce(a.status, c.status) AS status,
       coalesce(a.n, 0) AS actual, coalesce(c.n, 0) AS counted
  FROM (SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status) AS a
  FULL OUTER JOIN job_counts AS c ON c.queue = a.queue AND c.status = a.status
 WHERE coalesce(a.n, 0) <> coalesce(c.n, 0);

-- name: queue_names
-- From the counts table, so it costs the same at a million jobs.
SELECT queue FROM job_counts GROUP BY queue HAVING sum(n) > 0 ORDER BY queue;

-- name: job_insert_plain
-- enqueue_many's path when no job has a dedupe key: executemany (one prepared statement
-- run in C per row), then the rows are read back; PostgreSQL inserts them with unnest.
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  concurrency_key, created_at, updated_at, last_action, last_actor)
VALUES (:queue, :data, 'pending', :priority, coalesce(:run_at, :now + :delay), 0,
        :max_attempts, :concurrency_key, :now, :now, 'enqueue', :actor);

-- name: jobs_after
SELECT * FROM jobs WHERE id > :after ORDER BY id;

-- name: throughput
-- floor() is missing from SQLite builds without the math functions; epoch times are
-- positive, so truncating is flooring.
SELECT CAST(at / :bucket AS INTEGER) * :bucket AS start,
       sum(action = 'enqueue') AS enqueued,
       sum(action IN ('complete', 'mark_done')) AS completed,
       sum(action IN ('fail', 'dead_letter', 'mark_failed')) AS failed
  FROM job_events
 WHERE at >= :since
 GROUP BY 1
 ORDER BY 1;

-- name: claim_any_queue
-- SQLite's planner prefers jobs_status_id here and sorts every pending job for each
-- claim; the claim-order index walks them in order and stops at :limit.
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs INDEXED BY jobs_claim_any
     WHERE status = 'pending' AND waiting_for = 0 AND run_at <= :now
       AND queue NOT IN (SELECT queue FROM queue_controls)
     ORDER BY priority DESC, run_at, id
     LIMIT :limit
)
{_claim_picked};
