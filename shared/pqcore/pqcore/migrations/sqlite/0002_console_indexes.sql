-- Indexes for the consoles' time-based views, so they stay fast at a million jobs.

-- Throughput per minute reads the history of the last minutes/hours only.
-- Covering (at, action) so the range is answered from the index alone.
CREATE INDEX job_events_at ON job_events (at, action);
