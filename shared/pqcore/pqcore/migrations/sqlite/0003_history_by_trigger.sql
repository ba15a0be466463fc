-- History is written by the database from the transition statement itself, the same
-- way on every backend: a transition sets last_action, last_actor and last_detail on
-- the job it moves, and these triggers append the job_events row in the same statement.
-- A transition can then never change a job without its history row, nor write history
-- for a change that did not happen.

ALTER TABLE jobs ADD COLUMN last_action TEXT;
ALTER TABLE jobs ADD COLUMN last_actor TEXT;
ALTER TABLE jobs ADD COLUMN last_detail TEXT;

-- Rows inserted without an action (pq migrate-backend's copies) bring their own history.
CREATE TRIGGER jobs_history_insert AFTER INSERT ON jobs
    WHEN new.last_action IS NOT NULL BEGIN
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
    VALUES (new.id, new.updated_at, NULL, new.status, new.last_action,
            coalesce(new.last_actor, 'unknown'), new.attempts, new.last_detail);
END;

CREATE TRIGGER jobs_history_update AFTER UPDATE OF status ON jobs
    WHEN old.status IS NOT new.status BEGIN
    INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt, detail)
    VALUES (new.id, new.updated_at, old.status, new.status, coalesce(new.last_action, 'unknown'),
            coalesce(new.last_actor, 'unknown'), new.attempts, new.last_detail);
END;

-- Claiming across every queue walks pending jobs in claim order, as on PostgreSQL.
CREATE INDEX jobs_claim_any ON jobs (priority DESC, run_at, id) WHERE status = 'pending';
