-- Durable jobs. A job is a row of francis_alarms named 'job/<key>' (alarm names cannot hold
-- '/', so jobs and plain alarms never share a name); this migration adds cron schedules (for
-- jobs and alarms), marks dead letters that were jobs', and remembers succeeded one-shot jobs.

-- A 5-field cron expression (UTC); NULL unless the row repeats by cron.
ALTER TABLE francis_alarms ADD COLUMN alarm_cron TEXT;

-- Dead letters gain the job's ID (NULL for a plain alarm's), and an occurrence is kept once
-- per job: two jobs dispatched with one key for the same time are two occurrences. SQLite
-- cannot drop the table's inline UNIQUE constraint, so the table is rebuilt.
CREATE TABLE francis_dead_letters_v5 (
    dead_letter_id TEXT PRIMARY KEY NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    alarm_name TEXT NOT NULL,
    alarm_handler TEXT NOT NULL,
    alarm_data BLOB,
    alarm_scheduled_time INTEGER NOT NULL,
    dead_letter_attempts INTEGER NOT NULL,
    dead_letter_error TEXT NOT NULL,
    dead_letter_dropped_at INTEGER NOT NULL,
    job_id TEXT
) STRICT;

INSERT INTO francis_dead_letters_v5 (dead_letter_id, actor_type, actor_id, alarm_name,
    alarm_handler, alarm_data, alarm_scheduled_time, dead_letter_attempts, dead_letter_error,
    dead_letter_dropped_at)
SELECT dead_letter_id, actor_type, actor_id, alarm_name, alarm_handler, alarm_data,
    alarm_scheduled_time, dead_letter_attempts, dead_letter_error, dead_letter_dropped_at
FROM francis_dead_letters;

DROP TABLE francis_dead_letters;

ALTER TABLE francis_dead_letters_v5 RENAME TO francis_dead_letters;

CREATE INDEX francis_dead_letters_dropped_at ON francis_dead_letters (dead_letter_dropped_at, dead_letter_id);

CREATE UNIQUE INDEX francis_dead_letters_occurrence ON francis_dead_letters
    (actor_type, actor_id, alarm_name, alarm_scheduled_time, COALESCE(job_id, ''));

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
