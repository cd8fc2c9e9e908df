-- 021: evr_expire_waits (019) never waits for a lock. Every runner calls
-- it from its event loop, on each poll: a session row held by another
-- transaction (an answer, a file write, another runner's expiry of the
-- same waits in another order) stalled the whole runner until it was
-- released, and two runners could deadlock on two sessions. A session or
-- turn locked by someone else is skipped; the next poll takes it.
-- (Numbered 021: 020 is taken by the MCP servers' migration.)
CREATE OR REPLACE FUNCTION evr_expire_waits() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE t turns; s sessions; mid uuid; n integer := 0;
        why text := 'No answer came for the tool calls it waited for; it was given up.';
BEGIN
  FOR t IN SELECT * FROM turns tt WHERE tt.state = 'waiting'
             AND tt.wait_until < now() ORDER BY tt.wait_until, tt.id LIMIT 100 LOOP
    -- the session first, as every writer of a turn does; never waiting
    PERFORM 1 FROM sessions WHERE id = t.session_id FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    PERFORM 1 FROM turns WHERE id = t.id AND state = 'waiting'
      AND wait_until < now() FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    mid := uuidv7();
    PERFORM evr_emit(t.session_id, 'output.message.completed', jsonb_build_object(
      'message', jsonb_build_object(
        'id', evr_id('msg', mid), 'session_id', evr_id('ses', t.session_id),
        'turn_id', evr_id('trn', t.id), 'role', 'agent',
        'content', jsonb_build_array(jsonb_build_object(
          'type', 'text', 'text', 'Sorry, I could not complete this: ' || why)),
        'created_at', evr_ts(now())),
      'error_code', 'tool_wait_timeout'), t.id, t.input_message_id);
    PERFORM evr_emit(t.session_id, 'turn.failed', jsonb_build_object(
      'turn_id', evr_id('trn', t.id), 'error', why,
      'error_code', 'tool_wait_timeout'), t.id, t.input_message_id);
    UPDATE turns SET state = 'failed', finished_at = now(), wait_until = NULL
      WHERE id = t.id;
    UPDATE sessions SET status = 'idle', active_turn_id = NULL, updated_at = now()
      WHERE id = t.session_id RETURNING * INTO s;
    PERFORM evr_emit(t.session_id, 'session.idled', jsonb_build_object(
      'turn_id', evr_id('trn', t.id),
      'usage', jsonb_build_object('input_tokens', s.usage_input,
                                  'output_tokens', s.usage_output)),
      t.id, t.input_message_id);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
