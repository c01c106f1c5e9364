-- The Francis version each host registered with (NULL when it did not say), shown by the
-- cluster's state view.

ALTER TABLE francis_hosts ADD COLUMN host_version TEXT;

-- Cluster admission: the cluster's maxHosts (0 = unlimited; NULL until a host joined), fixed by
-- the first host to join an empty cluster. One row, which every registration reads in its write
-- transaction. A table of its own rather than a column of francis_cluster: that table's row
-- exists only once a process recorded the cluster's CAs, which admission must not depend on.

CREATE TABLE francis_cluster_admission (
    admission_id INTEGER PRIMARY KEY NOT NULL CHECK (admission_id = 1),
    max_hosts INTEGER,
    updated_at INTEGER NOT NULL
) STRICT;

INSERT INTO francis_cluster_admission (admission_id, max_hosts, updated_at) VALUES (1, NULL, 0);
