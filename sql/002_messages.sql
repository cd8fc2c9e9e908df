-- 002: messages, turns' live text, images, and the API side of turns
-- (send, cancel). Messages are not a table of their own: a message is the
-- `message` inside an input.message or output.message.completed event (or
-- the result of a tool.completed event), so the event log is the single
-- source of truth and a message's sequence is its event's.

-- Text of the message being streamed, so a stream that (re)connects
-- mid-message gets everything so far. Unlogged: losing it in a crash
-- loses only an in-progress preview.
CREATE UNLOGGED TABLE live_text (
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  m bigint NOT NULL,         -- sequence of the *.started event it continues
  off integer NOT NULL,      -- byte offset of this chunk in the message
  text text NOT NULL,
  PRIMARY KEY (session_id, m, off)
);

CREATE TABLE images (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  session_id uuid REFERENCES sessions ON DELETE SET NULL,
  filename text NOT NULL DEFAULT '',
  media_type text NOT NULL,
  size_bytes integer NOT NULL,
  data bytea NOT NULL,
  attached boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_org ON images (org_id, created_at DESC);

CREATE FUNCTION api_event(e events) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('evt', e.id), 'type', e.type, 'ts', evr_ts(e.ts),
    'session_id', evr_id('ses', e.session_id), 'sequence', e.seq,
    'context', json_build_object('turn_id', evr_id('trn', e.turn_id),
                                 'input_message_id', evr_id('msg', e.input_message_id)),
    'data', e.data)
$$;

-- The message an event carries, with its sequence; NULL for other events.
CREATE FUNCTION api_message(e events) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN e.type IN ('input.message', 'output.message.completed') THEN
      (e.data -> 'message') || jsonb_build_object('sequence', e.seq)
    WHEN e.type = 'tool.completed' THEN
      jsonb_build_object(
        'id', evr_id('msg', e.id), 'session_id', evr_id('ses', e.session_id),
        'sequence', e.seq, 'turn_id', evr_id('trn', e.turn_id),
        'role', 'tool_result',
        'content', jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
          'type', 'tool_result', 'tool_call_id', e.data -> 'tool_call_id',
          'result', e.data -> 'result', 'error', e.data -> 'error'))),
        'created_at', evr_ts(e.ts))
  END
$$;

-- Send a user message: ARCHITECTURE 3.1 steps 2-4 (the caller did step 1, the
-- idempotency key, in the same transaction). Returns the message with its
-- sequence and result 'ok', or NULL with result 'busy' or 'gone'.
CREATE FUNCTION evr_message_send(p_org uuid, p_session uuid, p_turn uuid,
    p_msg uuid, p_content jsonb, p_controls jsonb, p_metadata jsonb,
    OUT message jsonb, OUT result text)
LANGUAGE plpgsql AS $$
DECLARE seq bigint;
BEGIN
  UPDATE sessions SET status = 'active', active_turn_id = p_turn,
                      updated_at = now()
    WHERE id = p_session AND org_id = p_org AND status = 'idle';
  IF NOT FOUND THEN
    PERFORM 1 FROM sessions WHERE id = p_session AND org_id = p_org;
    result := CASE WHEN FOUND THEN 'busy' ELSE 'gone' END;
    RETURN;
  END IF;
  INSERT INTO turns (id, org_id, session_id, input_message_id, controls)
    VALUES (p_turn, p_org, p_session, p_msg, coalesce(p_controls, '{}'));
  message := jsonb_strip_nulls(jsonb_build_object(
    'id', evr_id('msg', p_msg), 'session_id', evr_id('ses', p_session),
    'turn_id', evr_id('trn', p_turn), 'role', 'user', 'content', p_content,
    'controls', p_controls, 'metadata', p_metadata,
    'created_at', evr_ts(now())));
  seq := evr_emit(p_session, 'input.message',
                  jsonb_build_object('message', message), p_turn, p_msg);
  PERFORM evr_emit(p_session, 'session.activated',
                   jsonb_build_object('turn_id', evr_id('trn', p_turn),
                                      'input_message_id', evr_id('msg', p_msg)),
                   p_turn, p_msg);
  PERFORM pg_notify('turns', replace(p_turn::text, '-', ''));
  message := message || jsonb_build_object('sequence', seq);
  result := 'ok';
