-- Named queries of the PostgreSQL backend, loaded by name (pqcore.sql.load).
-- Placeholders are psycopg's %(name)s. Every state change is one guarded statement
-- (expected current state and, for the lease holder, its token) that appends its
-- history row in the same statement: zero rows returned means another actor won,
-- and then no history row was written either.

-- name: jobs_insert
-- Many jobs in one statement, in input order (ids increase with the input).
WITH inserted AS (
    INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                      created_at, updated_at)
    SELECT t.queue, t.data, 'pending', t.priority, t.run_at, 0, t.max_attempts,
           %(now)s, %(now)s
      FROM unnest(%(queues)s::text[], %(datas)s::text[], %(priorities)s::int[],
                  %(run_ats)s::float8[], %(max_attempts)s::int[])
           WITH ORDINALITY AS t (queue, data, priority, run_at, max_attempts, ord)
     ORDER BY t.ord
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt)
    SELECT id, %(now)s, NULL, 'pending', 'enqueue', %(actor)s, 0 FROM inserted
)
SELECT * FROM inserted ORDER BY id;

-- name: job_insert_deduped
-- One job with a dedupe key; nothing (no row) when an active job already holds the key.
WITH inserted AS (
    INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                      dedupe_key, created_at, updated_at)
    VALUES (%(queue)s, %(data)s, 'pending', %(priority)s, %(run_at)s, 0, %(max_attempts)s,
            %(dedupe_key)s, %(now)s, %(now)s)
    ON CONFLICT (dedupe_key)
        WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing', 'failed')
        DO NOTHING
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt)
    SELECT id, %(now)s, NULL, 'pending', 'enqueue', %(actor)s, 0 FROM inserted
)
SELECT * FROM inserted;

-- name: job_by_active_dedupe_key
SELECT * FROM jobs
 WHERE dedupe_key = %(dedupe_key)s AND status IN ('pending', 'processing', 'failed');

-- name: notify_jobs
-- Wakes waiting consumers (wait_for_jobs); delivered when the transaction commits.
SELECT pg_notify('pq_jobs', q) FROM unnest(%(queues)s::text[]) AS q;

-- name: job_get
SELECT * FROM jobs WHERE id = %(id)s;

-- name: dedupe_keys_known
-- Any state: the partial unique index covers active jobs only, so this may scan.
SELECT DISTINCT dedupe_key FROM jobs WHERE dedupe_key = ANY(%(keys)s::text[]);

-- name: last_event_id
SELECT coalesce(max(id), 0) AS id FROM job_events;

-- name: events_after
SELECT * FROM job_events
 WHERE id > %(after_id)s
   AND (%(to_status)s::text IS NULL OR to_status = %(to_status)s::text::pq_job_state)
 ORDER BY id LIMIT %(limit)s;

-- name: events_for_job
SELECT * FROM job_events WHERE job_id = %(job_id)s ORDER BY id;

-- name: claim_any_queue
WITH picked AS (
    SELECT id FROM jobs
     WHERE status = 'pending' AND run_at <= %(now)s
     ORDER BY priority DESC, run_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs AS j
       SET status = 'processing', attempts = j.attempts + 1, consumer_id = %(consumer_id)s,
           lease_token = replace(gen_random_uuid()::text, '-', ''),
           lease_expires_at = %(lease_expires_at)s, started_at = %(now)s, finished_at = NULL,
           updated_at = %(now)s
      FROM picked
     WHERE j.id = picked.id AND j.status = 'pending'
    RETURNING j.*
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt)
    SELECT id, %(now)s, 'pending', 'processing', 'claim', %(consumer_id)s, attempts FROM claimed
)
SELECT * FROM claimed;

