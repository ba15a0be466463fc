-- Scheduling and flow control (the same tables as migrations/sqlite/0004).

-- A job may name a partition of its queue that per-key limits apply to (a customer).
ALTER TABLE jobs ADD COLUMN concurrency_key text;

-- The jobs running per queue and key, counted inside a limited queue's claim.
CREATE INDEX jobs_processing_queue ON jobs (queue, concurrency_key) WHERE status = 'processing';

-- What holds a queue back. A row exists only while something is set (a pause or a
-- limit): claims that see no row take the fast path.
CREATE TABLE queue_controls (
    queue                 text    PRIMARY KEY,
    paused                boolean NOT NULL DEFAULT false,
    paused_at             double precision,
    paused_by             text,
    pause_reason          text,
    concurrency_limit     integer CHECK (concurrency_limit >= 0),
    key_concurrency_limit integer CHECK (key_concurrency_limit >= 1),
    rate_limit            integer CHECK (rate_limit >= 0),
    key_rate_limit        integer CHECK (key_rate_limit >= 1),
    rate_period           double precision    CHECK (rate_period > 0),
    updated_at            double precision    NOT NULL,
    updated_by            text    NOT NULL
);

-- Claims of rate-limited queues inside the current window, pruned past it.
CREATE TABLE claim_log (
    queue           text NOT NULL,
    concurrency_key text,
    at              double precision NOT NULL
);
CREATE INDEX claim_log_queue_at ON claim_log (queue, at);

-- Runtime settings an operator changed; the environment gives the defaults.
CREATE TABLE settings (
    name       text PRIMARY KEY,
    value      text NOT NULL,  -- JSON
    updated_at double precision NOT NULL,
    updated_by text NOT NULL
);

-- Who changed what outside a job's own history: pauses, limits, settings, schedules.
CREATE TABLE audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        double precision NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    old_value text,
    new_value text,
    detail    text
);
CREATE INDEX audit_log_target ON audit_log (target, id);

-- Periodic jobs. last_tick_at is the scheduled time of the newest tick handled
-- (enqueued or skipped): it moves forward only, in the transaction that enqueues.
CREATE TABLE schedules (
    name             text    PRIMARY KEY,
    cron             text    NOT NULL,
    timezone         text    NOT NULL DEFAULT 'UTC',
    data             text    NOT NULL,
    queue            text    NOT NULL,
    priority         integer NOT NULL DEFAULT 0,
    max_attempts     integer CHECK (max_attempts >= 1),
    catch_up         text    NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'one', 'all')),
    catch_up_limit   integer NOT NULL DEFAULT 100 CHECK (catch_up_limit >= 1),
    paused           boolean NOT NULL DEFAULT false,
    last_tick_at     double precision,
    last_job_id      bigint,  -- no foreign key: the job may have been purged
    last_enqueued_at double precision,
    ticks_enqueued   integer NOT NULL DEFAULT 0,
    ticks_skipped    integer NOT NULL DEFAULT 0,
    created_at       double precision    NOT NULL,
    created_by       text    NOT NULL,
    updated_at       double precision    NOT NULL
);
