-- Named queries of the SQLite backend, loaded by name (pqcore.sql.load).
-- Every state change is guarded by the expected current state (and, for the
-- lease holder, its token): zero rows changed means another actor won.

-- name: job_insert
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  dedupe_key, created_at, updated_at)
VALUES (:queue, :data, 'pending', :priority, :run_at, 0, :max_attempts,
        :dedupe_key, :now, :now)
RETURNING *;

-- name: job_insert_plain
-- enqueue_many's path when no job has a dedupe key: executemany, then read back.
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  dedupe_key, created_at, updated_at)
VALUES (:queue, :data, 'pending', :priority, :run_at, 0, :max_attempts, NULL, :now, :now);

-- name: jobs_last_id
-- AUTOINCREMENT keeps every id ever used at or below this, so inside the write
-- transaction every row above it is one this transaction inserted.
SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0);

-- name: jobs_after
SELECT * FROM jobs WHERE id > :after ORDER BY id;

-- name: events_enqueued_after
INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
SELECT id, created_at, NULL, 'pending', 'enqueue', :actor, 0, NULL
  FROM jobs WHERE id > :after ORDER BY id;

-- name: seed_done_jobs
-- seed_finished_jobs: :count jobs already done, written set-wise.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO jobs (queue, data, status, priority, run_at, attempts, max_attempts,
                  consumer_id, created_at, updated_at, started_at, finished_at)
SELECT :queue, :data, 'done', 0, :now, 1, :max_attempts, :actor, :now, :now, :now, :now
  FROM n;

-- name: seed_done_events
-- The history a real run leaves: enqueue, claim, complete, in that order per job.
INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
SELECT jobs.id, :now, step.from_status, step.to_status, step.action, :actor, step.attempt, NULL
  FROM jobs,
       (SELECT 1 AS ord, NULL AS from_status, 'pending' AS to_status, 'enqueue' AS action,
               0 AS attempt
        UNION ALL SELECT 2, 'pending', 'processing', 'claim', 1
        UNION ALL SELECT 3, 'processing', 'done', 'complete', 1) AS step
 WHERE jobs.id > :after
 ORDER BY jobs.id, step.ord;

-- name: job_by_active_dedupe_key
SELECT * FROM jobs
 WHERE dedupe_key = :dedupe_key AND status IN ('pending', 'processing', 'failed');

-- name: job_get
SELECT * FROM jobs WHERE id = :id;

-- name: event_insert
INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
VALUES (:job_id, :at, :from_status, :to_status, :action, :actor, :attempt, :detail);

-- name: events_for_job
SELECT * FROM job_events WHERE job_id = :job_id ORDER BY id;

-- name: dedupe_keys_known
-- Any state: the partial unique index covers active jobs only, so this may scan.
SELECT DISTINCT dedupe_key FROM jobs
 WHERE dedupe_key IN (SELECT value FROM json_each(:keys));

-- name: last_event_id
SELECT coalesce(max(id), 0) FROM job_events;

-- name: events_after
SELECT * FROM job_events
 WHERE id > :after_id AND (:to_status IS NULL OR to_status = :to_status)
 ORDER BY id LIMIT :limit;

-- name: claim_one_queue
UPDATE jobs
   SET status = 'processing', attempts = attempts + 1, consumer_id = :consumer_id,
       lease_token = lower(hex(randomblob(16))), lease_expires_at = :lease_expires_at,
       started_at = :now, finished_at = NULL, updated_at = :now
 WHERE id IN (SELECT id FROM jobs
               WHERE status = 'pending' AND queue = :queue AND run_at <= :now
               ORDER BY priority DESC, run_at, id
               LIMIT :limit)
   AND status = 'pending'
RETURNING *;

