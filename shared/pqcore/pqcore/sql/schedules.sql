-- Periodic jobs (pqcore/schedules.py). Shared by every dialect (see queries.sql).
--
-- last_tick_at is the scheduled time of the newest tick handled (enqueued or skipped);
-- NULL until the first, when ticks count from created_at. It moves forward only, by
-- schedule_advance: a compare-and-set on the value the caller read, so of two managers
-- racing for one tick exactly one moves it and enqueues; the other changes nothing.
-- Booleans are bound as Python bools (PostgreSQL boolean, SQLite 0/1).

-- name: schedules_all
SELECT * FROM schedules ORDER BY name;

-- name: schedule_get
SELECT * FROM schedules WHERE name = :name;

-- name: schedule_get_locked
-- Read to change: on PostgreSQL no one else changes the row until this transaction ends.
SELECT * FROM schedules WHERE name = :name {lock_row};

-- name: schedule_insert
-- A name is taken once: an existing schedule is left as it is (no row returned).
INSERT INTO schedules (name, cron, timezone, data, queue, priority, max_attempts, catch_up,
                       catch_up_limit, paused, ticks_enqueued, ticks_skipped, created_at,
                       created_by, updated_at)
VALUES (:name, :cron, :timezone, :data, :queue, :priority, :max_attempts, :catch_up,
        :catch_up_limit, :paused, 0, 0, :now, :actor, :now)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: schedule_delete
DELETE FROM schedules WHERE name = :name RETURNING *;

-- name: schedule_pause
UPDATE schedules SET paused = :paused, updated_at = :now
 WHERE name = :name AND NOT paused
RETURNING *;

-- name: schedule_resume
-- The ticks that fell due while paused are skipped: last_tick_at moves to the newest of
-- them (:last_tick_at, NULL when none fell due) and they are counted as skipped.
UPDATE schedules
   SET paused = :paused, last_tick_at = coalesce(:last_tick_at, last_tick_at),
       ticks_skipped = ticks_skipped + :skipped, updated_at = :now
 WHERE name = :name AND paused
RETURNING *;

-- name: schedule_advance
-- The compare-and-set that claims the ticks up to :last_tick_at for this transaction:
-- it matches only while the schedule is the one read (same creation), still running,
-- and its last tick is still :expected (NULL for none: coalesce, since SQLite and
-- PostgreSQL spell IS NOT DISTINCT FROM differently). No row: another caller won.
UPDATE schedules
   SET last_tick_at = :last_tick_at,
       ticks_enqueued = ticks_enqueued + :enqueued,
       ticks_skipped = ticks_skipped + :skipped,
       updated_at = :now
 WHERE name = :name
   AND created_at = :created_at
   AND NOT paused
   AND coalesce(last_tick_at, -1) = coalesce(CAST(:expected AS DOUBLE PRECISION), -1)
   AND :last_tick_at > coalesce(last_tick_at, created_at)
RETURNING name;

-- name: schedule_last_job
-- In the transaction whose schedule_advance matched (the row is ours until it commits).
UPDATE schedules SET last_job_id = :job_id, last_enqueued_at = :now
 WHERE name = :name;
