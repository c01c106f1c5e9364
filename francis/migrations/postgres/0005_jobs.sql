-- Durable jobs. A job is a row of francis_alarms named 'job/<key>' (alarm names cannot hold
-- '/', so jobs and plain alarms never share a name); this migration adds cron schedules (for
-- jobs and alarms), marks dead letters that were jobs', and remembers succeeded one-shot jobs.

-- A 5-field cron expression (UTC); NULL unless the row repeats by cron.
ALTER TABLE francis_alarms ADD COLUMN alarm_cron TEXT;

-- Dead letters gain the job's ID (NULL for a plain alarm's), and an occurrence is kept once
-- per job: two jobs dispatched with one key for the same time are two occurrences.
ALTER TABLE francis_dead_letters ADD COLUMN job_id TEXT COLLATE "C";

DO $$
DECLARE unique_name TEXT;
BEGIN
    SELECT conname INTO unique_name FROM pg_constraint
    WHERE conrelid = 'francis_dead_letters'::regclass AND contype = 'u';
    IF unique_name IS NOT NULL THEN
        EXECUTE format('ALTER TABLE francis_dead_letters DROP CONSTRAINT %I', unique_name);
    END IF;
END $$;

CREATE UNIQUE INDEX francis_dead_letters_occurrence ON francis_dead_letters
    (actor_type, actor_id, alarm_name, alarm_scheduled_time, COALESCE(job_id, ''));

CREATE INDEX francis_dead_letters_job ON francis_dead_letters (job_id) WHERE job_id IS NOT NULL;

-- One-shot jobs that ran to success, kept for a while (24 hours) so their status and their
-- idempotency key outlive the row.
CREATE TABLE francis_job_results (
    job_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    actor_type TEXT COLLATE "C" NOT NULL,
    actor_id TEXT COLLATE "C" NOT NULL,
    alarm_name TEXT COLLATE "C" NOT NULL,
    job_method TEXT NOT NULL,
    job_attempts BIGINT NOT NULL,
    job_finished_at BIGINT NOT NULL
);

CREATE INDEX francis_job_results_name ON francis_job_results (actor_type, actor_id, alarm_name);

CREATE INDEX francis_job_results_finished_at ON francis_job_results (job_finished_at);