-- name: claim_one_queue
WITH picked AS (
    SELECT id FROM jobs
     WHERE status = 'pending' AND queue = %(queue)s AND run_at <= %(now)s
     ORDER BY priority DESC, run_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs AS j
       SET status = 'processing', attempts = j.attempts + 1, consumer_id = %(consumer_id)s,
           lease_token = replace(gen_random_uuid()::text, '-', ''),
           lease_expires_at = %(lease_expires_at)s, started_at = %(now)s, finished_at = NULL,
           updated_at = %(now)s
      FROM picked
     WHERE j.id = picked.id AND j.status = 'pending'
    RETURNING j.*
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt)
    SELECT id, %(now)s, 'pending', 'processing', 'claim', %(consumer_id)s, attempts FROM claimed
)
SELECT * FROM claimed;

-- name: claim_many_queues
WITH picked AS (
    SELECT id FROM jobs
     WHERE status = 'pending' AND queue = ANY(%(queues)s::text[]) AND run_at <= %(now)s
     ORDER BY priority DESC, run_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs AS j
       SET status = 'processing', attempts = j.attempts + 1, consumer_id = %(consumer_id)s,
           lease_token = replace(gen_random_uuid()::text, '-', ''),
           lease_expires_at = %(lease_expires_at)s, started_at = %(now)s, finished_at = NULL,
           updated_at = %(now)s
      FROM picked
     WHERE j.id = picked.id AND j.status = 'pending'
    RETURNING j.*
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt)
    SELECT id, %(now)s, 'pending', 'processing', 'claim', %(consumer_id)s, attempts FROM claimed
)
SELECT * FROM claimed;

-- name: runnable_exists_any_queue
SELECT 1 FROM jobs WHERE status = 'pending' AND run_at <= %(now)s LIMIT 1;

-- name: runnable_exists_in_queues
SELECT 1 FROM jobs
 WHERE status = 'pending' AND run_at <= %(now)s AND queue = ANY(%(queues)s::text[])
 LIMIT 1;

-- name: next_run_at_any_queue
SELECT min(run_at) AS run_at FROM jobs WHERE status = 'pending';

-- name: next_run_at_in_queues
SELECT min(run_at) AS run_at FROM jobs
 WHERE status = 'pending' AND queue = ANY(%(queues)s::text[]);

-- name: job_heartbeat
UPDATE jobs SET lease_expires_at = %(lease_expires_at)s, updated_at = %(now)s
 WHERE id = %(id)s AND status = 'processing' AND lease_token = %(token)s
RETURNING lease_expires_at;

-- name: job_to_final
-- done, permanently_failed or cancelled: the lease is dropped, the finish time kept.
WITH moved AS (
    UPDATE jobs
       SET status = %(to_status)s, error = %(error)s, finished_at = %(now)s,
           updated_at = %(now)s, lease_token = NULL, lease_expires_at = NULL
     WHERE id = %(id)s AND status = %(expected)s
       AND (%(token)s::text IS NULL OR lease_token = %(token)s::text)
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
    SELECT id, %(now)s, %(expected)s, status, %(action)s, %(actor)s, attempts, %(detail)s::text
      FROM moved
)
SELECT * FROM moved;

-- name: job_complete
-- The lease holder's completion, without reading the job first (the hot path). The
-- history names the holder, as when the job was read first.
WITH moved AS (
    UPDATE jobs
       SET status = 'done', error = NULL, finished_at = %(now)s, updated_at = %(now)s,
           lease_token = NULL, lease_expires_at = NULL
     WHERE id = %(id)s AND status = 'processing' AND lease_token = %(token)s
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt)
    SELECT id, %(now)s, 'processing', 'done', 'complete',
           coalesce(%(actor)s::text, consumer_id, 'consumer'), attempts
      FROM moved
)
SELECT * FROM moved;

