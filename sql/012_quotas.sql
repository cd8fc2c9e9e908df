-- 010: quotas (README "Limits"). A session's file system is charged per
-- entry, so that directories and empty files are not free and copying a
-- subtree cannot multiply rows without bound: every entry (file or
-- directory) counts towards fs_session_max_entries, and towards the
-- session's max_total_mb with at least min_charge bytes (fs_entry_min_kb,
-- taken from the configuration while the session has no entries, kept
-- after, so the running sum never drifts). An organization's sessions,
-- stored bytes (those charges plus its images) and durable events are
-- bounded too (org_max_sessions, org_max_storage_mb, org_max_events); the
-- events of a session are its last_seq (gap-free, never deleted but with
-- the session), so counting them reads one row per session.
ALTER TABLE session_fs_usage
  ADD COLUMN entries bigint NOT NULL DEFAULT 0,
  ADD COLUMN charged bigint NOT NULL DEFAULT 0,
  ADD COLUMN min_charge bigint NOT NULL DEFAULT 4096 CHECK (min_charge >= 0);
UPDATE session_fs_usage u SET entries = x.n, charged = x.c
  FROM (SELECT session_id, count(*) AS n, sum(greatest(size_bytes, 4096)) AS c
        FROM session_files GROUP BY session_id) x
  WHERE u.session_id = x.session_id;

-- images' bytes of an organization without reading their rows
CREATE INDEX images_org_size ON images (org_id) INCLUDE (size_bytes);

CREATE OR REPLACE FUNCTION evr_fs_usage_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE session_fs_usage u SET bytes = u.bytes + d.n, entries = u.entries + d.e,
                                  charged = u.charged + d.c
      FROM (SELECT r.session_id, sum(r.size_bytes) AS n, count(*) AS e,
                   sum(greatest(r.size_bytes, m.min_charge)) AS c
            FROM new_rows r JOIN session_fs_usage m USING (session_id)
            GROUP BY r.session_id) d
      WHERE u.session_id = d.session_id;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE session_fs_usage u SET bytes = u.bytes - d.n, entries = u.entries - d.e,
                                  charged = u.charged - d.c
      FROM (SELECT r.session_id, sum(r.size_bytes) AS n, count(*) AS e,
                   sum(greatest(r.size_bytes, m.min_charge)) AS c
            FROM old_rows r JOIN session_fs_usage m USING (session_id)
            GROUP BY r.session_id) d
      WHERE u.session_id = d.session_id;
  ELSE
    UPDATE session_fs_usage u SET bytes = u.bytes + d.n, charged = u.charged + d.c
      FROM (SELECT x.session_id, sum(x.n * x.sign) AS n,
                   sum(greatest(x.n, m.min_charge) * x.sign) AS c
            FROM (SELECT session_id, size_bytes AS n, 1 AS sign FROM new_rows
                  UNION ALL
                  SELECT session_id, size_bytes, -1 FROM old_rows) x
            JOIN session_fs_usage m USING (session_id)
            GROUP BY x.session_id) d
      WHERE u.session_id = d.session_id AND (d.n <> 0 OR d.c <> 0);
  END IF;
  RETURN NULL;
END $$;

-- An organization's usage: sessions, stored bytes (charged file bytes
-- and images) and durable events.
CREATE FUNCTION evr_org_usage(p_org uuid)
RETURNS TABLE (sessions bigint, stored bigint, events bigint)
LANGUAGE sql STABLE AS $$
  SELECT count(*), coalesce(sum(u.charged), 0)
           + (SELECT coalesce(sum(size_bytes), 0) FROM images WHERE org_id = p_org),
         coalesce(sum(s.last_seq), 0)
  FROM sessions s LEFT JOIN session_fs_usage u ON u.session_id = s.id
  WHERE s.org_id = p_org
$$;

-- The ancestors of p_path that do not exist yet (what evr_fs_parents
-- would create).
CREATE FUNCTION evr_fs_missing_parents(p_session uuid, p_path text) RETURNS bigint
LANGUAGE sql STABLE AS $$
  WITH parts AS (SELECT string_to_array(substr(p_path, 2), '/') AS a)
  SELECT count(*) FROM parts, generate_series(1, coalesce(array_length(a, 1), 0) - 1) i
  WHERE NOT EXISTS (SELECT 1 FROM session_files
                    WHERE session_id = p_session
                      AND path = '/' || array_to_string(a[1:i], '/'))