-- name: claim_many_queues
UPDATE jobs
   SET status = 'processing', attempts = attempts + 1, consumer_id = :consumer_id,
       lease_token = lower(hex(randomblob(16))), lease_expires_at = :lease_expires_at,
       started_at = :now, finished_at = NULL, updated_at = :now
 WHERE id IN (SELECT id FROM jobs
               WHERE status = 'pending' AND run_at <= :now
                 AND queue IN (SELECT value FROM json_each(:queues))
               ORDER BY priority DESC, run_at, id
               LIMIT :limit)
   AND status = 'pending'
RETURNING *;

-- name: queues_with_pending
SELECT queue FROM job_counts WHERE status = 'pending' AND n > 0;

-- name: runnable_exists
SELECT 1 FROM jobs
 WHERE status = 'pending' AND run_at <= :now
   AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
 LIMIT 1;

-- name: next_run_at
SELECT min(run_at) FROM jobs
 WHERE status = 'pending'
   AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)));

-- name: job_heartbeat
UPDATE jobs SET lease_expires_at = :lease_expires_at, updated_at = :now
 WHERE id = :id AND status = 'processing' AND lease_token = :token
RETURNING lease_expires_at;

-- name: jobs_complete_held
-- processing -> done for many held jobs in one statement; :ids is a JSON array of ids,
-- :held a JSON array of "id:token" texts, so a job only matches with its own token.
UPDATE jobs
   SET status = 'done', error = NULL, finished_at = :now, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL
 WHERE status = 'processing'
   AND id IN (SELECT value FROM json_each(:ids))
   AND (id || ':' || lease_token) IN (SELECT value FROM json_each(:held))
RETURNING *;

-- name: job_to_final
-- done, permanently_failed or cancelled: the lease is dropped, the finish time kept.
UPDATE jobs
   SET status = :to_status, error = :error, finished_at = :now, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL
 WHERE id = :id AND status = :expected AND (:token IS NULL OR lease_token = :token)
RETURNING *;

-- name: job_to_failed
UPDATE jobs
   SET status = 'failed', error = :error, run_at = :run_at, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL
 WHERE id = :id AND status = :expected AND (:token IS NULL OR lease_token = :token)
RETURNING *;

-- name: job_to_pending
UPDATE jobs
   SET status = 'pending', error = :error, run_at = :run_at, attempts = :attempts,
       updated_at = :now, finished_at = NULL, lease_token = NULL, lease_expires_at = NULL
 WHERE id = :id AND status = :expected AND (:token IS NULL OR lease_token = :token)
RETURNING *;

-- name: expired_leases
SELECT * FROM jobs
 WHERE status = 'processing' AND lease_expires_at < :now
 ORDER BY lease_expires_at LIMIT :limit;

-- name: stalled_processing
SELECT * FROM jobs
 WHERE status = 'processing' AND started_at < :started_before
 ORDER BY started_at LIMIT :limit;

-- name: due_retries
SELECT * FROM jobs
 WHERE status = 'failed' AND run_at <= :now
 ORDER BY run_at LIMIT :limit;

-- name: failed_out_of_attempts
SELECT * FROM jobs
 WHERE status = 'failed' AND attempts >= max_attempts
 LIMIT :limit;

-- name: done_purge
DELETE FROM jobs
 WHERE id IN (SELECT id FROM jobs
               WHERE status = 'done' AND finished_at < :finished_before
               ORDER BY id LIMIT :limit);

-- name: counts_by_status
SELECT status, sum(n) AS n FROM job_counts GROUP BY status;

-- name: counts_by_status_for_queue
SELECT status, n FROM job_counts WHERE queue = :queue;

-- name: oldest_runnable_pending
SELECT min(run_at) FROM jobs
 WHERE status = 'pending' AND run_at <= :now AND (:queue IS NULL OR queue = :queue);

-- name: stalled_count
SELECT count(*) FROM jobs
 WHERE status = 'processing' AND lease_expires_at < :now AND (:queue IS NULL OR queue = :queue);

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
 WHERE state IN ('idle', 'busy') AND last_heartbeat < :heartbeat_before
RETURNING id;

-- name: consumers_purge
DELETE FROM consumers WHERE state IN ('stopped', 'dead') AND last_heartbeat < :heartbeat_before;

