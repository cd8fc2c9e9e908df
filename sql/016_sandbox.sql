-- 016: the sandbox of the virtual_bash capability (fcgi/runner/sandbox.c).
-- Each runner says in its heartbeat whether it can create the sandbox's
-- namespaces: NULL when it can, else the reason (what /health shows).
ALTER TABLE runners ADD COLUMN sandbox_error text;

-- Live output of a running command (tool.output.delta): chunks of the
-- command's output as live_text rows of the tool.started event it
-- continues (m), and `evd` notifications like evr_write_deltas' with `x`,
-- the delta's own fields ({tool_call_id, tool_name, stream}). The caller
-- runs this with synchronous_commit off.
CREATE FUNCTION evr_write_tool_deltas(p_session uuid[], p_m bigint[],
    p_off integer[], p_text text[], p_x json[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE i integer;
BEGIN
  FOR i IN 1..coalesce(array_length(p_session, 1), 0) LOOP
    INSERT INTO live_text (session_id, m, off, text)
      SELECT p_session[i], p_m[i], p_off[i], p_text[i]
      WHERE EXISTS (SELECT 1 FROM sessions
                    WHERE id = p_session[i] AND status = 'active')
      ON CONFLICT DO NOTHING;
    PERFORM pg_notify('evd', json_build_object(
      's', replace(p_session[i]::text, '-', ''), 'm', p_m[i],
      'off', p_off[i], 'd', p_text[i], 'x', p_x[i])::text);
  END LOOP;
END $$;
