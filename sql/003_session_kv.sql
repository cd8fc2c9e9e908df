-- 003: the session_storage capability's key-value store (kv_store tool,
-- fcgi/runner/tools/session_storage.c).
--
-- Like events, rows belong to a session and are reached only through it:
-- every query joins sessions on the session id and org_id, so the table
-- carries no org_id of its own. Rows go with their session (ON DELETE
-- CASCADE). The tool enforces the limits (keys 1..256 bytes, values at
-- most 64 KiB, 1000 keys per session); the CHECKs repeat the cheap ones
-- so that no other writer can store what the tool would refuse.

CREATE TABLE session_kv (
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  key text NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 256),
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, key)
);
