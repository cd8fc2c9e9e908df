-- Hot paths (issue 18): a file write no longer copies its content into
-- the statement triggers' transition tables, and an upload can be
-- streamed into evr_fs_write.
--
-- The AFTER INSERT / AFTER UPDATE statement triggers of session_files
-- (006, 010) kept the written rows in transition tables, and a
-- transition table holds the row as it was written: the whole content,
-- before it moves to TOAST. A 10 MB upload copied its 10 MB once more
-- into a tuplestore (spilled to a temporary file past work_mem) just to
-- sum size_bytes. Row triggers read the stored row instead (its content
-- stays in TOAST, unread), and an UPDATE that leaves the size alone (a
-- move) fires none. DELETE keeps its statement trigger: a deleted row
-- is read back from the table, content still in TOAST, and a recursive
-- delete or a session's cascade stays one update.
CREATE FUNCTION evr_fs_usage_row_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.session_id = NEW.session_id THEN
      UPDATE session_fs_usage u
        SET bytes = u.bytes + NEW.size_bytes - OLD.size_bytes,
            charged = u.charged + greatest(NEW.size_bytes, u.min_charge)
                                - greatest(OLD.size_bytes, u.min_charge)
        WHERE u.session_id = NEW.session_id;
      RETURN NULL;
    END IF;
    UPDATE session_fs_usage u
      SET bytes = u.bytes - OLD.size_bytes, entries = u.entries - 1,
          charged = u.charged - greatest(OLD.size_bytes, u.min_charge)
      WHERE u.session_id = OLD.session_id;
  END IF;
  UPDATE session_fs_usage u
    SET bytes = u.bytes + NEW.size_bytes, entries = u.entries + 1,
        charged = u.charged + greatest(NEW.size_bytes, u.min_charge)
    WHERE u.session_id = NEW.session_id;
  RETURN NULL;
END $$;

DROP TRIGGER session_files_usage_ins ON session_files;
DROP TRIGGER session_files_usage_upd ON session_files;
CREATE TRIGGER session_files_usage_ins AFTER INSERT ON session_files
  FOR EACH ROW EXECUTE FUNCTION evr_fs_usage_row_trg();
CREATE TRIGGER session_files_usage_upd AFTER UPDATE ON session_files
  FOR EACH ROW WHEN (OLD.size_bytes IS DISTINCT FROM NEW.size_bytes
                     OR OLD.session_id IS DISTINCT FROM NEW.session_id)
  EXECUTE FUNCTION evr_fs_usage_row_trg();

-- A file streamed in (fcgi/lib/fs_stream.c): `COPY evr_fs_upload FROM
-- STDIN` sends one row whose content arrives as the request body does,
-- so the API never holds the whole file (a query parameter is built
-- whole in libpq's buffer, next to the body it was copied from). The
-- row is evr_fs_write's arguments as text (the content as bytea); the
-- trigger calls evr_fs_write and leaves its (status, info, event) in
-- transaction-local settings, which the same transaction then reads.
CREATE VIEW evr_fs_upload AS
  SELECT NULL::text AS session_id, NULL::text AS org_id, NULL::text AS path,
         NULL::bytea AS content, NULL::text AS mode, NULL::text AS cap_file,
         NULL::text AS cap_total, NULL::text AS emit, NULL::text AS source,
         NULL::text AS quota
  WHERE false;

CREATE FUNCTION evr_fs_upload_trg() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  SELECT * INTO r FROM evr_fs_write(NEW.session_id::uuid, NEW.org_id::uuid,
    NEW.path, NEW.content, NEW.mode, NEW.cap_file::bigint,
    NEW.cap_total::bigint, NEW.emit::boolean, NEW.source, NEW.quota::jsonb);
  PERFORM set_config('evr.fs_status', coalesce(r.status, ''), true),
          set_config('evr.fs_info', coalesce(r.info::text, ''), true),
          set_config('evr.fs_event', coalesce(r.event::text, ''), true);
  RETURN NULL;
END $$;

CREATE TRIGGER evr_fs_upload_ins INSTEAD OF INSERT ON evr_fs_upload
  FOR EACH ROW EXECUTE FUNCTION evr_fs_upload_trg();
