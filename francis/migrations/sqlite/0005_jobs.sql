-- Durable jobs. A job is a row of francis_alarms named 'job/<key>' (alarm names cannot hold
-- '/', so jobs and plain alarms never share a name); this migration adds cron schedules (for
-- jobs and alarms), marks dead letters that were jobs', and remembers succeeded one-shot jobs.

-- A 5-field cron expression (UTC); NULL unless the row repeats by cron.
ALTER TABLE francis_alarms ADD COLUMN alarm_cron TEXT;

-- The job's ID when the dead occurrence was a job's; NULL for a plain alarm's.
ALTER TABLE francis_dead_letters ADD COLUMN job_id TEXT;

CREATE INDEX francis_dead_letters_job ON francis_dead_letters (job_id) WHERE job_id IS NOT NULL;

-- One-shot jobs that ran to success, kept for a while (24 hours) so their status and their
-- idempotency key outlive the row.
CREATE TABLE francis_job_results (
    job_id TEXT PRIMARY KEY NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    alarm_name TEXT NOT NULL,
    job_method TEXT NOT NULL,
    job_attempts INTEGER NOT NULL,
    job_finished_at INTEGER NOT NULL
) STRICT;

CREATE INDEX francis_job_results_name ON francis_job_results (actor_type, actor_id, alarm_name);

CREATE INDEX francis_job_results_finished_at ON francis_job_results (job_finished_at);