$$;

-- Would adding p_entries entries charged p_charge bytes pass a quota?
-- NULL when not, else the status and {"limit": n} of the first one
-- passed. p_quota: {max_entries, min_charge, org_max_bytes,
-- org_max_events} (absent: no such bound).
CREATE FUNCTION evr_fs_quota(p_session uuid, p_org uuid, p_entries bigint,
                             p_charge bigint, p_max_total bigint, p_quota jsonb)
RETURNS TABLE (status text, info json) LANGUAGE plpgsql AS $$
DECLARE u record; o record;
BEGIN
  SELECT * INTO u FROM session_fs_usage WHERE session_id = p_session;
  IF p_quota ? 'max_entries' AND p_entries > 0
     AND u.entries + p_entries > (p_quota ->> 'max_entries')::bigint THEN
    RETURN QUERY SELECT 'too_many_entries', json_build_object('limit', (p_quota ->> 'max_entries')::bigint);
    RETURN;
  END IF;
  IF p_charge > 0 AND u.charged + p_charge > p_max_total THEN
    RETURN QUERY SELECT 'too_large_total', json_build_object('limit', p_max_total);
    RETURN;
  END IF;
  IF (p_charge > 0 AND p_quota ? 'org_max_bytes') OR p_quota ? 'org_max_events' THEN
    SELECT * INTO o FROM evr_org_usage(p_org);
    IF p_charge > 0 AND p_quota ? 'org_max_bytes'
       AND o.stored + p_charge > (p_quota ->> 'org_max_bytes')::bigint THEN
      RETURN QUERY SELECT 'org_storage_full', json_build_object('limit', (p_quota ->> 'org_max_bytes')::bigint);
      RETURN;
    END IF;
    IF p_quota ? 'org_max_events' AND o.events >= (p_quota ->> 'org_max_events')::bigint THEN
      RETURN QUERY SELECT 'org_events_full', json_build_object('limit', (p_quota ->> 'org_max_events')::bigint);
      RETURN;
    END IF;
  END IF;
END $$;

-- A session without entries takes the configured minimum charge.
CREATE FUNCTION evr_fs_charge(p_session uuid, p_quota jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE mc bigint;
BEGIN
  IF p_quota ? 'min_charge' THEN
    UPDATE session_fs_usage SET min_charge = (p_quota ->> 'min_charge')::bigint
      WHERE session_id = p_session AND entries = 0
        AND min_charge <> (p_quota ->> 'min_charge')::bigint;
  END IF;
  SELECT min_charge INTO mc FROM session_fs_usage WHERE session_id = p_session;
  RETURN mc;
END $$;

DROP FUNCTION evr_fs_write(uuid, uuid, text, bytea, text, bigint, bigint, boolean, text);
CREATE FUNCTION evr_fs_write(p_session uuid, p_org uuid, p_path text,
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
    RETURNING f.path, f.is_directory, f.size_bytes, f.created_at, f.updated_at INTO r;
  RETURN QUERY SELECT CASE WHEN old.path IS NULL THEN 'created' ELSE 'replaced' END,
    evr_fs_info(r.path, r.is_directory, r.size_bytes, r.created_at, r.updated_at),
    evr_fs_event(p_session, p_emit, CASE WHEN old.path IS NULL THEN 'created'
                                         ELSE 'updated' END,
                 p_path, is_dir, sz, p_source);
END $$;

-- Copies count every entry they add (the subtree is counted before
-- anything is written, so a copy over the limit writes nothing); moves
-- count the parents they create.
DROP FUNCTION evr_fs_move(uuid, uuid, text, text, boolean, bigint, bigint, boolean, text);
CREATE FUNCTION evr_fs_move(p_session uuid, p_org uuid, p_src text,
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
  SELECT path, is_directory, size_bytes, created_at, updated_at INTO r
    FROM session_files WHERE session_id = p_session AND path = p_dst;
  RETURN QUERY SELECT CASE WHEN p_copy THEN 'copied' ELSE 'moved' END,
    evr_fs_info(r.path, r.is_directory, r.size_bytes, r.created_at, r.updated_at),
    evr_fs_event(p_session, p_emit, CASE WHEN p_copy THEN 'copied' ELSE 'moved' END,
                 p_dst, r.is_directory, r.size_bytes, p_source, p_src);
END $$;