END $$;

-- The closing half of a cancel: the agent's message and session.idled,
-- the turn cancelled, the session idle, its live text gone.
CREATE FUNCTION evr_cancel_finish(p_session uuid, p_turn uuid, p_msg uuid)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE mid uuid := uuidv7(); s sessions;
BEGIN
  PERFORM evr_emit(p_session, 'output.message.completed', jsonb_build_object(
    'message', jsonb_build_object(
      'id', evr_id('msg', mid), 'session_id', evr_id('ses', p_session),
      'turn_id', evr_id('trn', p_turn), 'role', 'agent',
      'content', jsonb_build_array(jsonb_build_object(
        'type', 'text', 'text', 'Work was cancelled by user.')),
      'created_at', evr_ts(now()))), p_turn, p_msg);
  UPDATE turns SET state = 'cancelled', finished_at = now(),
                   lease_owner = NULL, lease_until = NULL
    WHERE id = p_turn;
  UPDATE sessions SET status = 'idle', active_turn_id = NULL, updated_at = now()
    WHERE id = p_session RETURNING * INTO s;
  PERFORM evr_emit(p_session, 'session.idled', jsonb_build_object(
    'turn_id', evr_id('trn', p_turn),
    'usage', jsonb_build_object('input_tokens', s.usage_input,
                                'output_tokens', s.usage_output)),
    p_turn, p_msg);
  DELETE FROM live_text WHERE session_id = p_session;
END $$;

-- POST /sessions/{id}/cancel (ARCHITECTURE 3.6). Returns NULL if the session is
-- not the organization's, else {"status":"cancelled"|"no_op","message"}.
CREATE FUNCTION evr_cancel(p_org uuid, p_session uuid)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE t turns; live boolean; cmid uuid := uuidv7();
BEGIN
  PERFORM 1 FROM sessions WHERE id = p_session AND org_id = p_org FOR UPDATE;
  IF NOT FOUND THEN RETURN NULL; END IF;
  SELECT * INTO t FROM turns WHERE session_id = p_session
    AND state IN ('queued', 'running', 'cancelling') FOR UPDATE;
  IF NOT FOUND THEN
    RETURN json_build_object('status', 'no_op', 'message', 'No turn is running');
  END IF;
  live := t.lease_until IS NOT NULL AND t.lease_until > now();
  IF t.state = 'cancelling' THEN
    IF live THEN
      RETURN json_build_object('status', 'no_op',
                               'message', 'The turn is already being cancelled');
    END IF;
    PERFORM evr_cancel_finish(p_session, t.id, t.input_message_id);
    RETURN json_build_object('status', 'cancelled', 'message', 'Turn cancelled');
  END IF;
  PERFORM evr_emit(p_session, 'turn.cancelled', jsonb_build_object(
    'turn_id', evr_id('trn', t.id), 'reason', 'user_requested'),
    t.id, t.input_message_id);
  PERFORM evr_emit(p_session, 'input.message', jsonb_build_object(
    'message', jsonb_build_object(
      'id', evr_id('msg', cmid), 'session_id', evr_id('ses', p_session),
      'turn_id', evr_id('trn', t.id), 'role', 'user',
      'content', jsonb_build_array(jsonb_build_object(
        'type', 'text', 'text', 'User requested to cancel the work.')),
      'created_at', evr_ts(now()))), t.id, t.input_message_id);
  IF t.state = 'running' AND live THEN
    UPDATE turns SET state = 'cancelling' WHERE id = t.id;
    PERFORM pg_notify('cancels', replace(t.id::text, '-', ''));
  ELSE
    PERFORM evr_cancel_finish(p_session, t.id, t.input_message_id);
  END IF;
  RETURN json_build_object('status', 'cancelled', 'message', 'Turn cancelled');
END $$;
