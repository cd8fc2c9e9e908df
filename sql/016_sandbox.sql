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
    p_off integer[], p_text text[], p_x json[], p_turn uuid[],
    p_attempt integer[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE i integer;
BEGIN
  FOR i IN 1..coalesce(array_length(p_session, 1), 0) LOOP
    -- fenced as evr_write_deltas (011): a runner that lost the turn
    -- reaches no client
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM turns WHERE id = p_turn[i]
                              AND attempt = p_attempt[i] AND state = 'running');
    INSERT INTO live_text (session_id, m, off, text)
      VALUES (p_session[i], p_m[i], p_off[i], p_text[i])
      ON CONFLICT DO NOTHING;
    PERFORM pg_notify('evd', json_build_object(
      's', replace(p_session[i]::text, '-', ''), 'm', p_m[i],
      'off', p_off[i], 'd', p_text[i], 'x', p_x[i])::text);
  END LOOP;
END $$;