-- name: job_to_failed
WITH moved AS (
    UPDATE jobs
       SET status = 'failed', error = %(error)s, run_at = %(run_at)s, updated_at = %(now)s,
           lease_token = NULL, lease_expires_at = NULL
     WHERE id = %(id)s AND status = %(expected)s
       AND (%(token)s::text IS NULL OR lease_token = %(token)s::text)
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
    SELECT id, %(now)s, %(expected)s, status, %(action)s, %(actor)s, attempts, %(detail)s::text
      FROM moved
)
SELECT * FROM moved;

-- name: job_to_pending
WITH moved AS (
    UPDATE jobs
       SET status = 'pending', error = %(error)s, run_at = %(run_at)s, attempts = %(attempts)s,
           updated_at = %(now)s, finished_at = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE id = %(id)s AND status = %(expected)s
       AND (%(token)s::text IS NULL OR lease_token = %(token)s::text)
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
    SELECT id, %(now)s, %(expected)s, status, %(action)s, %(actor)s, attempts, %(detail)s::text
      FROM moved
)
SELECT * FROM moved;

-- name: expired_leases
SELECT * FROM jobs
 WHERE status = 'processing' AND lease_expires_at < %(now)s
 ORDER BY lease_expires_at, id LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: stalled_processing
SELECT * FROM jobs
 WHERE status = 'processing' AND started_at < %(started_before)s
 ORDER BY started_at, id LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: due_retries
SELECT * FROM jobs
 WHERE status = 'failed' AND run_at <= %(now)s
 ORDER BY run_at, id LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: failed_out_of_attempts
SELECT * FROM jobs
 WHERE status = 'failed' AND attempts >= max_attempts
 ORDER BY id LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: done_purge
DELETE FROM jobs
 WHERE id IN (SELECT id FROM jobs
               WHERE status = 'done' AND finished_at < %(finished_before)s
               ORDER BY id LIMIT %(limit)s);

-- name: counts_active
-- The small states, counted live from the (status, id) index.
SELECT status::text AS status, count(*) AS n FROM jobs
 WHERE status IN ('pending', 'processing', 'failed')
 GROUP BY status;

-- name: counts_active_for_queue
SELECT status::text AS status, count(*) AS n FROM jobs
 WHERE status IN ('pending', 'processing', 'failed') AND queue = %(queue)s
 GROUP BY status;

-- name: counts_final
-- The final states, from the appended deltas; rows says when to fold them.
SELECT status::text AS status, sum(n) AS n, count(*) AS rows FROM job_count_deltas
 GROUP BY status;

-- name: counts_final_for_queue
SELECT status::text AS status, sum(n) AS n, count(*) AS rows FROM job_count_deltas
 WHERE queue = %(queue)s
 GROUP BY status;

-- name: count_deltas_fold
-- Each delta row is deleted exactly once (a concurrent fold skips rows this one took),
-- and its sum written back, so folding never changes a count.
WITH folded AS (
    DELETE FROM job_count_deltas RETURNING queue, status, n
)
INSERT INTO job_count_deltas (queue, status, n)
SELECT queue, status, sum(n) FROM folded GROUP BY queue, status HAVING sum(n) <> 0;

-- name: oldest_runnable_pending
SELECT min(run_at) AS run_at FROM jobs
 WHERE status = 'pending' AND run_at <= %(now)s
   AND (%(queue)s::text IS NULL OR queue = %(queue)s::text);

-- name: stalled_count
SELECT count(*) AS n FROM jobs
 WHERE status = 'processing' AND lease_expires_at < %(now)s
   AND (%(queue)s::text IS NULL OR queue = %(queue)s::text);

-- name: consumer_register
INSERT INTO consumers (id, host, pid, queues, started_at, last_heartbeat, state,
                       current_job_id, jobs_done, jobs_failed)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s, %(now)s, %(now)s, 'idle', NULL, 0, 0)
ON CONFLICT (id) DO UPDATE
   SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
       started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat,
       state = 'idle', current_job_id = NULL, jobs_done = 0, jobs_failed = 0;

