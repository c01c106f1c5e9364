-- Francis store schema for SQLite: hosts, placements, actor state and alarms.
-- All times are INTEGER Unix milliseconds written by the application clock, never SQLite's.

CREATE TABLE francis_hosts (
    host_id TEXT PRIMARY KEY NOT NULL,
    host_address TEXT NOT NULL UNIQUE,
    host_last_health_check INTEGER NOT NULL
) STRICT;

CREATE INDEX francis_hosts_last_health_check ON francis_hosts (host_last_health_check);

CREATE TABLE francis_host_actor_types (
    host_id TEXT NOT NULL REFERENCES francis_hosts (host_id) ON DELETE CASCADE,
    actor_type TEXT NOT NULL,
    -- NULL: activations of this type never deactivate for idleness.
    actor_idle_timeout_ms INTEGER,
    -- 0: unlimited.
    actor_concurrency_limit INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (host_id, actor_type)
) STRICT;

CREATE INDEX francis_host_actor_types_type ON francis_host_actor_types (actor_type);

CREATE TABLE francis_active_actors (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    host_id TEXT NOT NULL REFERENCES francis_hosts (host_id) ON DELETE CASCADE,
    actor_idle_timeout_ms INTEGER,
    actor_activation INTEGER NOT NULL,
    PRIMARY KEY (actor_type, actor_id)
) STRICT;

CREATE INDEX francis_active_actors_host ON francis_active_actors (host_id, actor_type);

CREATE TABLE francis_actor_state (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_state_data BLOB NOT NULL,
    -- NULL: never expires.
    actor_state_expiration_time INTEGER,
    PRIMARY KEY (actor_type, actor_id)
) STRICT;

CREATE INDEX francis_actor_state_expiration ON francis_actor_state (actor_state_expiration_time)
    WHERE actor_state_expiration_time IS NOT NULL;

CREATE TABLE francis_alarms (
    alarm_id TEXT PRIMARY KEY NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    alarm_name TEXT NOT NULL,
    alarm_handler TEXT NOT NULL,
    alarm_due_time INTEGER NOT NULL,
    alarm_scheduled_time INTEGER NOT NULL,
    -- Canonical ISO 8601 duration; NULL for a one-shot alarm.
    alarm_interval TEXT,
    alarm_ttl_time INTEGER,
    alarm_data BLOB,
    alarm_attempts INTEGER NOT NULL DEFAULT 0,
    alarm_lease_id TEXT,
    alarm_lease_expiration_time INTEGER,
    UNIQUE (actor_type, actor_id, alarm_name)
) STRICT;

CREATE INDEX francis_alarms_due_time ON francis_alarms (alarm_due_time);

CREATE UNIQUE INDEX francis_alarms_lease_id ON francis_alarms (alarm_lease_id)
    WHERE alarm_lease_id IS NOT NULL;

-- Removing a placement (deactivation, or its host's death) releases the actor's alarm leases
-- at once, so another host can pick the alarms up without waiting for the leases to expire.
CREATE TRIGGER francis_active_actors_release_leases
AFTER DELETE ON francis_active_actors
BEGIN
    UPDATE francis_alarms
    SET alarm_lease_id = NULL, alarm_lease_expiration_time = NULL
    WHERE actor_type = OLD.actor_type AND actor_id = OLD.actor_id;
END;
