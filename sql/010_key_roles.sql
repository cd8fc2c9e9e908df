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
