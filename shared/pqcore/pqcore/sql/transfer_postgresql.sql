-- What pq migrate-backend writes into a PostgreSQL queue (pqcore.transfer), all in one
-- transaction that holds the tables exclusively until it commits.

-- name: lock_tables
LOCK TABLE jobs, job_events, job_dependencies, consumers, queue_controls, settings,
    audit_log, schedules IN EXCLUSIVE MODE;

-- name: job_count
SELECT count(*) AS n FROM jobs;

-- name: copy_jobs
COPY jobs (id, queue, data, status, priority, run_at, attempts, max_attempts, error,
           consumer_id, lease_token, lease_expires_at, dedupe_key, created_at, updated_at,
           started_at, finished_at, concurrency_key, result, progress, progress_message,
           progress_at, waiting_for, has_dependents) FROM STDIN;

-- name: copy_dependencies
COPY job_dependencies (job_id, depends_on, on_failure, created_at, resolved_at, resolution)
FROM STDIN;

-- name: copy_events
COPY job_events (id, job_id, at, from_status, to_status, action, actor, attempt, detail)
FROM STDIN;

-- name: copy_consumers
COPY consumers (id, host, pid, queues, started_at, last_heartbeat, state, current_job_id,
                jobs_done, jobs_failed) FROM STDIN;

-- name: copy_controls
COPY queue_controls (queue, paused, paused_at, paused_by, pause_reason, concurrency_limit,
                     key_concurrency_limit, rate_limit, key_rate_limit, rate_period,
                     updated_at, updated_by) FROM STDIN;

-- name: copy_settings
COPY settings (name, value, updated_at, updated_by) FROM STDIN;

-- name: copy_audit
COPY audit_log (at, actor, action, target, old_value, new_value, detail) FROM STDIN;

-- name: copy_schedules
COPY schedules (name, cron, timezone, data, queue, priority, max_attempts, catch_up,
                catch_up_limit, paused, last_tick_at, last_job_id, last_enqueued_at,
                ticks_enqueued, ticks_skipped, created_at, created_by, updated_at) FROM STDIN;

-- name: advance_job_ids
-- New jobs continue after every id the source ever handed out.
SELECT setval(pg_get_serial_sequence('jobs', 'id'),
              greatest(%(high_water)s::bigint, (SELECT coalesce(max(id), 0) FROM jobs), 1),
              %(used)s);

-- name: advance_event_ids
SELECT setval(pg_get_serial_sequence('job_events', 'id'),
              greatest((SELECT coalesce(max(id), 0) FROM job_events), 1),
              (SELECT count(*) > 0 FROM job_events));

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
SELECT status::text AS status, count(*) AS n FROM jobs GROUP BY status ORDER BY status;

-- name: notify_all_queues
SELECT pg_notify('pq_jobs', queue) FROM (SELECT DISTINCT queue FROM jobs) AS q;