-- name: consumers_all
SELECT * FROM consumers ORDER BY state = 'dead', id;

-- name: leader_attempt_elect
INSERT INTO leadership (name, holder, elected_at, expires_at)
VALUES (:name, :holder, :now, :expires_at)
ON CONFLICT (name) DO UPDATE
   SET holder = excluded.holder, expires_at = excluded.expires_at,
       elected_at = CASE WHEN leadership.holder = excluded.holder
                         THEN leadership.elected_at ELSE excluded.elected_at END
 WHERE leadership.holder = excluded.holder OR leadership.expires_at < :now
RETURNING holder;

-- name: leader_resign
DELETE FROM leadership WHERE name = :name AND holder = :holder;

-- name: leader_get
SELECT holder, elected_at, expires_at FROM leadership WHERE name = :name;

-- name: audit_completed_twice
SELECT job_id, count(*) AS n FROM job_events
 WHERE to_status = 'done' GROUP BY job_id HAVING count(*) > 1 LIMIT 20;

-- name: audit_done_without_event
SELECT j.id FROM jobs AS j
 WHERE j.status = 'done'
   AND NOT EXISTS (SELECT 1 FROM job_events AS e WHERE e.job_id = j.id AND e.to_status = 'done')
 LIMIT 20;

-- name: audit_status_differs_from_history
SELECT j.id, j.status, e.to_status FROM jobs AS j
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

-- name: audit_counts
SELECT coalesce(a.queue, c.queue) AS queue, coalesce(a.status, c.status) AS status,
       coalesce(a.n, 0) AS actual, coalesce(c.n, 0) AS counted
  FROM (SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status) AS a
  FULL OUTER JOIN job_counts AS c ON c.queue = a.queue AND c.status = a.status
 WHERE coalesce(a.n, 0) <> coalesce(c.n, 0);

-- name: audit_edges
SELECT DISTINCT from_status, to_status FROM job_events;

-- name: audit_active_dedupe_duplicates
SELECT dedupe_key, count(*) AS n FROM jobs
 WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing', 'failed')
 GROUP BY dedupe_key HAVING count(*) > 1 LIMIT 20;

-- ---------------------------------------------------------------- console charts

-- name: queue_names
SELECT queue FROM job_counts GROUP BY queue HAVING sum(n) > 0 ORDER BY queue;

-- name: throughput
SELECT CAST(at / :bucket AS INTEGER) * :bucket AS start,
       sum(action = 'enqueue') AS enqueued,
       sum(action IN ('complete', 'mark_done')) AS completed,
       sum(action IN ('fail', 'dead_letter', 'mark_failed')) AS failed
  FROM job_events
 WHERE at >= :since
 GROUP BY 1
 ORDER BY 1;

-- name: failure_reasons
-- The newest failed and dead-lettered jobs, each walked from (status, id) newest first.
SELECT reason, count(*) AS n
  FROM (SELECT substr(error, 1, 160) AS reason FROM
          (SELECT error, id FROM jobs WHERE status = 'permanently_failed'
            ORDER BY id DESC LIMIT :sample)
        UNION ALL
        SELECT substr(error, 1, 160) FROM
          (SELECT error, id FROM jobs WHERE status = 'failed'
            ORDER BY id DESC LIMIT :sample))
 WHERE reason IS NOT NULL
 GROUP BY reason
 ORDER BY n DESC, reason
 LIMIT :limit;

-- name: attempts_histogram
-- Jobs never tried (a pending backlog) say nothing about retries: skipped.
SELECT attempts, count(*) AS n
  FROM (SELECT attempts FROM jobs WHERE attempts > 0 ORDER BY id DESC LIMIT :sample)
 GROUP BY attempts
 ORDER BY attempts;

-- name: processing_seconds
SELECT finished_at - started_at AS seconds FROM jobs
 WHERE status = 'done' AND started_at IS NOT NULL AND finished_at >= started_at
 ORDER BY id DESC
 LIMIT :sample;
