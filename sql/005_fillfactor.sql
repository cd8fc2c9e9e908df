-- 005: room for HOT updates. Every event batch updates its sessions'
-- last_seq and usage and the runner renews leases on turns every few
-- seconds; with full pages each of those updates also writes every index
-- of the table (including the GIN index on sessions.tags).
ALTER TABLE sessions SET (fillfactor = 70);
ALTER TABLE turns SET (fillfactor = 70);
