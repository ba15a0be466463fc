-- Results, progress and dependencies (pqcore.tasks, pqcore.dependencies); the tables are
-- migration 0005's. Placeholders and macros as in queries.sql.

-- ---------------------------------------------------------------- the lease holder

-- name: job_complete
-- processing -> done for one held job, storing its result (JSON text or NULL) in the same
-- statement. On the caller's own connection this is the completion that commits with the
-- caller's writes, or not at all.
UPDATE jobs
   SET status = 'done', error = NULL, result = :result, finished_at = :now, updated_at = :now,
       lease_token = NULL, lease_expires_at = NULL,
       last_action = 'complete', last_actor = coalesce(:actor, consumer_id, 'consumer'),
       last_detail = NULL
 WHERE id = :id AND status = 'processing' AND lease_token = :token
RETURNING *;

-- name: job_result_set
-- A result for a held job completed by the batch statement right after it (settle_and_claim),
-- in the same transaction and under the same guard.
UPDATE jobs SET result = :result
 WHERE id = :id AND status = 'processing' AND lease_token = :token;

-- name: job_progress
-- Not a transition: how far the holder got. Guarded by the lease like a heartbeat, so a
-- zombie cannot write progress over the attempt that replaced it.
UPDATE jobs SET progress = :progress, progress_message = :message, progress_at = :now
 WHERE id = :id AND status = 'processing' AND lease_token = :token
RETURNING id;

-- ---------------------------------------------------------------- dependencies

-- name: dependencies_lock
-- The jobs a new job will wait for, locked in id order (concurrent enqueues naming the
-- same jobs take their locks in one order). Their completion then waits for this
-- transaction, and its trigger sees the rows this one adds; or it went first, and this
-- reads the final state it left.
SELECT id, status, queue FROM jobs WHERE id IN_LIST(:ids) ORDER BY id {lock_dependency};

-- name: dependents_flag
-- Mark the jobs waited for, so their move into a final state resolves their dependents
-- (migrations: jobs_dependents_resolve). Written even when already set: a completion in a
-- REPEATABLE READ transaction then conflicts with this one instead of missing its rows.
UPDATE jobs SET has_dependents = TRUE WHERE id IN_LIST(:ids);

-- name: dependency_insert
-- :resolution is the final state the job waited for is already in (NULL: still running).
INSERT INTO job_dependencies (job_id, depends_on, on_failure, created_at, resolved_at,
                              resolution)
VALUES (:job_id, :depends_on, :on_failure, :now,
        CASE WHEN CAST(:resolution AS TEXT) IS NULL THEN NULL ELSE :now END,
        CAST(:resolution AS TEXT));

-- name: dependencies_of_job
-- What a job waits for (or waited for), with the state each of those jobs is in now
-- (NULL: purged).
SELECT d.job_id, d.depends_on, d.on_failure, d.created_at, d.resolved_at, d.resolution,
       j.status
  FROM job_dependencies AS d LEFT JOIN jobs AS j ON j.id = d.depends_on
 WHERE d.job_id = :id
 ORDER BY d.depends_on;

-- name: dependents_of_job
SELECT d.job_id, d.depends_on, d.on_failure, d.created_at, d.resolved_at, d.resolution,
       j.status
  FROM job_dependencies AS d JOIN jobs AS j ON j.id = d.job_id
 WHERE d.depends_on = :id
 ORDER BY d.job_id;

-- name: waiting_count
SELECT count(*) AS n FROM jobs WHERE status = 'pending' AND waiting_for > 0;

-- name: waiting_count_for_queue
SELECT count(*) AS n FROM jobs WHERE status = 'pending' AND waiting_for > 0 AND queue = :queue;

-- ---------------------------------------------------------------- the doctor's audit

-- name: audit_waiting_count
-- waiting_for must equal the job's open dependency rows.
SELECT j.id, j.waiting_for,
       (SELECT count(*) FROM job_dependencies AS d
         WHERE d.job_id = j.id AND d.resolved_at IS NULL) AS open
  FROM jobs AS j
 WHERE j.id IN (SELECT id FROM jobs WHERE waiting_for <> 0
                UNION SELECT job_id FROM job_dependencies WHERE resolved_at IS NULL)
   AND j.waiting_for <> (SELECT count(*) FROM job_dependencies AS d
                          WHERE d.job_id = j.id AND d.resolved_at IS NULL)
 LIMIT 20;

-- name: audit_dependency_open_after_final
-- A job in a final state resolves everything waiting for it in the same statement.
SELECT d.job_id, d.depends_on, j.status
  FROM job_dependencies AS d JOIN jobs AS j ON j.id = d.depends_on
 WHERE d.resolved_at IS NULL AND j.status IN {final_states}
 LIMIT 20;

-- name: audit_claimed_before_dependency
-- Every claim of a job came after each job it depends on had reached a final state.
-- Ordered by history ids, not clocks: a claim that saw the dependency resolved began
-- after the resolving transaction committed, so its history row has the higher id.
-- (A job waited for that was purged since has no history left to compare with.)
SELECT DISTINCT d.job_id, d.depends_on
  FROM job_dependencies AS d
  JOIN job_events AS c ON c.job_id = d.job_id AND c.action = 'claim'
 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = d.depends_on)
   AND NOT EXISTS (SELECT 1 FROM job_events AS f
                    WHERE f.job_id = d.depends_on AND f.to_status IN {final_states}
                      AND f.id < c.id)
 LIMIT 20;
