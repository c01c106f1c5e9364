-- The Francis version each host registered with (NULL when it did not say), shown by the
-- cluster's state view.

ALTER TABLE francis_hosts ADD COLUMN host_version TEXT;

-- Cluster admission: the cluster's maxHosts (0 = unlimited; NULL until a host joined), fixed by
-- the first host to join an empty cluster. One row, which every registration locks (SELECT …
-- FOR UPDATE) before it counts the healthy hosts, so concurrent registrations are admitted one
-- at a time. A table of its own rather than a column of francis_cluster: that table's row exists
-- only once a process recorded the cluster's CAs, which admission must not depend on, and
-- identity checks need not queue behind registrations.

CREATE TABLE francis_cluster_admission (
    admission_id BIGINT PRIMARY KEY CHECK (admission_id = 1),
    max_hosts BIGINT,
    updated_at BIGINT NOT NULL
);

INSERT INTO francis_cluster_admission (admission_id, max_hosts, updated_at) VALUES (1, NULL, 0);
