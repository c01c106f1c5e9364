-- Francis store schema for PostgreSQL: hosts, placements, actor state and alarms.
-- All times are BIGINT Unix milliseconds written by the application clock, never the database's
-- now(). IDs and names use the "C" collation so they order bytewise, as the other stores do.
-- Objects are created unqualified, i.e. in the first schema of the connection's search_path.

CREATE TABLE francis_hosts (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    host_address TEXT COLLATE "C" NOT NULL UNIQUE,
    host_last_health_check BIGINT NOT NULL
);

CREATE INDEX francis_hosts_last_health_check ON francis_hosts (host_last_health_check);

CREATE TABLE francis_host_actor_types (
    host_id TEXT COLLATE "C" NOT NULL REFERENCES francis_hosts (host_id) ON DELETE CASCADE,
    actor_type TEXT COLLATE "C" NOT NULL,
    -- NULL: activations of this type never deactivate for idleness.
    actor_idle_timeout_ms BIGINT,
    -- 0: unlimited.
    actor_concurrency_limit BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (host_id, actor_type)
);

CREATE INDEX francis_host_actor_types_type ON francis_host_actor_types (actor_type);

CREATE TABLE francis_active_actors (
    actor_type TEXT COLLATE "C" NOT NULL,
    actor_id TEXT COLLATE "C" NOT NULL,
    host_id TEXT COLLATE "C" NOT NULL REFERENCES francis_hosts (host_id) ON DELETE CASCADE,
    actor_idle_timeout_ms BIGINT,
    actor_activation BIGINT NOT NULL,
    PRIMARY KEY (actor_type, actor_id)
);

CREATE INDEX francis_active_actors_host ON francis_active_actors (host_id, actor_type);

CREATE TABLE francis_actor_state (
    actor_type TEXT COLLATE "C" NOT NULL,
    actor_id TEXT COLLATE "C" NOT NULL,
    actor_state_data BYTEA NOT NULL,
    -- NULL: never expires.
    actor_state_expiration_time BIGINT,
    PRIMARY KEY (actor_type, actor_id)
);

CREATE INDEX francis_actor_state_expiration ON francis_actor_state (actor_state_expiration_time)
    WHERE actor_state_expiration_time IS NOT NULL;

CREATE TABLE francis_alarms (
    alarm_id TEXT COLLATE "C" PRIMARY KEY,
    actor_type TEXT COLLATE "C" NOT NULL,
    actor_id TEXT COLLATE "C" NOT NULL,
    alarm_name TEXT COLLATE "C" NOT NULL,
    alarm_handler TEXT NOT NULL,
    alarm_due_time BIGINT NOT NULL,
    alarm_scheduled_time BIGINT NOT NULL,
    -- Canonical ISO 8601 duration; NULL for a one-shot alarm.
    alarm_interval TEXT,
    alarm_ttl_time BIGINT,
    alarm_data BYTEA,
    alarm_attempts BIGINT NOT NULL DEFAULT 0,
    alarm_lease_id TEXT COLLATE "C",
    alarm_lease_expiration_time BIGINT,
    UNIQUE (actor_type, actor_id, alarm_name)
);

CREATE INDEX francis_alarms_due_time ON francis_alarms (alarm_due_time, alarm_id);

CREATE UNIQUE INDEX francis_alarms_lease_id ON francis_alarms (alarm_lease_id)
    WHERE alarm_lease_id IS NOT NULL;

-- Removing placements (deactivation, or their host's death, through the cascade from
-- francis_hosts) releases the actors' alarm leases at once, so another host can pick the alarms
-- up without waiting for the leases to expire. One statement-level run per DELETE, over the
-- transition table of removed rows. The search_path is pinned to the one the schema was created
-- under, so the trigger finds francis_alarms whatever the deleting session's search_path is.
CREATE FUNCTION francis_release_alarm_leases() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE francis_alarms AS al
    SET alarm_lease_id = NULL, alarm_lease_expiration_time = NULL
    FROM removed_placements AS r
    WHERE al.actor_type = r.actor_type AND al.actor_id = r.actor_id
      AND al.alarm_lease_id IS NOT NULL;
    RETURN NULL;
END;
$$;

CREATE TRIGGER francis_active_actors_release_leases
AFTER DELETE ON francis_active_actors
REFERENCING OLD TABLE AS removed_placements
FOR EACH STATEMENT
EXECUTE FUNCTION francis_release_alarm_leases();
