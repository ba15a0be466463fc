-- History is written by the database from the transition statement itself, the same
-- way on every backend (migrations/sqlite/0003): a transition sets last_action,
-- last_actor and last_detail on the job it moves, and these triggers append the
-- job_events rows in the same statement. Statement-level with transition tables: one
-- call per statement however many jobs it moves (a claim of 32 jobs, a batch of
-- completions), and heartbeats, which move no job, insert nothing.

ALTER TABLE jobs ADD COLUMN last_action text;
ALTER TABLE jobs ADD COLUMN last_actor text;
ALTER TABLE jobs ADD COLUMN last_detail text;

CREATE FUNCTION pq_job_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Rows inserted without an action (pq migrate-backend's copies) bring their own.
        INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt,
                                detail)
        SELECT id, updated_at, NULL, status, last_action, coalesce(last_actor, 'unknown'),
               attempts, last_detail
          FROM new_rows WHERE last_action IS NOT NULL ORDER BY id;
    ELSE
        INSERT INTO job_events (job_id, at, from_status, to_status, action, actor, attempt,
                                detail)
        SELECT n.id, n.updated_at, o.status, n.status, coalesce(n.last_action, 'unknown'),
               coalesce(n.last_actor, 'unknown'), n.attempts, n.last_detail
          FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
         WHERE o.status IS DISTINCT FROM n.status ORDER BY n.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_history_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pq_job_history();
CREATE TRIGGER jobs_history_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pq_job_history();
