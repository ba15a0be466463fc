-- What pq migrate-backend reads from a SQLite queue (pqcore.transfer). Column lists
-- match the COPY statements in transfer_postgresql.sql one for one.

-- name: live_consumers
SELECT id FROM consumers
 WHERE state IN ('idle', 'busy') AND last_heartbeat >= :heartbeat_after
 ORDER BY id;

-- name: held_leases
SELECT id FROM jobs WHERE status = 'processing' AND lease_expires_at > :now ORDER BY id;

-- name: jobs_all
-- has_dependents is 0/1 here; the target's column is boolean (COPY reads 0 and 1 as such).
SELECT id, queue, data, status, priority, run_at, attempts, max_attempts, error,
       consumer_id, lease_token, lease_expires_at, dedupe_key, created_at, updated_at,
       started_at, finished_at, concurrency_key, result, progress, progress_message,
       progress_at, waiting_for, has_dependents
  FROM jobs ORDER BY id;

-- name: events_all
SELECT id, job_id, at, from_status, to_status, action, actor, attempt, detail
  FROM job_events ORDER BY id;

-- name: dependencies_all
SELECT job_id, depends_on, on_failure, created_at, resolved_at, resolution
  FROM job_dependencies ORDER BY job_id, depends_on;

-- name: consumers_all
SELECT id, host, pid, queues, started_at, last_heartbeat, state, current_job_id,
       jobs_done, jobs_failed
  FROM consumers ORDER BY id;

-- name: controls_all
SELECT queue, paused, paused_at, paused_by, pause_reason, concurrency_limit,
       key_concurrency_limit, rate_limit, key_rate_limit, rate_period, updated_at, updated_by
  FROM queue_controls ORDER BY queue;

-- name: settings_all
SELECT name, value, updated_at, updated_by FROM settings ORDER BY name;

-- name: audit_all
-- In id order, without the id: the target numbers them afresh in the same order.
SELECT at, actor, action, target, old_value, new_value, detail FROM audit_log ORDER BY id;

-- name: schedules_all
SELECT name, cron, timezone, data, queue, priority, max_attempts, catch_up, catch_up_limit,
       paused, last_tick_at, last_job_id, last_enqueued_at, ticks_enqueued, ticks_skipped,
       created_at, created_by, updated_at
  FROM schedules ORDER BY name;

-- name: job_id_high_water
-- AUTOINCREMENT remembers ids of purged jobs too; the target must not reuse them.
SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'jobs';

-- name: totals
SELECT (SELECT count(*) FROM jobs) AS jobs,
       (SELECT count(*) FROM job_events) AS events,
       (SELECT count(*) FROM consumers) AS consumers,
       (SELECT count(*) FROM job_dependencies) AS dependencies,
       (SELECT count(*) FROM job_dependencies WHERE resolved_at IS NULL) AS open_dependencies,
       (SELECT coalesce(sum(waiting_for), 0) FROM jobs) AS waiting_for_sum,
       (SELECT coalesce(sum(id), 0) FROM jobs) AS job_id_sum,
       (SELECT coalesce(sum(id), 0) FROM job_events) AS event_id_sum;

-- name: status_counts
SELECT status, count(*) AS n FROM jobs GROUP BY status ORDER BY status;
