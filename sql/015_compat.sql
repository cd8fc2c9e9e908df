-- 015: what the upstream API document's clients need (README,
-- "Compatibility").
--
-- Every resource the document wraps in WithUrls carries self_url (the
-- API path: the server does not know the host it is reached by), view_url
-- and ui_link (the UI's page for it: a session's is /#<id>; the UI has no
-- page of its own for the others, so theirs is the UI's root). Agents and
-- harnesses count the sessions that use them (app_count: there are no
-- apps here, 0).
--
-- Agents: `harness_id` is always the effective harness, the one a session
-- of the agent gets (evr_session_create): the agent's, else the
-- organization's built-in `base`.
CREATE OR REPLACE FUNCTION api_agent(a agents) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('agt', a.id), 'organization_id', evr_id('org', a.org_id),
    'name', a.name, 'display_name', a.display_name,
    'description', a.description, 'system_prompt', a.system_prompt,
    'default_model_id', evr_id('mod', a.default_model_id),
    'harness_id', evr_id('hns', coalesce(a.harness_id,
      (SELECT h.id FROM harnesses h WHERE h.org_id = a.org_id AND h.name = 'base'
         AND h.is_built_in AND h.status = 'active'))),
    'capabilities', a.capabilities, 'tags', to_json(a.tags),
    'max_iterations', a.max_iterations, 'status', a.status,
    'created_at', evr_ts(a.created_at), 'updated_at', evr_ts(a.updated_at),
    'archived_at', evr_ts(a.archived_at),
    'session_count', (SELECT count(*) FROM sessions s
                      WHERE s.org_id = a.org_id AND s.agent_id = a.id),
    'app_count', 0,
    'self_url', '/api/v1/agents/' || evr_id('agt', a.id),
    'view_url', '/', 'ui_link', '/')
$$;

CREATE INDEX sessions_harness ON sessions (org_id, harness_id);

CREATE OR REPLACE FUNCTION api_harness(h harnesses) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('hns', h.id), 'organization_id', evr_id('org', h.org_id),
    'name', h.name, 'display_name', h.display_name,
    'description', h.description, 'system_prompt', h.system_prompt,
    'default_model_id', evr_id('mod', h.default_model_id),
    'capabilities', h.capabilities, 'tags', to_json(h.tags),
    'is_built_in', h.is_built_in, 'status', h.status,
    'created_at', evr_ts(h.created_at), 'updated_at', evr_ts(h.updated_at),
    'session_count', (SELECT count(*) FROM sessions s
                      WHERE s.org_id = h.org_id AND s.harness_id = h.id),
    'app_count', 0,
    'self_url', '/api/v1/harnesses/' || evr_id('hns', h.id),
    'view_url', '/', 'ui_link', '/')
$$;

CREATE OR REPLACE FUNCTION api_provider(p llm_providers) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('prv', p.id), 'organization_id', evr_id('org', p.org_id),
    'name', p.name, 'provider_type', p.provider_type, 'base_url', p.base_url,
    'api_key_set', p.api_key_enc IS NOT NULL, 'status', p.status,
    'created_at', evr_ts(p.created_at), 'updated_at', evr_ts(p.updated_at),
    'self_url', '/api/v1/llm-providers/' || evr_id('prv', p.id),
    'view_url', '/', 'ui_link', '/')
$$;

-- Models: is_favorite (not kept here: false), source (llmsim's seeded
-- model is `predefined`, every other `manual`), healthy (the provider is
-- active and can be called: a key set, a base_url of its own, or llmsim).
CREATE OR REPLACE FUNCTION api_model(m llm_models) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('mod', m.id), 'provider_id', evr_id('prv', m.provider_id),
    'provider_name', p.name, 'provider_type', p.provider_type,
    'model_id', m.model_id, 'display_name', m.display_name,
    'capabilities', to_json(m.capabilities),
    'context_tokens', m.context_tokens, 'enabled', m.enabled,
    'created_at', evr_ts(m.created_at), 'updated_at', evr_ts(m.updated_at),
    'is_favorite', false,
    'source', CASE WHEN p.provider_type = 'llmsim' THEN 'predefined' ELSE 'manual' END,
    'healthy', p.status = 'active' AND (p.api_key_enc IS NOT NULL
      OR p.base_url IS NOT NULL OR p.provider_type = 'llmsim'),
    'self_url', '/api/v1/llm-models/' || evr_id('mod', m.id),
    'view_url', '/', 'ui_link', '/')
  FROM llm_providers p WHERE p.id = m.provider_id
