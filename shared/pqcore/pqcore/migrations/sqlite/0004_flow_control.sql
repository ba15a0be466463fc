-- Scheduling and flow control (the same tables as migrations/postgresql/0004).

-- A job may name a partition of its queue that per-key limits apply to (a customer).
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;

-- The jobs running per queue and key, counted inside a limited queue's claim.
CREATE INDEX jobs_processing_queue ON jobs (queue, concurrency_key) WHERE status = 'processing';

-- What holds a queue back. A row exists only while something is set (a pause or a
-- limit): claims that see no row take the fast path.
CREATE TABLE queue_controls (
    queue                 TEXT    PRIMARY KEY,
    paused                INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    paused_at             REAL,
    paused_by             TEXT,
    pause_reason          TEXT,
    concurrency_limit     INTEGER CHECK (concurrency_limit >= 0),
    key_concurrency_limit INTEGER CHECK (key_concurrency_limit >= 1),
    rate_limit            INTEGER CHECK (rate_limit >= 0),
    key_rate_limit        INTEGER CHECK (key_rate_limit >= 1),
    rate_period           REAL    CHECK (rate_period > 0),
    updated_at            REAL    NOT NULL,
    updated_by            TEXT    NOT NULL
);

-- Claims of rate-limited queues inside the current window, pruned past it.
CREATE TABLE claim_log (
    queue           TEXT NOT NULL,
    concurrency_key TEXT,
    at              REAL NOT NULL
);
CREATE INDEX claim_log_queue_at ON claim_log (queue, at);

-- Runtime settings an operator changed; the environment gives the defaults.
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,  -- JSON
    updated_at REAL NOT NULL,
    updated_by TEXT NOT NULL
);

-- Who changed what outside a job's own history: pauses, limits, settings, schedules.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    detail    TEXT
);
CREATE INDEX audit_log_target ON audit_log (target, id);

-- Periodic jobs. last_tick_at is the scheduled time of the newest tick handled
-- (enqueued or skipped): it moves forward only, in the transaction that enqueues.
CREATE TABLE schedules (
    name             TEXT    PRIMARY KEY,
    cron             TEXT    NOT NULL,
    timezone         TEXT    NOT NULL DEFAULT 'UTC',
    data             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER CHECK (max_attempts >= 1),
    catch_up         TEXT    NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'one', 'all')),
    catch_up_limit   INTEGER NOT NULL DEFAULT 100 CHECK (catch_up_limit >= 1),
    paused           INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    last_tick_at     REAL,
    last_job_id      INTEGER,  -- no foreign key: the job may have been purged
    last_enqueued_at REAL,
    ticks_enqueued   INTEGER NOT NULL DEFAULT 0,
    ticks_skipped    INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    created_by       TEXT    NOT NULL,
    updated_at       REAL    NOT NULL
);
