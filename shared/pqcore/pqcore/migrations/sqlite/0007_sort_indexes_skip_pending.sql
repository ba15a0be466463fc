-- Every job is born pending, and an enqueue of one job wrote a page of each sort index
-- (0006): three of the four cost a fifth of an enqueue at FULL and a third at NORMAL.
-- Those three leave pending jobs out. A sorted console page reads the jobs past
-- pending along them and sorts the pending ones matching its filter beside them
-- (Queue.page_jobs), which costs what the pending backlog holds, not the whole history.
-- Run time keeps its whole index: what runs next is the pending jobs' question.
DROP INDEX jobs_by_priority;
DROP INDEX jobs_by_updated_at;
DROP INDEX jobs_by_attempts;
CREATE INDEX jobs_by_priority ON jobs (priority, id) WHERE status <> 'pending';
CREATE INDEX jobs_by_updated_at ON jobs (updated_at, id) WHERE status <> 'pending';
CREATE INDEX jobs_by_attempts ON jobs (attempts, id) WHERE status <> 'pending';