$$;

-- Sessions: `locale` and `parallel_tool_calls` of the create request,
-- stored and returned (the runner does not read them: llmsim and the
-- providers' defaults stand); owner_principal_id is the user whose key
-- created it (a chat session's user; the organization for sessions made
-- before this column).
ALTER TABLE sessions ADD COLUMN locale text,
  ADD COLUMN parallel_tool_calls boolean,
  ADD COLUMN owner_user_id uuid REFERENCES users ON DELETE SET NULL;

CREATE OR REPLACE FUNCTION api_session(s sessions) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('ses', s.id), 'organization_id', evr_id('org', s.org_id),
    'agent_id', evr_id('agt', s.agent_id),
    'harness_id', evr_id('hns', s.harness_id),
    'model_id', evr_id('mod', s.model_id), 'title', s.title,
    'tags', to_json(s.tags), 'capabilities', s.capabilities,
    'system_prompt', s.system_prompt, 'max_iterations', s.max_iterations,
    'status', s.status,
    'usage', json_build_object('input_tokens', s.usage_input,
                               'output_tokens', s.usage_output),
    'locale', s.locale, 'parallel_tool_calls', s.parallel_tool_calls,
    'owner_principal_id', coalesce(evr_id('usr', coalesce(s.owner_user_id, s.chat_user_id)),
                                   evr_id('org', s.org_id)),
    'created_at', evr_ts(s.created_at), 'updated_at', evr_ts(s.updated_at),
    'self_url', '/api/v1/sessions/' || evr_id('ses', s.id),
    'view_url', '/#' || evr_id('ses', s.id), 'ui_link', '/#' || evr_id('ses', s.id))
$$;

-- Images: the document's ImageInfo `metadata` (none kept: {}).
CREATE OR REPLACE FUNCTION api_image(i images) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('img', i.id), 'organization_id', evr_id('org', i.org_id),
    'session_id', evr_id('ses', i.session_id), 'filename', i.filename,
    'content_type', i.media_type, 'media_type', i.media_type,
    'size_bytes', i.size_bytes, 'attached', i.attached,
    'metadata', '{}'::json, 'created_at', evr_ts(i.created_at))
$$;

-- Files: FileInfo gains `id` (kept by a move and a replace, new for a
-- copy), `session_id` and `is_readonly` (set by a create request's
-- initial_files; such a file cannot be changed, moved away or deleted:
-- status 'readonly'). Adding the id rewrites the table once.
ALTER TABLE session_files ADD COLUMN id uuid NOT NULL DEFAULT uuidv7(),
  ADD COLUMN is_readonly boolean NOT NULL DEFAULT false;

CREATE FUNCTION evr_fs_info(p_session uuid, p_id uuid, p_path text,
    p_dir boolean, p_size bigint, p_created timestamptz,
    p_updated timestamptz, p_readonly boolean)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
  SELECT json_build_object(
    'id', p_id, 'session_id', evr_id('ses', p_session),
    'path', p_path, 'name', regexp_replace(p_path, '^.*/', ''),
    'is_directory', p_dir, 'is_readonly', p_readonly, 'size_bytes', p_size,
    'created_at', evr_ts(p_created), 'updated_at', evr_ts(p_updated))
$$;

-- The root directory has no row: the session's id and creation time.
CREATE FUNCTION evr_fs_root_info(p_session uuid, p_created timestamptz)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
  SELECT evr_fs_info(p_session, p_session, '/', true, 0, p_created, p_created, false)
$$;

-- Is p_path, or anything under it, read-only?
CREATE FUNCTION evr_fs_readonly(p_session uuid, p_path text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM session_files WHERE session_id = p_session
    AND is_readonly AND (path = p_path
      OR (path > p_path || '/' AND path < p_path || '0')))
$$;

-- evr_fs_write and evr_fs_move of 012 (quotas) and evr_fs_delete of 006
-- with the FileInfo above and the status 'readonly'.
CREATE OR REPLACE FUNCTION evr_fs_write(p_session uuid, p_org uuid, p_path text,
    p_content bytea, p_mode text, p_cap_file bigint, p_cap_total bigint,
    p_emit boolean, p_source text, p_quota jsonb DEFAULT '{}')
RETURNS TABLE (status text, info json, event jsonb) LANGUAGE plpgsql AS $$
DECLARE is_dir boolean := p_content IS NULL;
        sz bigint := coalesce(octet_length(p_content), 0);
        lim record; old record; r record; st text; mc bigint; q record;
        missing bigint;
