-- Tasks, results, progress and dependencies (the same as migrations/postgresql/0005).

-- A task's return value as JSON text, stored in the statement that completes its job.
ALTER TABLE jobs ADD COLUMN result TEXT;
-- How far the running attempt got, as its lease holder last reported; reset by a claim.
ALTER TABLE jobs ADD COLUMN progress REAL CHECK (progress BETWEEN 0 AND 1);
ALTER TABLE jobs ADD COLUMN progress_message TEXT;
ALTER TABLE jobs ADD COLUMN progress_at REAL;
-- How many of the jobs it depends on this job still waits for (its job_dependencies rows
-- not yet resolved). Only a pending job at 0 is claimable.
ALTER TABLE jobs ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0;
-- Some job depends on this one: its move into a final state resolves them (trigger below).
-- A flag on the row, so the trigger costs nothing for every other job.
ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0
    CHECK (has_dependents IN (0, 1));

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
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    depends_on  INTEGER NOT NULL,  -- no foreign key: done jobs are purged, their rows stay
    on_failure  TEXT    NOT NULL CHECK (on_failure IN ('cancel', 'run')),
    created_at  REAL    NOT NULL,
    resolved_at REAL,
    resolution  TEXT CHECK (resolution IN ('done', 'permanently_failed', 'cancelled')),
    PRIMARY KEY (job_id, depends_on),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
) WITHOUT ROWID;
-- Who waits for a job (the trigger below, pq show); the open rows of a waiting job (doctor).
CREATE INDEX job_dependencies_on ON job_dependencies (depends_on);
CREATE INDEX job_dependencies_open ON job_dependencies (job_id) WHERE resolved_at IS NULL;

-- A job with dependents reaching a final state resolves them in the same statement, so no
-- path (a completion, a batch of them, a dead letter, an operator's action, a completion
-- in the caller's own transaction) can finish a job and leave its dependents waiting.
-- Dependents whose policy is 'cancel' are cancelled when it did not end done (their own
-- dependents follow in turn: the SQLite driver turns recursive_triggers on); then every
-- open dependency on it is counted off and marked resolved. Each row is resolved once:
-- a later move (mark done after a dead letter) finds nothing open.
CREATE TRIGGER jobs_dependents_resolve AFTER UPDATE OF status ON jobs
    WHEN new.has_dependents AND new.status IN ('done', 'permanently_failed', 'cancelled')
BEGIN
    UPDATE jobs
       SET status = 'cancelled', finished_at = new.updated_at, updated_at = new.updated_at,
           error = 'job ' || new.id || ', which it depends on, ended ' || new.status,
           last_action = 'cancel', last_actor = 'pq',
           last_detail = 'job ' || new.id || ', which it depends on, ended ' || new.status
     WHERE status = 'pending' AND new.status <> 'done'
       AND id IN (SELECT job_id FROM job_dependencies
                   WHERE depends_on = new.id AND resolved_at IS NULL AND on_failure = 'cancel');
    UPDATE jobs SET waiting_for = waiting_for - 1
     WHERE id IN (SELECT job_id FROM job_dependencies
                   WHERE depends_on = new.id AND resolved_at IS NULL);
    UPDATE job_dependencies SET resolved_at = new.updated_at, resolution = new.status
     WHERE depends_on = new.id AND resolved_at IS NULL;
END;