-- name: consumer_heartbeat
UPDATE consumers
   SET last_heartbeat = %(now)s, state = %(state)s, current_job_id = %(current_job_id)s,
       jobs_done = %(jobs_done)s, jobs_failed = %(jobs_failed)s
 WHERE id = %(id)s
RETURNING id;

-- name: consumer_deregister
UPDATE consumers SET state = 'stopped', current_job_id = NULL, last_heartbeat = %(now)s
 WHERE id = %(id)s;

-- name: consumers_mark_dead
UPDATE consumers SET state = 'dead', current_job_id = NULL
 WHERE state IN ('idle', 'busy') AND last_heartbeat < %(heartbeat_before)s
RETURNING id;

-- name: consumers_purge
DELETE FROM consumers
 WHERE state IN ('stopped', 'dead') AND last_heartbeat < %(heartbeat_before)s;

-- name: consumers_all
SELECT * FROM consumers ORDER BY state = 'dead', id;

-- name: leader_attempt_elect
INSERT INTO leadership (name, holder, elected_at, expires_at)
VALUES (%(name)s, %(holder)s, %(now)s, %(expires_at)s)
ON CONFLICT (name) DO UPDATE
   SET holder = excluded.holder, expires_at = excluded.expires_at,
       elected_at = CASE WHEN leadership.holder = excluded.holder
                         THEN leadership.elected_at ELSE excluded.elected_at END
 WHERE leadership.holder = excluded.holder OR leadership.expires_at < %(now)s
RETURNING holder;

-- name: leader_resign
DELETE FROM leadership WHERE name = %(name)s AND holder = %(holder)s;

-- name: leader_get
SELECT holder, elected_at, expires_at FROM leadership WHERE name = %(name)s;

-- name: audit_completed_twice
SELECT job_id, count(*) AS n FROM job_events
 WHERE to_status = 'done' GROUP BY job_id HAVING count(*) > 1 LIMIT 20;

-- name: audit_done_without_event
SELECT j.id FROM jobs AS j
 WHERE j.status = 'done'
   AND NOT EXISTS (SELECT 1 FROM job_events AS e WHERE e.job_id = j.id AND e.to_status = 'done')
 LIMIT 20;

-- name: audit_status_differs_from_history
SELECT j.id, j.status::text AS status, e.to_status::text AS last FROM jobs AS j
  JOIN job_events AS e ON e.id = (SELECT max(id) FROM job_events WHERE job_id = j.id)
 WHERE e.to_status <> j.status
 LIMIT 20;

-- name: audit_job_without_history
SELECT j.id FROM jobs AS j
 WHERE NOT EXISTS (SELECT 1 FROM job_events AS e WHERE e.job_id = j.id)
 LIMIT 20;

-- name: audit_lease_mismatch
SELECT id, status::text AS status FROM jobs
 WHERE (status = 'processing') <> (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)
 LIMIT 20;

-- name: audit_counts
SELECT coalesce(a.queue, c.queue) AS queue, coalesce(a.status, c.status)::text AS status,
       coalesce(a.n, 0) AS actual, coalesce(c.n, 0) AS counted
  FROM (SELECT queue, status, count(*) AS n FROM jobs
         WHERE status IN ('done', 'permanently_failed', 'cancelled')
         GROUP BY queue, status) AS a
  FULL OUTER JOIN (SELECT queue, status, sum(n) AS n FROM job_count_deltas
                    GROUP BY queue, status) AS c
    ON c.queue = a.queue AND c.status = a.status
 WHERE coalesce(a.n, 0) <> coalesce(c.n, 0);

-- name: audit_edges
SELECT DISTINCT from_status::text AS from_status, to_status::text AS to_status
  FROM job_events;

-- name: audit_active_dedupe_duplicates
SELECT dedupe_key, count(*) AS n FROM jobs
 WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing', 'failed')
 GROUP BY dedupe_key HAVING count(*) > 1 LIMIT 20;
