-- The cluster's identity: the fingerprints of the CA certificates (comma-separated, signing CA
-- first) of the hosts or runtime replicas that use this store, recorded on first use, so a
-- process with another cluster's key refuses to start instead of joining.

CREATE TABLE francis_cluster (
    cluster_key TEXT COLLATE "C" PRIMARY KEY,
    ca_fingerprints TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
