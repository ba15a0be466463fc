-- The queue's tables. Times are UNIX epoch seconds (REAL, UTC).

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a purged id is never reused
    queue            TEXT    NOT NULL DEFAULT 'default',
    data             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('pending', 'processing', 'done', 'failed', 'permanently_failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,          -- higher first
    run_at           REAL    NOT NULL,                    -- not claimable before this time
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    error            TEXT,
    consumer_id      TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    dedupe_key       TEXT,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    -- A processing job always has a lease; no other job has one.
    CHECK ((status = 'processing') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- Claim order: priority, then first runnable first. Partial: only pending rows.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE status = 'pending';
-- The rescuer's scan for expired leases.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'processing';
-- The retry scheduler's scan for failed jobs whose backoff is over.
CREATE INDEX jobs_retry ON jobs (run_at) WHERE status = 'failed';
-- Listing by status newest first (keyset on id), and purging old done jobs.
CREATE INDEX jobs_status_id ON jobs (status, id);
-- Re-enqueueing a key that is still active returns the existing job.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing', 'failed');

-- Every transition, appended in the same transaction as the change it records.
CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at          REAL    NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    detail      TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- Counts per queue and status kept by triggers, so stats cost the same at a million jobs.
CREATE TABLE job_counts (
    queue  TEXT    NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;

CREATE TRIGGER jobs_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (queue, status, n) VALUES (new.queue, new.status, 1)
        ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
END;

CREATE TRIGGER jobs_counts_update AFTER UPDATE OF status, queue ON jobs
    WHEN old.status IS NOT new.status OR old.queue IS NOT new.queue BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
    INSERT INTO job_counts (queue, status, n) VALUES (new.queue, new.status, 1)
        ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

-- Consumer processes, for the ops console and the manager's dead-consumer check.
CREATE TABLE consumers (
    id             TEXT    PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    queues         TEXT    NOT NULL,
    started_at     REAL    NOT NULL,
    last_heartbeat REAL    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('idle', 'busy', 'stopped', 'dead')),
    current_job_id INTEGER,
    jobs_done      INTEGER NOT NULL DEFAULT 0,
    jobs_failed    INTEGER NOT NULL DEFAULT 0
);

-- Leadership leases: only the holder of an unexpired lease acts (one manager at a time).
CREATE TABLE leadership (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    elected_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
