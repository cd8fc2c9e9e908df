-- 010: API key roles (fcgi/api/router.c says which role each route
-- needs). `admin` may do everything in its organization; `member` may use
-- sessions, messages, events, files and images, read agents, harnesses,
-- models and capabilities, and manage the keys it made itself (never an
-- admin key). Keys that existed before roles become admins (the default
-- here, which bootstrap and create-org keep using); POST /auth/api-keys
-- names the role (member when it does not). `created_by` is the key that
-- made a key through the API (NULL: everruns-admin).
ALTER TABLE api_keys
  ADD COLUMN role text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'member')),
  ADD COLUMN created_by uuid REFERENCES api_keys ON DELETE SET NULL;
CREATE INDEX api_keys_created_by ON api_keys (created_by) WHERE created_by IS NOT NULL;

CREATE OR REPLACE FUNCTION api_key(k api_keys) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('key', k.id), 'name', k.name, 'key_prefix', k.key_prefix,
    'role', k.role, 'user_id', evr_id('usr', k.user_id),
    'expires_at', evr_ts(k.expires_at), 'last_used_at', evr_ts(k.last_used_at),
    'created_at', evr_ts(k.created_at))
$$;

-- The keys revoking p_key revokes: itself (if it is active, of p_org when
-- given, and p_scope's own or made by p_scope when given: a member's
-- view) and, from a member key, the keys it made, theirs, and so on, so
-- that a member cannot outlive its revocation through keys it minted.
CREATE FUNCTION evr_key_revocation(p_key uuid, p_org uuid, p_scope uuid)
RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
  WITH RECURSIVE t(id, role) AS (
    SELECT id, role FROM api_keys
    WHERE id = p_key AND revoked_at IS NULL
      AND (p_org IS NULL OR org_id = p_org)
      AND (p_scope IS NULL OR id = p_scope OR created_by = p_scope)
    UNION
    SELECT k.id, k.role FROM api_keys k JOIN t ON k.created_by = t.id
    WHERE t.role = 'member' AND k.revoked_at IS NULL)
  SELECT id FROM t
$$;
