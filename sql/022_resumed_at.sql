-- 022: a turn queued again by the answers to its wait (019) is given
-- no_runner_timeout_s from that moment, as a new turn is from its start.
-- evr_fail_unclaimed (011) measured a queued turn's wait from created_at:
-- a turn that had waited an hour for a client, answered while no runner
-- was alive (a restart), failed no_runner at the next GET /health or
-- GET /sessions/{id} instead of after the grace time.
-- turns.resumed_at: the last resume (evr_tool_answer); NULL before one.
ALTER TABLE turns ADD COLUMN resumed_at timestamptz;

-- evr_tool_answer as in 019, setting resumed_at when it queues the turn.
CREATE OR REPLACE FUNCTION evr_tool_answer(p_org uuid, p_session uuid, p_kind text,
                                p_answers jsonb)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE s sessions; t turns; a jsonb; c jsonb; cid text; n integer := 0;
        calls jsonb; tid text; ok boolean; why text; d jsonb;
BEGIN
  SELECT * INTO s FROM sessions WHERE id = p_session AND org_id = p_org FOR UPDATE;
  IF NOT FOUND THEN RETURN json_build_object('code', 'not_found'); END IF;
  SELECT * INTO t FROM turns WHERE session_id = p_session AND state = 'waiting'
    FOR UPDATE;
  IF NOT FOUND THEN
    RETURN json_build_object('code', 'not_waiting', 'status', s.status);
  END IF;
  FOR a IN SELECT x FROM jsonb_array_elements(p_answers) x LOOP
    cid := a->>'tool_call_id';
    c := t.wait_calls -> cid;
    IF c IS NULL THEN
      RETURN json_build_object('code', 'unknown_tool_call', 'id', cid);
    ELSIF (c->>'answered')::boolean THEN
      RETURN json_build_object('code', 'already_answered', 'id', cid);
    ELSIF c->>'kind' <> p_kind THEN
      RETURN json_build_object('code', 'wrong_kind', 'id', cid,
                               'kind', c->>'kind');
    END IF;
  END LOOP;
  tid := evr_id('trn', t.id);
  calls := t.wait_calls;
  FOR a IN SELECT x FROM jsonb_array_elements(p_answers) x LOOP
    cid := a->>'tool_call_id';
    c := calls -> cid;
    IF p_kind = 'client' THEN
      -- the API gives {tool_call_id, text | error, size_bytes?, truncated?}
      ok := a->>'error' IS NULL;
      d := jsonb_build_object('tool_call_id', cid, 'tool_name', c->>'name',
        'success', ok, 'status', CASE WHEN ok THEN 'success' ELSE 'error' END,
        'source', 'client');
      IF ok THEN
        d := d || jsonb_build_object('result', jsonb_build_array(
          jsonb_build_object('type', 'text', 'text', coalesce(a->>'text', ''))));
      ELSE
        d := d || jsonb_build_object('error', a->>'error');
      END IF;
      IF a ? 'size_bytes' THEN
        d := d || jsonb_build_object('size_bytes', a->'size_bytes', 'truncated', true);
      END IF;
      PERFORM evr_emit(p_session, 'tool.completed', d, t.id, t.input_message_id);
    ELSE
      ok := (a->>'approved')::boolean;
      PERFORM evr_emit(p_session, 'tool.approval_resolved', jsonb_strip_nulls(
        jsonb_build_object('turn_id', tid, 'tool_call_id', cid,
          'tool_name', c->>'name', 'approved', ok, 'reason', a->>'reason')),
        t.id, t.input_message_id);
      IF NOT ok THEN
        why := CASE WHEN coalesce(a->>'reason', '') = ''
                    THEN 'The user denied this call.'
                    ELSE 'The user denied this call: ' || (a->>'reason') END;
        PERFORM evr_emit(p_session, 'tool.completed', jsonb_build_object(
          'tool_call_id', cid, 'tool_name', c->>'name', 'success', false,
          'status', 'error', 'error', why, 'source', 'approval'),
          t.id, t.input_message_id);
      END IF;
    END IF;
    calls := jsonb_set(calls, ARRAY[cid, 'answered'], 'true');
    n := n + 1;
  END LOOP;
  IF EXISTS (SELECT 1 FROM jsonb_each(calls) e
             WHERE NOT (e.value->>'answered')::boolean) THEN
    UPDATE turns SET wait_calls = calls WHERE id = t.id;
    RETURN json_build_object('code', 'ok', 'accepted', n, 'status', s.status);
  END IF;
  UPDATE turns SET wait_calls = calls, state = 'queued', resumed_at = now(),
    attempt_base = attempt, wait_until = NULL, wait_started = NULL,
    waited_ms = waited_ms + coalesce(
      (extract(epoch FROM now() - wait_started) * 1000)::bigint, 0)
  WHERE id = t.id;
  UPDATE sessions SET status = 'active', updated_at = now() WHERE id = p_session;
  PERFORM evr_emit(p_session, 'turn.resumed', jsonb_build_object('turn_id', tid),
                   t.id, t.input_message_id);
  PERFORM pg_notify('turns', replace(t.id::text, '-', ''));
  RETURN json_build_object('code', 'ok', 'accepted', n, 'status', 'active');
