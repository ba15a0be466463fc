-- Indexes for the consoles' time-based views, kept in step with SQLite's 0002.

-- Throughput per minute reads the history of the last minutes/hours only.
CREATE INDEX job_events_at ON job_events (at, action);
