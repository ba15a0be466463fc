-- Tasks, results, progress and dependencies (the same as migrations/sqlite/0005).

-- A task's return value as JSON text, stored in the statement that completes its job.
ALTER TABLE jobs ADD COLUMN result text;
-- How far the running attempt got, as its lease holder last reported; reset by a claim.
ALTER TABLE jobs ADD COLUMN progress double precision CHECK (progress BETWEEN 0 AND 1);
ALTER TABLE jobs ADD COLUMN progress_message text;
ALTER TABLE jobs ADD COLUMN progress_at double precision;
-- How many of the jobs it depends on this job still waits for (its job_dependencies rows
-- not yet resolved). Only a pending job at 0 is claimable.
ALTER TABLE jobs ADD COLUMN waiting_for integer NOT NULL DEFAULT 0;
-- Some job depends on this one: its move into a final state resolves them (trigger below).
-- A flag on the row, so the trigger's WHEN clause skips every other job without a call.
ALTER TABLE jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

-- The claim indexes hold only claimable rows: a job waiting for dependencies is never a
-- candidate, so claims cost what they cost before, and waiting jobs cost them nothing.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id)
    WHERE status = 'pending' AND waiting_for = 0;
DROP INDEX jobs_claim_any;
CREATE INDEX jobs_claim_any ON jobs (priority DESC, run_at, id)
    WHERE status = 'pending' AND waiting_for = 0;
-- Pending jobs waiting for dependencies: counted by stats, checked by the doctor.
CREATE INDEX jobs_waiting ON jobs (queue) WHERE status = 'pending' AND waiting_for > 0;

-- One row per (job, a job it waits for). resolved_at/resolution are set, once, when the
-- job it depends on reaches a final state; on_failure says what the waiting job does when
-- that state is not done: 'cancel' it, or 'run' it anyway.
CREATE TABLE job_dependencies (
    job_id      bigint           NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    depends_on  bigint           NOT NULL,  -- no foreign key: done jobs are purged
    on_failure  text             NOT NULL CHECK (on_failure IN ('cancel', 'run')),
    created_at  double precision NOT NULL,
    resolved_at double precision,
    resolution  text CHECK (resolution IN ('done', 'permanently_failed', 'cancelled')),
    PRIMARY KEY (job_id, depends_on),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
-- Who waits for a job (the trigger below, pq show); the open rows of a waiting job (doctor).
CREATE INDEX job_dependencies_on ON job_dependencies (depends_on);
CREATE INDEX job_dependencies_open ON job_dependencies (job_id) WHERE resolved_at IS NULL;

-- A job with dependents reaching a final state resolves them in the same statement, so no
-- path (a completion, a batch of them, a dead letter, an operator's action, a completion
-- in the caller's own transaction) can finish a job and leave its dependents waiting.
-- Dependents whose policy is 'cancel' are cancelled when it did not end done (their own
-- dependents follow: the cancel fires this trigger in turn); then every open dependency
-- on it is counted off and marked resolved. Each row is resolved once: a later move (mark
-- done after a dead letter) finds nothing open. Row-level and after the statement, so a
-- batch completing many jobs one final job waits for counts each off in turn; the
-- waiting job's row lock orders concurrent completions, and each statement here reads
-- the latest committed rows (READ COMMITTED, a volatile function).
CREATE FUNCTION pq_resolve_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    why text := format('job %s, which it depends on, ended %s', new.id, new.status);
BEGIN
    IF new.status <> 'done' THEN
        UPDATE jobs
           SET status = 'cancelled', finished_at = new.updated_at, updated_at = new.updated_at,
               error = why, last_action = 'cancel', last_actor = 'pq', last_detail = why
         WHERE status = 'pending'
           AND id IN (SELECT job_id FROM job_dependencies
                       WHERE depends_on = new.id AND resolved_at IS NULL
                         AND on_failure = 'cancel');
    END IF;
    UPDATE jobs SET waiting_for = waiting_for - 1
     WHERE id IN (SELECT job_id FROM job_dependencies
                   WHERE depends_on = new.id AND resolved_at IS NULL);
    UPDATE job_dependencies SET resolved_at = new.updated_at, resolution = new.status::text
     WHERE depends_on = new.id AND resolved_at IS NULL;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_dependents_resolve AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (new.has_dependents AND new.status IN ('done', 'permanently_failed', 'cancelled'))
    EXECUTE FUNCTION pq_resolve_dependents();

-- A lease holder completing its job in the caller's own transaction (Queue.complete with
-- connection=) whose lease is gone calls this: the error aborts that transaction, so its
-- writes can never commit, whatever the caller does next.
CREATE FUNCTION pq_fence(job bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pq: the lease on job % is no longer held; this transaction cannot commit',
        job USING ERRCODE = 'PQ001';
END;
$$;