BEGIN
  IF NOT evr_fs_lock(p_session, p_org) THEN
    RETURN QUERY SELECT 'no_session', NULL::json, NULL::jsonb; RETURN;
  END IF;
  SELECT * INTO lim FROM evr_fs_limits(p_session, p_org, p_cap_file, p_cap_total);
  IF sz > lim.max_file THEN
    RETURN QUERY SELECT 'too_large_file', json_build_object('limit', lim.max_file), NULL::jsonb;
    RETURN;
  END IF;
  SELECT id, path, is_directory, size_bytes, created_at, updated_at, is_readonly INTO old
    FROM session_files WHERE session_id = p_session AND path = p_path;
  IF FOUND THEN
    st := CASE WHEN old.is_directory AND is_dir AND p_mode = 'mkdir' THEN 'unchanged'
               WHEN old.is_directory AND NOT is_dir THEN 'is_directory'
               WHEN NOT old.is_directory AND is_dir THEN 'not_directory'
               WHEN p_mode <> 'replace' OR is_dir THEN 'exists'
               WHEN old.is_readonly THEN 'readonly' END;
    IF st = 'readonly' THEN
      RETURN QUERY SELECT st, NULL::json, NULL::jsonb; RETURN;
    END IF;
    IF st IS NOT NULL THEN
      RETURN QUERY SELECT st, evr_fs_info(p_session, old.id, old.path, old.is_directory,
                                          old.size_bytes, old.created_at, old.updated_at,
                                          old.is_readonly), NULL::jsonb;
      RETURN;
    END IF;
  END IF;
  mc := evr_fs_charge(p_session, p_quota);
  missing := CASE WHEN old.path IS NULL THEN evr_fs_missing_parents(p_session, p_path) ELSE 0 END;
  SELECT * INTO q FROM evr_fs_quota(p_session, p_org,
    CASE WHEN old.path IS NULL THEN 1 + missing ELSE 0 END,
    greatest(sz, mc) - CASE WHEN old.path IS NULL THEN 0 ELSE greatest(old.size_bytes, mc) END
      + missing * mc,
    lim.max_total, p_quota);
  IF q.status IS NOT NULL THEN
    RETURN QUERY SELECT q.status, q.info, NULL::jsonb; RETURN;
  END IF;
  st := evr_fs_parents(p_session, p_path);
  IF st IS NOT NULL THEN
    RETURN QUERY SELECT st, NULL::json, NULL::jsonb; RETURN;
  END IF;
  INSERT INTO session_files AS f (session_id, path, is_directory, content, size_bytes)
    VALUES (p_session, p_path, is_dir, p_content, sz)
    ON CONFLICT (session_id, path) DO UPDATE
      SET content = EXCLUDED.content, size_bytes = EXCLUDED.size_bytes,
          updated_at = now()
    RETURNING f.id, f.path, f.is_directory, f.size_bytes, f.created_at, f.updated_at,
              f.is_readonly INTO r;
  RETURN QUERY SELECT CASE WHEN old.path IS NULL THEN 'created' ELSE 'replaced' END,
    evr_fs_info(p_session, r.id, r.path, r.is_directory, r.size_bytes, r.created_at,
                r.updated_at, r.is_readonly),
    evr_fs_event(p_session, p_emit, CASE WHEN old.path IS NULL THEN 'created'
                                         ELSE 'updated' END,
                 p_path, is_dir, sz, p_source);
END $$;

CREATE OR REPLACE FUNCTION evr_fs_move(p_session uuid, p_org uuid, p_src text,
    p_dst text, p_copy boolean, p_cap_file bigint, p_cap_total bigint,
    p_emit boolean, p_source text, p_quota jsonb DEFAULT '{}')
RETURNS TABLE (status text, info json, event jsonb) LANGUAGE plpgsql AS $$
DECLARE r record; lim record; q record; mc bigint; missing bigint;
        add_n bigint := 0; add_c bigint := 0; st text; n int := length(p_src);
