-- The Francis version each host registered with (NULL when it did not say), shown by the
-- cluster's state view.

ALTER TABLE francis_hosts ADD COLUMN host_version TEXT;