END $$;

-- evr_fail_unclaimed as in 011, a queued turn's wait counted from its
-- last resume.
CREATE OR REPLACE FUNCTION evr_fail_unclaimed(p_wait_s double precision,
                                   p_alive_s double precision)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE t turns; s sessions; mid uuid; n integer := 0;
        why text := 'No runner is alive to run this turn; it was given up.';
BEGIN
  IF EXISTS (SELECT 1 FROM runners
             WHERE seen_at > now() - p_alive_s * interval '1 second') THEN
    RETURN 0;
  END IF;
  FOR t IN SELECT * FROM turns tt
      WHERE (tt.state = 'queued'
             AND coalesce(tt.resumed_at, tt.created_at)
                 < now() - p_wait_s * interval '1 second')
         OR (tt.state IN ('running', 'cancelling')
             AND tt.lease_until < now() - p_wait_s * interval '1 second')
  LOOP
    -- the session first, as every writer of a turn does; then the turn,
    -- unless a runner claimed it meanwhile
    PERFORM 1 FROM sessions WHERE id = t.session_id FOR UPDATE;
    PERFORM 1 FROM turns WHERE id = t.id AND state = t.state
      AND attempt = t.attempt FOR UPDATE;
    CONTINUE WHEN NOT FOUND;
    mid := uuidv7();
    PERFORM evr_emit(t.session_id, 'output.message.completed', jsonb_build_object(
      'message', jsonb_build_object(
        'id', evr_id('msg', mid), 'session_id', evr_id('ses', t.session_id),
        'turn_id', evr_id('trn', t.id), 'role', 'agent',
        'content', jsonb_build_array(jsonb_build_object(
          'type', 'text', 'text', 'Sorry, I could not complete this: ' || why)),
        'created_at', evr_ts(now())),
      'error_code', 'no_runner'), t.id, t.input_message_id);
    PERFORM evr_emit(t.session_id, 'turn.failed', jsonb_build_object(
      'turn_id', evr_id('trn', t.id), 'error', why, 'error_code', 'no_runner'),
      t.id, t.input_message_id);
    UPDATE turns SET state = 'failed', finished_at = now(),
                     lease_owner = NULL, lease_until = NULL
      WHERE id = t.id;
    UPDATE sessions SET status = 'idle', active_turn_id = NULL, updated_at = now()
      WHERE id = t.session_id RETURNING * INTO s;
    PERFORM evr_emit(t.session_id, 'session.idled', jsonb_build_object(
      'turn_id', evr_id('trn', t.id),
      'usage', jsonb_build_object('input_tokens', s.usage_input,
                                  'output_tokens', s.usage_output)),
      t.id, t.input_message_id);
    DELETE FROM live_text WHERE session_id = t.session_id;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
