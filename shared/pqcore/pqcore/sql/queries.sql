-- The queue's named queries, written once for every dialect (pqcore.sql.load).
--
-- Placeholders are :name; the loader rewrites them for each driver. Macros in braces
-- stand for what a dialect spells its own way, each driver says how (drivers/*.py):
--   {skip_locked}      row locks a concurrent claimer skips (nothing on SQLite, which
--                      has one writer at a time)
--   {new_token}        a fresh random lease token
--   {unindexed}        before a column: keep SQLite's planner off its index (a unary
--                      plus); nothing on PostgreSQL, whose planner has statistics
--   {active_states}    the states a dedupe key is unique among (pqcore.states)
--   {final_states}     the states no one moves a job out of on their own
--   IN_LIST(:name)     membership in a list parameter
-- :now is the queue's clock: a value the caller passes in tests; otherwise the driver's
-- clock (the database server's on PostgreSQL, so hosts whose clocks disagree agree).
--
-- Every state change is one statement guarded by the expected current state (and, for
-- the lease holder, its token): zero rows changed means another actor won. History is
-- written by the database itself (migrations: the jobs_history triggers) from the
-- last_action/last_actor/last_detail a transition sets, in the same statement.
-- A dialect file (sqlite.sql, postgresql.sql) overrides a query under the same name
-- only where the SQL must differ, saying why.

-- name: job_insert
-- One job. A job whose dedupe key an active job holds is not inserted (no row).
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  dedupe_key, concurrency_key, waiting_for, created_at, updated_at,
                  last_action, last_actor)
VALUES (:queue, :data, 'pending', :priority, coalesce(:run_at, :now + :delay), 0,
        :max_attempts, :dedupe_key, :concurrency_key, :waiting_for, :now, :now,
        'enqueue', :actor)
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN {active_states}
DO NOTHING
RETURNING *;

-- name: job_insert_plain_one
{_insert_plain_one};

-- name: job_enqueue_plain_one
-- A claimable job without a dedupe key, enqueued: the insert, and on PostgreSQL the
-- wake-up in the same statement (postgresql.sql), so one enqueue is one round trip.
{_insert_plain_one};

-- name: _insert_plain_one
-- One job without a dedupe key: no conflict is possible, so no upsert to pay for.
-- :waiting_for counts the jobs it depends on that have not finished (0: claimable).
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  concurrency_key, waiting_for, created_at, updated_at, last_action, last_actor)
VALUES (:queue, :data, 'pending', :priority, coalesce(:run_at, :now + :delay), 0,
        :max_attempts, :concurrency_key, :waiting_for, :now, :now, 'enqueue', :actor)
RETURNING *;

-- name: job_by_active_dedupe_key
SELECT * FROM jobs WHERE dedupe_key = :dedupe_key AND status IN {active_states};

-- name: job_get
SELECT * FROM jobs WHERE id = :id;

-- name: clock_now
-- The queue's clock as a number (on PostgreSQL the server's, in this transaction).
SELECT :now AS now;

-- name: clock_after_lock
-- The clock read once a lock a decision depends on was granted: the caller's value
-- (the host's clock, or a test's) here, the server's at this statement on PostgreSQL.
SELECT :at AS now;

-- name: events_for_job
SELECT * FROM job_events WHERE job_id = :job_id ORDER BY id;

-- name: last_event_for_job
SELECT * FROM job_events WHERE job_id = :job_id ORDER BY id DESC LIMIT 1;

-- name: dedupe_keys_known
-- Any state: the partial unique index covers active jobs only, so this may scan.
SELECT DISTINCT dedupe_key FROM jobs WHERE dedupe_key IN_LIST(:keys);

-- name: last_event_id
SELECT coalesce(max(id), 0) AS id FROM job_events;

-- name: events_after
SELECT * FROM job_events WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: events_after_to_status
SELECT * FROM job_events
 WHERE id > :after_id AND to_status = :to_status
 ORDER BY id LIMIT :limit;

-- ---------------------------------------------------------------- claiming
-- The picked ids are materialized: PostgreSQL could otherwise run a SKIP LOCKED
-- subquery once per outer row and claim more than :limit jobs.
-- These claims skip every queue with a queue_controls row (paused or limited): those
-- are claimed by controls.sql's queries, under their limits.
-- A job waiting for dependencies (waiting_for > 0) is never a candidate: the claim
-- indexes hold only pending rows at 0, and every claim and wait names the same condition
-- (status = 'pending' AND waiting_for = 0, so both planners use those partial indexes).
-- The UPDATE below does not repeat it: picked rows are locked with the condition
-- rechecked (PostgreSQL) or under the one writer's lock (SQLite), and naming it there
-- would let PostgreSQL's planner walk the whole claim index to find the picked ids.

-- name: _claim_picked
UPDATE jobs
   SET status = 'processing', attempts = attempts + 1, consumer_id = :consumer_id,
       lease_token = {new_token}, lease_expires_at = :now + :lease_seconds,
       started_at = :now, finished_at = NULL, updated_at = :now,
       progress = NULL, progress_message = NULL, progress_at = NULL,
       last_action = 'claim', last_actor = :consumer_id, last_detail = NULL
 WHERE id IN (SELECT id FROM picked) AND status = 'pending'
RETURNING *;

-- name: claim_one_queue
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
     WHERE status = 'pending' AND waiting_for = 0 AND queue = :queue AND run_at <= :now
       AND NOT EXISTS (SELECT 1 FROM queue_controls WHERE queue = :queue)
     ORDER BY priority DESC, run_at, id
     LIMIT :limit {skip_locked}
)
{_claim_picked};

-- name: claim_in_queues
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
     WHERE status = 'pending' AND waiting_for = 0 AND queue IN_LIST(:queues)
       AND run_at <= :now
       AND queue NOT IN (SELECT queue FROM queue_controls)
     ORDER BY priority DESC, run_at, id
     LIMIT :limit {skip_locked}
)
{_claim_picked};

-- name: claim_any_queue
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
     WHERE status = 'pending' AND waiting_for = 0 AND run_at <= :now
       AND queue NOT IN (SELECT queue FROM queue_controls)
     ORDER BY priority DESC, run_at, id
     LIMIT :limit {skip_locked}
)
{_claim_picked};

-- name: runnable_wait
-- 0 when a job is runnable now, else the seconds until the next pending job comes due,
-- measured on the queue's clock; NULL when nothing is pending. Jobs waiting for
-- dependencies are not counted: a waiter sleeps until a finishing job rings for them.
SELECT CASE WHEN min(run_at) <= :now THEN 0.0 ELSE min(run_at) - :now END AS wait
  FROM jobs WHERE status = 'pending' AND waiting_for = 0
   AND queue NOT IN (SELECT queue FROM queue_controls);

-- name: runnable_wait_in_queues
SELECT CASE WHEN min(run_at) <= :now THEN 0.0 ELSE min(run_at) - :now END AS wait
  FROM jobs WHERE status = 'pending' AND waiting_for = 0 AND queue IN_LIST(:queues)
   AND queue NOT IN (SELECT queue FROM queue_controls);

-- ---------------------------------------------------------------- the lease holder

-- name: job_heartbeat
UPDATE jobs SET lease_expires_at = :now + :lease_seconds, updated_at = :now
 WHERE id = :id AND status = 'processing' AND lease_token = :token
RETURNING lease_expires_at;

-- name: jobs_complete_held
-- processing -> done for many held jobs in one statement: :ids lists their ids and
-- :held their "id:token" texts, so a job only matches with its own token. The history
-- names the holder (or :actor, when given).
UPDATE jobs
   SET status = 'done', error = NULL, finished_at = :now, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL,
       last_action = 'complete', last_actor = coalesce(:actor, consumer_id, 'consumer'),
       last_detail = NULL
 WHERE status = 'processing'
   AND id IN_LIST(:ids)
   AND (id || ':' || lease_token) IN_LIST(:held)
RETURNING *;

-- ---------------------------------------------------------------- transitions
-- The guarded moves every other transition goes through (Queue._apply).

-- name: job_to_final
-- done, permanently_failed or cancelled: the lease is dropped, the finish time kept.
UPDATE jobs
   SET status = :to_status, error = :error, finished_at = :now, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL,
       last_action = :action, last_actor = :actor, last_detail = :detail
 WHERE id = :id AND status = :expected AND (CAST(:token AS TEXT) IS NULL OR lease_token = :token)
RETURNING *;

-- name: job_to_failed
UPDATE jobs
   SET status = 'failed', error = :error, run_at = :now + :delay, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL,
       last_action = :action, last_actor = :actor, last_detail = :detail
 WHERE id = :id AND status = :expected AND (CAST(:token AS TEXT) IS NULL OR lease_token = :token)
RETURNING *;

-- name: job_to_pending
UPDATE jobs
   SET status = 'pending', error = :error, run_at = :now + :delay, attempts = :attempts,
       updated_at = :now, finished_at = NULL, lease_token = NULL, lease_expires_at = NULL,
       last_action = :action, last_actor = :actor, last_detail = :detail
 WHERE id = :id AND status = :expected AND (CAST(:token AS TEXT) IS NULL OR lease_token = :token)
RETURNING *;

-- ---------------------------------------------------------------- the manager

-- name: expired_leases
SELECT * FROM jobs
 WHERE status = 'processing' AND lease_expires_at < :now
 ORDER BY lease_expires_at, id LIMIT :limit {skip_locked};

-- name: expired_leases_read
-- The same, read only (no lock): the first look of a confirmed rescue.
SELECT * FROM jobs
 WHERE status = 'processing' AND lease_expires_at < :now
 ORDER BY lease_expires_at, id LIMIT :limit;

-- name: expired_leases_among
-- The expired leases among :ids, locked, for a rescue confirmed by a second look.
SELECT * FROM jobs
 WHERE status = 'processing' AND lease_expires_at < :now AND id IN_LIST(:ids)
 ORDER BY lease_expires_at, id {skip_locked};

-- name: stalled_processing
SELECT * FROM jobs
 WHERE status = 'processing' AND started_at < :now - :stall_timeout
 ORDER BY started_at, id LIMIT :limit {skip_locked};

-- name: due_retries
SELECT * FROM jobs
 WHERE status = 'failed' AND run_at <= :now
 ORDER BY run_at, id LIMIT :limit {skip_locked};

-- name: failed_out_of_attempts
SELECT * FROM jobs
 WHERE status = 'failed' AND attempts >= max_attempts
 ORDER BY id LIMIT :limit {skip_locked};

-- name: done_purge
DELETE FROM jobs
 WHERE id IN (SELECT id FROM jobs
               WHERE status = 'done' AND finished_at < :now - :older_than
               ORDER BY id LIMIT :limit);

-- ---------------------------------------------------------------- stats

-- name: oldest_runnable_pending_age
-- Waiting for dependencies is not waiting for a consumer: those jobs are not counted.
SELECT :now - min(run_at) AS age FROM jobs
 WHERE status = 'pending' AND waiting_for = 0 AND run_at <= :now;

-- name: oldest_runnable_pending_age_for_queue
SELECT :now - min(run_at) AS age FROM jobs
 WHERE status = 'pending' AND waiting_for = 0 AND run_at <= :now AND queue = :queue;

-- name: stalled_count
SELECT count(*) AS n FROM jobs WHERE status = 'processing' AND lease_expires_at < :now;

-- name: stalled_count_for_queue
SELECT count(*) AS n FROM jobs
 WHERE status = 'processing' AND lease_expires_at < :now AND queue = :queue;

-- ---------------------------------------------------------------- consumers

-- name: consumer_register
INSERT INTO consumers (id, host, pid, queues, started_at, last_heartbeat, state,
                       current_job_id, jobs_done, jobs_failed)
VALUES (:id, :host, :pid, :queues, :now, :now, 'idle', NULL, 0, 0)
ON CONFLICT (id) DO UPDATE
   SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
       started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat,
       state = 'idle', current_job_id = NULL, jobs_done = 0, jobs_failed = 0;

-- name: consumer_heartbeat
UPDATE consumers
   SET last_heartbeat = :now, state = :state, current_job_id = :current_job_id,
       jobs_done = :jobs_done, jobs_failed = :jobs_failed
 WHERE id = :id
RETURNING id;

-- name: consumer_deregister
UPDATE consumers SET state = 'stopped', current_job_id = NULL, last_heartbeat = :now
 WHERE id = :id;

-- name: consumers_mark_dead
UPDATE consumers SET state = 'dead', current_job_id = NULL
 WHERE state IN ('idle', 'busy') AND last_heartbeat < :now - :timeout
RETURNING id;

-- name: consumers_purge
DELETE FROM consumers
 WHERE state IN ('stopped', 'dead') AND last_heartbeat < :now - :older_than;

-- name: consumers_all
SELECT * FROM consumers ORDER BY state = 'dead', id;

-- ---------------------------------------------------------------- leadership

-- name: leader_attempt_elect
INSERT INTO leadership (name, holder, elected_at, expires_at)
VALUES (:name, :holder, :now, :now + :ttl)
ON CONFLICT (name) DO UPDATE
   SET holder = excluded.holder, expires_at = excluded.expires_at,
       elected_at = CASE WHEN leadership.holder = excluded.holder
                         THEN leadership.elected_at ELSE excluded.elected_at END
 WHERE leadership.holder = excluded.holder OR leadership.expires_at < :now
RETURNING holder;

-- name: leader_resign
DELETE FROM leadership WHERE name = :name AND holder = :holder;

-- name: leader_get
SELECT holder, elected_at, expires_at FROM leadership
 WHERE name = :name AND expires_at >= :now;

-- ---------------------------------------------------------------- the doctor's audit

-- name: audit_completed_twice
SELECT job_id, count(*) AS n FROM job_events
 WHERE to_status = 'done' GROUP BY job_id HAVING count(*) > 1 LIMIT 20;

-- name: audit_done_without_event
SELECT j.id FROM jobs AS j
 WHERE j.status = 'done'
   AND NOT EXISTS (SELECT 1 FROM job_events AS e WHERE e.job_id = j.id AND e.to_status = 'done')
 LIMIT 20;

-- name: audit_status_differs_from_history
SELECT j.id, j.status, e.to_status AS last FROM jobs AS j
  JOIN job_events AS e ON e.id = (SELECT max(id) FROM job_events WHERE job_id = j.id)
 WHERE e.to_status <> j.status
 LIMIT 20;

-- name: audit_job_without_history
SELECT j.id FROM jobs AS j
 WHERE NOT EXISTS (SELECT 1 FROM job_events AS e WHERE e.job_id = j.id)
 LIMIT 20;

-- name: audit_lease_mismatch
SELECT id, status FROM jobs
 WHERE (status = 'processing') <> (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)
 LIMIT 20;

-- name: audit_edges
SELECT DISTINCT from_status, to_status FROM job_events;

-- name: audit_active_dedupe_duplicates
SELECT dedupe_key, count(*) AS n FROM jobs
 WHERE dedupe_key IS NOT NULL AND status IN {active_states}
 GROUP BY dedupe_key HAVING count(*) > 1 LIMIT 20;

-- ---------------------------------------------------------------- console charts

-- name: queue_names
SELECT DISTINCT queue FROM jobs ORDER BY queue;

-- name: throughput
SELECT floor(at / :bucket) * :bucket AS start,
       sum(CASE WHEN action = 'enqueue' THEN 1 ELSE 0 END) AS enqueued,
       sum(CASE WHEN action IN ('complete', 'mark_done') THEN 1 ELSE 0 END) AS completed,
       sum(CASE WHEN action IN ('fail', 'dead_letter', 'mark_failed') THEN 1 ELSE 0 END)
           AS failed
  FROM job_events
 WHERE at >= :since
 GROUP BY 1
 ORDER BY 1;

-- name: failure_reasons
-- The newest failed and dead-lettered jobs, each walked from (status, id) newest first.
SELECT reason, count(*) AS n
  FROM (SELECT reason FROM (SELECT substr(error, 1, 160) AS reason FROM jobs
                             WHERE status = 'permanently_failed'
                             ORDER BY id DESC LIMIT :sample) AS dead
        UNION ALL
        SELECT reason FROM (SELECT substr(error, 1, 160) AS reason FROM jobs
                             WHERE status = 'failed'
                             ORDER BY id DESC LIMIT :sample) AS failed) AS recent
 WHERE reason IS NOT NULL
 GROUP BY reason
 ORDER BY n DESC, reason
 LIMIT :limit;

-- name: failure_samples
-- The errors of the newest failed and dead-lettered jobs, newest first in each state,
-- for pqcore.failures to group (a traceback's last line can be far into the text).
SELECT status, error FROM (SELECT status, error FROM jobs
                            WHERE status = 'permanently_failed' AND error IS NOT NULL
                            ORDER BY id DESC LIMIT :sample) AS dead
UNION ALL
SELECT status, error FROM (SELECT status, error FROM jobs
                            WHERE status = 'failed' AND error IS NOT NULL
                            ORDER BY id DESC LIMIT :sample) AS failed;

-- name: throughput_by_queue
-- The history of the window (job_events_at), each row's queue from its job.
SELECT j.queue AS queue,
       sum(CASE WHEN e.action = 'enqueue' THEN 1 ELSE 0 END) AS enqueued,
       sum(CASE WHEN e.action IN ('complete', 'mark_done') THEN 1 ELSE 0 END) AS completed,
       sum(CASE WHEN e.action IN ('fail', 'dead_letter', 'mark_failed') THEN 1 ELSE 0 END)
           AS failed
  FROM job_events AS e
  JOIN jobs AS j ON j.id = e.job_id
 WHERE e.at >= :since
 GROUP BY j.queue
 ORDER BY j.queue;

-- name: attempts_histogram
-- Jobs never tried (a pending backlog) say nothing about retries: skipped.
SELECT attempts, count(*) AS n
  FROM (SELECT attempts FROM jobs WHERE attempts > 0 ORDER BY id DESC LIMIT :sample) AS recent
 GROUP BY attempts
 ORDER BY attempts;

-- name: processing_seconds
SELECT finished_at - started_at AS seconds FROM jobs
 WHERE status = 'done' AND started_at IS NOT NULL AND finished_at >= started_at
 ORDER BY id DESC
 LIMIT :sample;

-- ---------------------------------------------------------------- seeding (pqcore.testing)
-- A big table of done jobs for benchmarks and tests, written set-wise through the same
-- triggers as real work, so each job carries the history a real run leaves.

-- name: seed_pending_jobs
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  created_at, updated_at, last_action, last_actor)
SELECT :queue, :data, 'pending', 0, :now, 0, :max_attempts, :now, :now, 'enqueue', :actor
  FROM n;

-- name: seed_claim_after
UPDATE jobs
   SET status = 'processing', attempts = 1, consumer_id = :actor, lease_token = {new_token},
       lease_expires_at = :now + 30, started_at = :now, updated_at = :now,
       last_action = 'claim', last_actor = :actor
 WHERE id > :after AND status = 'pending';

-- name: seed_complete_after
UPDATE jobs
   SET status = 'done', finished_at = :now, updated_at = :now, lease_token = NULL,
       lease_expires_at = NULL, last_action = 'complete', last_actor = :actor
 WHERE id > :after AND status = 'processing';

-- name: jobs_last_id
SELECT coalesce(max(id), 0) AS id FROM jobs;
