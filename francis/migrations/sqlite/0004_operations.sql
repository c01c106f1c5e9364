-- The operations plane: draining hosts, the audit trail of admin actions, and the dead letters
-- of alarm occurrences that failed on every attempt.

-- 1 while an operator has drained the host: it takes no new placements. A host that registers
-- anew starts at 0.
ALTER TABLE francis_hosts ADD COLUMN host_draining INTEGER NOT NULL DEFAULT 0;

-- One row per admin action and target. The first row of a (request_id, target) wins, so a
-- replayed request finds its result instead of acting twice.
CREATE TABLE francis_audit (
    audit_id TEXT PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL,
    audit_action TEXT NOT NULL,
    audit_target TEXT NOT NULL,
    audit_principal TEXT NOT NULL,
    audit_started_at INTEGER NOT NULL,
    audit_finished_at INTEGER,
    -- pending, ok, failed or timeout.
    audit_result TEXT NOT NULL,
    audit_error TEXT,
    -- JSON text.
    audit_detail TEXT,
    UNIQUE (request_id, audit_target)
) STRICT;

CREATE INDEX francis_audit_started_at ON francis_audit (audit_started_at, audit_id);

-- An alarm occurrence given up on, with what is needed to run it again.
CREATE TABLE francis_dead_letters (
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
    UNIQUE (actor_type, actor_id, alarm_name, alarm_scheduled_time)
) STRICT;

CREATE INDEX francis_dead_letters_dropped_at ON francis_dead_letters (dead_letter_dropped_at, dead_letter_id);
