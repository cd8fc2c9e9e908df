-- 006: the session file system (ARCHITECTURE 6.1), shared by the REST routes
-- (fcgi/api/session_fs.c) and the session_file_system tools of the runner
-- (fcgi/runner/tools/session_file_system.c) through fcgi/lib/fs.c.
--
-- One row per file or directory of a session; the root "/" is implicit.
-- Paths are normalized by fcgi/lib/fs.c before they get here (absolute,
-- no empty, "." or ".." segments, no control characters, at most 1024
-- bytes); `parent` is derived from the path so that a directory listing
-- is an index range. Rows go with their session (ON DELETE CASCADE) and,
-- like events, carry no org_id: every statement reaches them through the
-- session's id AND organization.
--
-- Every change runs in one of the evr_fs_* functions below, as one
-- statement: it locks the session row (FOR NO KEY UPDATE, the lock that
-- evr_emit takes anyway), so the changes of one session are serialized:
-- two writes to one path leave one of them whole, and the per-session
-- total (session_fs_usage, kept by a trigger) cannot be passed by two
-- writers at once. Each change emits one `file.written` event: {path,
-- operation (created | updated | deleted | moved | copied), created (the
-- path is new), is_directory, size_bytes, source (api | tool),
-- from_path (moves and copies)}; a tool's in its turn (evr_fs_event).

CREATE FUNCTION evr_fs_parent(p text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN position('/' IN substr(p, 2)) = 0 THEN '/'
              ELSE regexp_replace(p, '/[^/]*$', '') END
$$;

CREATE TABLE session_files (
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  path text COLLATE "C" NOT NULL
    CHECK (path LIKE '/_%' AND octet_length(path) <= 1024),
  parent text COLLATE "C" NOT NULL GENERATED ALWAYS AS (evr_fs_parent(path)) STORED,
  is_directory boolean NOT NULL,
  content bytea, -- NULL for a directory
  size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, path),
  CHECK (is_directory = (content IS NULL))
);
-- files are mostly small text or already compressed data: no pglz on the
-- write path
ALTER TABLE session_files ALTER COLUMN content SET STORAGE EXTERNAL;
CREATE INDEX session_files_parent ON session_files (session_id, parent, path);

-- Bytes held by each session's files, for the per-session total.
CREATE TABLE session_fs_usage (
  session_id uuid PRIMARY KEY REFERENCES sessions ON DELETE CASCADE,
  bytes bigint NOT NULL DEFAULT 0
);

-- Kept per statement (transition tables), so that a recursive delete,
-- a directory copy or a session's cascade costs one update, not one per
-- file.
CREATE FUNCTION evr_fs_usage_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE session_fs_usage u SET bytes = u.bytes + d.n
      FROM (SELECT session_id, sum(size_bytes) AS n FROM new_rows
            GROUP BY session_id) d
      WHERE u.session_id = d.session_id;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE session_fs_usage u SET bytes = u.bytes - d.n
      FROM (SELECT session_id, sum(size_bytes) AS n FROM old_rows
            GROUP BY session_id) d
      WHERE u.session_id = d.session_id;
  ELSE
    UPDATE session_fs_usage u SET bytes = u.bytes + d.n
      FROM (SELECT session_id, sum(n) AS n FROM (
              SELECT session_id, size_bytes AS n FROM new_rows
              UNION ALL
              SELECT session_id, -size_bytes FROM old_rows) x
            GROUP BY session_id) d
      WHERE u.session_id = d.session_id AND d.n <> 0;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER session_files_usage_ins AFTER INSERT ON session_files
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION evr_fs_usage_trg();
CREATE TRIGGER session_files_usage_del AFTER DELETE ON session_files
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION evr_fs_usage_trg();
CREATE TRIGGER session_files_usage_upd AFTER UPDATE ON session_files
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION evr_fs_usage_trg();

-- The FileInfo of a row, from its columns: a whole row would detoast the
-- content (a composite value cannot point into TOAST), so nothing here
-- or in the callers passes one around.
CREATE FUNCTION evr_fs_info(p_path text, p_dir boolean, p_size bigint,
                            p_created timestamptz, p_updated timestamptz)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
  SELECT json_build_object(
    'path', p_path, 'name', regexp_replace(p_path, '^.*/', ''),
    'is_directory', p_dir, 'size_bytes', p_size,
    'created_at', evr_ts(p_created), 'updated_at', evr_ts(p_updated))
$$;

-- The session_file_system config of a capability list (the last entry
-- with that ref), or NULL.
CREATE FUNCTION evr_fs_cap_config(caps jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE AS $$
  SELECT e.c -> 'config'
  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(caps) = 'array'
                                 THEN caps ELSE '[]' END)
       WITH ORDINALITY AS e(c, n)
  WHERE e.c ->> 'ref' = 'session_file_system'
  ORDER BY e.n DESC LIMIT 1
$$;

