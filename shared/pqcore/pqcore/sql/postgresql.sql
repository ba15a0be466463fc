-- PostgreSQL's overrides of the shared queries (queries.sql): only where the SQL must
-- differ, each saying why. Placeholders and macros as in queries.sql.

-- name: counts_by_status
-- The active states are small in a healthy queue and counted live from their partial
-- indexes. The final states grow without bound, and a counter row updated per job would
-- make every consumer queue on one row lock, so each statement appends its net change to
-- job_count_deltas (migrations) and readers sum them; deltas says when to fold.
SELECT status, count(*) AS n, 0 AS deltas FROM jobs
 WHERE status IN {active_states} GROUP BY status
UNION ALL
SELECT status, sum(n), count(*) FROM job_count_deltas GROUP BY status;

-- name: counts_by_status_for_queue
SELECT status, count(*) AS n, 0 AS deltas FROM jobs
 WHERE status IN {active_states} AND queue = :queue GROUP BY status
UNION ALL
SELECT status, sum(n), count(*) FROM job_count_deltas WHERE queue = :queue GROUP BY status;

-- name: count_deltas_fold
-- Each delta row is deleted exactly once (a concurrent fold skips rows this one took),
-- and its sum written back, so folding never changes a count.
WITH folded AS (
    DELETE FROM job_count_deltas RETURNING queue, status, n
)
INSERT INTO job_count_deltas (queue, status, n)
SELECT queue, status, sum(n) FROM folded GROUP BY queue, status HAVING sum(n) <> 0;

-- name: audit_counts
-- Only the final states are counted by deltas (see counts_by_status).
SELECT coalesce(a.queue, c.queue) AS queue, coalesce(a.status, c.status) AS status,
       coalesce(a.n, 0) AS actual, coalesce(c.n, 0) AS counted
  FROM (SELECT queue, status, count(*) AS n FROM jobs
         WHERE status IN {final_states}
         GROUP BY queue, status) AS a
  FULL OUTER JOIN (SELECT queue, status, sum(n) AS n FROM job_count_deltas
                    GROUP BY queue, status) AS c
    ON c.queue = a.queue AND c.status = a.status
 WHERE coalesce(a.n, 0) <> coalesce(c.n, 0);

-- name: jobs_insert_many
-- Many jobs in one statement, ids ascending in input order; SQLite runs job_insert_plain
-- per row instead (it has no unnest).
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  concurrency_key, created_at, updated_at, last_action, last_actor)
SELECT t.queue, t.data, 'pending', t.priority, coalesce(t.run_at, :now + t.delay), 0,
       t.max_attempts, t.concurrency_key, :now, :now, 'enqueue', :actor
  FROM unnest(CAST(:queues AS text[]), CAST(:datas AS text[]), CAST(:priorities AS int[]),
              CAST(:run_ats AS float8[]), CAST(:delays AS float8[]),
              CAST(:max_attempts AS int[]), CAST(:concurrency_keys AS text[]))
       WITH ORDINALITY AS t (queue, data, priority, run_at, delay, max_attempts,
                             concurrency_key, ord)
 ORDER BY t.ord
RETURNING *;

-- name: database_identity
-- What tells this database from every other (a caller's connection given as connection=
-- must be to it): its name and oid, and when its server started. SQLite compares files.
SELECT current_database() AS name, pg_postmaster_start_time()::text AS started,
       (SELECT oid FROM pg_database WHERE datname = current_database())::bigint AS oid;

-- name: pq_wake
-- Queue.wake: a notification outside any transaction (SQLite rings its doorbell instead).
SELECT pg_notify('pq_jobs', q) FROM unnest(CAST(:queues AS text[])) AS q;

-- name: job_enqueue_plain_one
-- The NOTIFY (channel pg_listen.CHANNEL) folded into the insert: sent when the statement
-- commits, for the job's queue, with no round trip of its own (PostgresSession knows).
WITH job AS ({_insert_plain_one})
SELECT job.* FROM job CROSS JOIN LATERAL (SELECT pg_notify('pq_jobs', job.queue)) AS woken;

-- name: clock_after_lock
-- transaction_timestamp() (what :now reads) is when the transaction began, which can
-- be long before a lock it waited for was granted; clock_timestamp() is the time now.
SELECT CAST(coalesce(CAST(:at AS float8), extract(epoch FROM clock_timestamp()))
            AS float8) AS now;