BEGIN
  IF NOT evr_fs_lock(p_session, p_org) THEN
    RETURN QUERY SELECT 'no_session', NULL::json, NULL::jsonb; RETURN;
  END IF;
  PERFORM 1 FROM session_files WHERE session_id = p_session AND path = p_src;
  IF NOT FOUND THEN RETURN QUERY SELECT 'not_found', NULL::json, NULL::jsonb; RETURN; END IF;
  IF NOT p_copy AND evr_fs_readonly(p_session, p_src) THEN
    RETURN QUERY SELECT 'readonly', NULL::json, NULL::jsonb; RETURN;
  END IF;
  IF p_dst = p_src OR starts_with(p_dst, p_src || '/') THEN
    RETURN QUERY SELECT 'into_itself', NULL::json, NULL::jsonb; RETURN;
  END IF;
  PERFORM 1 FROM session_files WHERE session_id = p_session AND path = p_dst;
  IF FOUND THEN RETURN QUERY SELECT 'exists', NULL::json, NULL::jsonb; RETURN; END IF;
  SELECT * INTO lim FROM evr_fs_limits(p_session, p_org, p_cap_file, p_cap_total);
  mc := evr_fs_charge(p_session, p_quota);
  missing := evr_fs_missing_parents(p_session, p_dst);
  IF p_copy THEN
    SELECT count(*), coalesce(sum(greatest(size_bytes, mc)), 0) INTO add_n, add_c
      FROM session_files WHERE session_id = p_session
        AND (path = p_src OR (path > p_src || '/' AND path < p_src || '0'));
  END IF;
  SELECT * INTO q FROM evr_fs_quota(p_session, p_org, add_n + missing,
                                    add_c + missing * mc, lim.max_total, p_quota);
  IF q.status IS NOT NULL THEN
    RETURN QUERY SELECT q.status, q.info, NULL::jsonb; RETURN;
  END IF;
  st := evr_fs_parents(p_session, p_dst);
  IF st IS NOT NULL THEN
    RETURN QUERY SELECT st, NULL::json, NULL::jsonb; RETURN;
  END IF;
  IF p_copy THEN
    INSERT INTO session_files (session_id, path, is_directory, content, size_bytes)
      SELECT session_id, p_dst || substr(path, n + 1), is_directory, content, size_bytes
      FROM session_files WHERE session_id = p_session
        AND (path = p_src OR (path > p_src || '/' AND path < p_src || '0'));
  ELSE
    UPDATE session_files SET path = p_dst || substr(path, n + 1), updated_at = now()
      WHERE session_id = p_session
        AND (path = p_src OR (path > p_src || '/' AND path < p_src || '0'));
  END IF;
  SELECT id, path, is_directory, size_bytes, created_at, updated_at, is_readonly INTO r
    FROM session_files WHERE session_id = p_session AND path = p_dst;
  RETURN QUERY SELECT CASE WHEN p_copy THEN 'copied' ELSE 'moved' END,
    evr_fs_info(p_session, r.id, r.path, r.is_directory, r.size_bytes, r.created_at,
                r.updated_at, r.is_readonly),
    evr_fs_event(p_session, p_emit, CASE WHEN p_copy THEN 'copied' ELSE 'moved' END,
                 p_dst, r.is_directory, r.size_bytes, p_source, p_src);
END $$;

CREATE OR REPLACE FUNCTION evr_fs_delete(p_session uuid, p_org uuid, p_path text,
    p_recursive boolean, p_emit boolean, p_source text)
RETURNS TABLE (status text, event jsonb) LANGUAGE plpgsql AS $$
DECLARE old record;
BEGIN
  IF NOT evr_fs_lock(p_session, p_org) THEN
    RETURN QUERY SELECT 'no_session', NULL::jsonb; RETURN;
  END IF;
  SELECT is_directory, size_bytes INTO old
    FROM session_files WHERE session_id = p_session AND path = p_path;
  IF NOT FOUND THEN RETURN QUERY SELECT 'not_found', NULL::jsonb; RETURN; END IF;
  IF evr_fs_readonly(p_session, p_path) THEN
    RETURN QUERY SELECT 'readonly', NULL::jsonb; RETURN;
  END IF;
  IF old.is_directory THEN
    IF NOT p_recursive AND EXISTS (SELECT 1 FROM session_files
        WHERE session_id = p_session AND parent = p_path) THEN
      RETURN QUERY SELECT 'not_empty', NULL::jsonb; RETURN;
    END IF;
    DELETE FROM session_files WHERE session_id = p_session
      AND path > p_path || '/' AND path < p_path || '0';
  END IF;
  DELETE FROM session_files WHERE session_id = p_session AND path = p_path;
  RETURN QUERY SELECT 'deleted', evr_fs_event(p_session, p_emit, 'deleted',
    p_path, old.is_directory, old.size_bytes, p_source);
END $$;