-- The session's limits in bytes: its effective session_file_system config
-- (the session's, else its agent's, else its harness's: the runner's
-- precedence) with max_file_size_mb (default 10) and max_total_mb
-- (default 100), each capped by the server's setting (p_cap_file,
-- p_cap_total, bytes). No row: no such session.
CREATE FUNCTION evr_fs_limits(p_session uuid, p_org uuid, p_cap_file bigint,
                              p_cap_total bigint)
RETURNS TABLE (max_file bigint, max_total bigint)
LANGUAGE sql STABLE AS $$
  WITH c AS (
    SELECT coalesce(evr_fs_cap_config(s.capabilities),
                    evr_fs_cap_config(a.capabilities),
                    evr_fs_cap_config(h.capabilities), '{}') AS cfg
    FROM sessions s
    LEFT JOIN agents a ON a.id = s.agent_id
    LEFT JOIN harnesses h ON h.id = s.harness_id
    WHERE s.id = p_session AND s.org_id = p_org)
  SELECT least(coalesce(CASE WHEN jsonb_typeof(cfg -> 'max_file_size_mb') = 'number'
                             THEN (cfg ->> 'max_file_size_mb')::numeric END, 10)
               * 1048576, p_cap_file)::bigint,
         least(coalesce(CASE WHEN jsonb_typeof(cfg -> 'max_total_mb') = 'number'
                             THEN (cfg ->> 'max_total_mb')::numeric END, 100)
               * 1048576, p_cap_total)::bigint
  FROM c
$$;

-- Lock the session for a change: false if it is not the organization's.
CREATE FUNCTION evr_fs_lock(p_session uuid, p_org uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM sessions WHERE id = p_session AND org_id = p_org
    FOR NO KEY UPDATE;
  IF NOT FOUND THEN RETURN false; END IF;
  INSERT INTO session_fs_usage (session_id) VALUES (p_session)
    ON CONFLICT DO NOTHING;
  RETURN true;
END $$;

-- Create the missing parent directories of p_path. NULL when done, else
-- the status 'parent_not_dir' (an ancestor is a file), with nothing
-- created: ancestors are walked from the top, and every row's parents
-- exist, so all ancestors above a file exist already.
CREATE FUNCTION evr_fs_parents(p_session uuid, p_path text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE parts text[] := string_to_array(substr(p_path, 2), '/');
        anc text; d boolean; i int;
BEGIN
  FOR i IN 1 .. coalesce(array_length(parts, 1), 0) - 1 LOOP
    anc := '/' || array_to_string(parts[1:i], '/');
    SELECT is_directory INTO d FROM session_files
      WHERE session_id = p_session AND path = anc;
    IF NOT FOUND THEN
      INSERT INTO session_files (session_id, path, is_directory)
        VALUES (p_session, anc, true);
    ELSIF NOT d THEN
      RETURN 'parent_not_dir';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

-- The data of a change's `file.written` event, emitted here with p_emit
-- (REST); a tool's goes back to the runner, which queues it with the
-- turn's other events so that it lands between tool.started and
-- tool.completed.
CREATE FUNCTION evr_fs_event(p_session uuid, p_emit boolean, p_op text,
                             p_path text, p_dir boolean, p_size bigint,
                             p_source text, p_from text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE d jsonb := jsonb_strip_nulls(jsonb_build_object(
    'path', p_path, 'operation', p_op,
    'created', p_op IN ('created', 'moved', 'copied'), 'is_directory', p_dir,
    'size_bytes', p_size, 'source', p_source, 'from_path', p_from));
BEGIN
  IF p_emit THEN
    PERFORM evr_emit(p_session, 'file.written', d);
  END IF;
  RETURN d;
END $$;

-- Write a file (p_content) or a directory (p_content NULL). p_mode:
-- 'create' (an existing path is 'exists'), 'replace' (a file is
-- overwritten), 'mkdir' (an existing directory is fine). Statuses:
-- created | replaced | unchanged | no_session | too_large_file |
-- too_large_total | exists | is_directory | not_directory |
-- parent_not_dir; info is the FileInfo (or {"limit": bytes} for a 413),
-- event the data of the `file.written` event (evr_fs_event).
CREATE FUNCTION evr_fs_write(p_session uuid, p_org uuid, p_path text,
    p_content bytea, p_mode text, p_cap_file bigint, p_cap_total bigint,
    p_emit boolean, p_source text)
RETURNS TABLE (status text, info json, event jsonb) LANGUAGE plpgsql AS $$
DECLARE is_dir boolean := p_content IS NULL;
        sz bigint := coalesce(octet_length(p_content), 0);
        lim record; old record; r record; used bigint; st text;
BEGIN
  IF NOT evr_fs_lock(p_session, p_org) THEN
    RETURN QUERY SELECT 'no_session', NULL::json, NULL::jsonb; RETURN;
  END IF;
  SELECT * INTO lim FROM evr_fs_limits(p_session, p_org, p_cap_file, p_cap_total);
  IF sz > lim.max_file THEN
    RETURN QUERY SELECT 'too_large_file', json_build_object('limit', lim.max_file), NULL::jsonb;
    RETURN;
  END IF;
  SELECT path, is_directory, size_bytes, created_at, updated_at INTO old
    FROM session_files WHERE session_id = p_session AND path = p_path;
  IF FOUND THEN
    st := CASE WHEN old.is_directory AND is_dir AND p_mode = 'mkdir' THEN 'unchanged'
               WHEN old.is_directory AND NOT is_dir THEN 'is_directory'
               WHEN NOT old.is_directory AND is_dir THEN 'not_directory'
               WHEN p_mode <> 'replace' OR is_dir THEN 'exists' END;
    IF st IS NOT NULL THEN
      RETURN QUERY SELECT st, evr_fs_info(old.path, old.is_directory, old.size_bytes,
                                          old.created_at, old.updated_at), NULL::jsonb;
      RETURN;
    END IF;
  END IF;
  SELECT bytes INTO used FROM session_fs_usage WHERE session_id = p_session;
  IF used - coalesce(old.size_bytes, 0) + sz > lim.max_total THEN
    RETURN QUERY SELECT 'too_large_total', json_build_object('limit', lim.max_total), NULL::jsonb;
    RETURN;
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
    RETURNING f.path, f.is_directory, f.size_bytes, f.created_at, f.updated_at INTO r;
  RETURN QUERY SELECT CASE WHEN old.path IS NULL THEN 'created' ELSE 'replaced' END,
    evr_fs_info(r.path, r.is_directory, r.size_bytes, r.created_at, r.updated_at),
    evr_fs_event(p_session, p_emit, CASE WHEN old.path IS NULL THEN 'created'
                                         ELSE 'updated' END,
                 p_path, is_dir, sz, p_source);
END $$;

-- Delete a file or directory (with p_recursive, a non-empty one).
-- Statuses: deleted | no_session | not_found | not_empty.
CREATE FUNCTION evr_fs_delete(p_session uuid, p_org uuid, p_path text,
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

-- Move (p_copy false) or copy a file or a directory with its contents to
-- a path that does not exist; parents of the destination are created.
-- Statuses: moved | copied | no_session | not_found | exists |
-- into_itself | parent_not_dir | too_large_total; info is the FileInfo
-- of the destination.
CREATE FUNCTION evr_fs_move(p_session uuid, p_org uuid, p_src text,
    p_dst text, p_copy boolean, p_cap_file bigint, p_cap_total bigint,
    p_emit boolean, p_source text)
RETURNS TABLE (status text, info json, event jsonb) LANGUAGE plpgsql AS $$
DECLARE r record; lim record; used bigint;
        add bigint; st text; n int := length(p_src);
BEGIN
  IF NOT evr_fs_lock(p_session, p_org) THEN
    RETURN QUERY SELECT 'no_session', NULL::json, NULL::jsonb; RETURN;
  END IF;
  PERFORM 1 FROM session_files WHERE session_id = p_session AND path = p_src;
  IF NOT FOUND THEN RETURN QUERY SELECT 'not_found', NULL::json, NULL::jsonb; RETURN; END IF;
  IF p_dst = p_src OR starts_with(p_dst, p_src || '/') THEN
    RETURN QUERY SELECT 'into_itself', NULL::json, NULL::jsonb; RETURN;
  END IF;
  PERFORM 1 FROM session_files WHERE session_id = p_session AND path = p_dst;
  IF FOUND THEN RETURN QUERY SELECT 'exists', NULL::json, NULL::jsonb; RETURN; END IF;
  IF p_copy THEN
    SELECT * INTO lim FROM evr_fs_limits(p_session, p_org, p_cap_file, p_cap_total);
    SELECT bytes INTO used FROM session_fs_usage WHERE session_id = p_session;
    SELECT coalesce(sum(size_bytes), 0) INTO add FROM session_files
      WHERE session_id = p_session
        AND (path = p_src OR (path > p_src || '/' AND path < p_src || '0'));
    IF used + add > lim.max_total THEN
      RETURN QUERY SELECT 'too_large_total', json_build_object('limit', lim.max_total), NULL::jsonb;
      RETURN;
    END IF;
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
  SELECT path, is_directory, size_bytes, created_at, updated_at INTO r
    FROM session_files WHERE session_id = p_session AND path = p_dst;
  RETURN QUERY SELECT CASE WHEN p_copy THEN 'copied' ELSE 'moved' END,
    evr_fs_info(r.path, r.is_directory, r.size_bytes, r.created_at, r.updated_at),
    evr_fs_event(p_session, p_emit, CASE WHEN p_copy THEN 'copied' ELSE 'moved' END,
                 p_dst, r.is_directory, r.size_bytes, p_source, p_src);
END $$;
