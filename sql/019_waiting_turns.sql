-- 019: tools from outside (issue 16): a turn that waits, durably, for
-- something from outside (ARCHITECTURE 3.9): results of client-side tools
-- and approvals of tool calls.
--
-- Agents, harnesses and sessions get `tools` (the upstream document's
-- ToolDefinition list: client-side tools and per-tool policies) and
-- `approval` ('auto' | 'writes' | 'all'; NULL inherits).
ALTER TABLE harnesses ADD COLUMN tools jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN approval text CHECK (approval IN ('auto', 'writes', 'all'));
ALTER TABLE agents ADD COLUMN tools jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN approval text CHECK (approval IN ('auto', 'writes', 'all'));
ALTER TABLE sessions ADD COLUMN tools jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN approval text CHECK (approval IN ('auto', 'writes', 'all'));

-- A waiting session (the upstream enum's wire value) and a waiting turn:
-- no lease, no runner. wait_calls: every call the turn asked about,
-- {call id: {name, kind: client|approval, answered}}, across its waits
-- (so a second answer to one is told apart from an unknown id);
-- wait_until: when the wait fails (tool_wait_max_s); wait_started and
-- waited_ms: time spent waiting, which the wall-time limit leaves out;
-- attempt_base: the attempt at the last resume, so a resume does not
-- spend the takeover budget (TURN_MAX_TRIES counts attempt - base).
ALTER TABLE sessions DROP CONSTRAINT sessions_status_check,
  ADD CONSTRAINT sessions_status_check
    CHECK (status IN ('idle', 'active', 'waitingfortoolresults'));
ALTER TABLE turns DROP CONSTRAINT turns_state_check,
  ADD CONSTRAINT turns_state_check
    CHECK (state IN ('queued', 'running', 'cancelling', 'waiting',
                     'completed', 'failed', 'cancelled')),
  ADD COLUMN wait_calls jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN wait_until timestamptz,
  ADD COLUMN wait_started timestamptz,
  ADD COLUMN waited_ms bigint NOT NULL DEFAULT 0,
  ADD COLUMN attempt_base integer NOT NULL DEFAULT 0;
DROP INDEX turns_one_open;
CREATE UNIQUE INDEX turns_one_open ON turns (session_id)
  WHERE state IN ('queued', 'running', 'cancelling', 'waiting');
CREATE INDEX turns_waiting ON turns (wait_until) WHERE state = 'waiting';

-- The JSON shapes gain tools and approval.
CREATE OR REPLACE FUNCTION api_agent(a agents) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('agt', a.id), 'organization_id', evr_id('org', a.org_id),
    'name', a.name, 'display_name', a.display_name,
    'description', a.description, 'system_prompt', a.system_prompt,
    'default_model_id', evr_id('mod', a.default_model_id),
    'harness_id', evr_id('hns', coalesce(a.harness_id,
      (SELECT h.id FROM harnesses h WHERE h.org_id = a.org_id AND h.name = 'base'
         AND h.is_built_in AND h.status = 'active'))),
    'capabilities', a.capabilities, 'tools', a.tools, 'approval', a.approval,
    'tags', to_json(a.tags),
    'max_iterations', a.max_iterations, 'status', a.status,
    'created_at', evr_ts(a.created_at), 'updated_at', evr_ts(a.updated_at),
    'archived_at', evr_ts(a.archived_at),
    'session_count', (SELECT count(*) FROM sessions s
                      WHERE s.org_id = a.org_id AND s.agent_id = a.id),
    'app_count', 0,
    'self_url', '/api/v1/agents/' || evr_id('agt', a.id),
    'view_url', '/', 'ui_link', '/')
$$;

CREATE OR REPLACE FUNCTION api_harness(h harnesses) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('hns', h.id), 'organization_id', evr_id('org', h.org_id),
    'name', h.name, 'display_name', h.display_name,
    'description', h.description, 'system_prompt', h.system_prompt,
    'default_model_id', evr_id('mod', h.default_model_id),
    'capabilities', h.capabilities, 'tools', h.tools, 'approval', h.approval,
    'tags', to_json(h.tags),
    'is_built_in', h.is_built_in, 'status', h.status,
    'created_at', evr_ts(h.created_at), 'updated_at', evr_ts(h.updated_at),
    'session_count', (SELECT count(*) FROM sessions s
                      WHERE s.org_id = h.org_id AND s.harness_id = h.id),
    'app_count', 0,
    'self_url', '/api/v1/harnesses/' || evr_id('hns', h.id),
    'view_url', '/', 'ui_link', '/')
$$;

-- fcgi/api/session_json.c writes the same bytes for GET /sessions/{id}.
CREATE OR REPLACE FUNCTION api_session(s sessions) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('ses', s.id), 'organization_id', evr_id('org', s.org_id),
    'agent_id', evr_id('agt', s.agent_id),
    'harness_id', evr_id('hns', s.harness_id),
    'model_id', evr_id('mod', s.model_id), 'title', s.title,
    'tags', to_json(s.tags), 'capabilities', s.capabilities,
    'tools', s.tools, 'approval', s.approval,
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

-- evr_turn_config as in 004, with each layer's tools and approval, the
-- turn's attempt_base and waited_ms, and its approval answers among its
-- own events.
CREATE OR REPLACE FUNCTION evr_turn_config(p_turn uuid, p_after bigint) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
  WITH t AS (SELECT * FROM turns WHERE id = p_turn),
  s AS (SELECT ss.* FROM sessions ss JOIN t ON ss.id = t.session_id),
  a AS (SELECT ag.* FROM agents ag JOIN s ON ag.id = s.agent_id),
  h AS (SELECT hh.* FROM harnesses hh JOIN s ON hh.id = s.harness_id),
  o AS (SELECT oo.* FROM organizations oo JOIN s ON oo.id = s.org_id),
  mid AS (SELECT coalesce(
      (SELECT (regexp_replace(t.controls ->> 'model_id', '^mod_', ''))::uuid FROM t
        WHERE t.controls ? 'model_id'),
      (SELECT model_id FROM s), (SELECT default_model_id FROM a),
      (SELECT default_model_id FROM h), (SELECT default_model_id FROM o)) AS id),
  m AS (SELECT mm.*, p.provider_type, p.base_url, p.api_key_enc,
               p.status AS provider_status
        FROM llm_models mm JOIN llm_providers p ON p.id = mm.provider_id
        JOIN mid ON mm.id = mid.id
        WHERE mm.org_id = (SELECT org_id FROM s))
  SELECT json_build_object(
    'turn_id', evr_id('trn', t.id), 'controls', t.controls,
    'input_message_id', evr_id('msg', t.input_message_id),
    'attempt_base', t.attempt_base, 'waited_ms', t.waited_ms,
    'session', json_build_object('id', evr_id('ses', s.id), 'title', s.title,
       'system_prompt', s.system_prompt, 'capabilities', s.capabilities,
       'tools', s.tools, 'approval', s.approval,
       'max_iterations', s.max_iterations, 'harness_id', evr_id('hns', s.harness_id),
       'agent_id', evr_id('agt', s.agent_id)),
    'agent', (SELECT json_build_object('system_prompt', a.system_prompt,
       'capabilities', a.capabilities, 'tools', a.tools, 'approval', a.approval,
       'max_iterations', a.max_iterations) FROM a),
    'harness', (SELECT json_build_object('system_prompt', h.system_prompt,
       'capabilities', h.capabilities, 'tools', h.tools,
       'approval', h.approval) FROM h),
    'model', (SELECT json_build_object('id', evr_id('mod', m.id),
       'model_id', m.model_id, 'capabilities', m.capabilities,
       'context_tokens', m.context_tokens, 'enabled', m.enabled,
       'provider_id', evr_id('prv', m.provider_id),
       'provider_type', m.provider_type, 'base_url', m.base_url,
       'api_key_enc', m.api_key_enc, 'provider_status', m.provider_status) FROM m),
    'events', (SELECT coalesce(json_agg(json_build_object(
       'seq', e.seq, 'type', e.type, 'turn_id', evr_id('trn', e.turn_id),
       'data', e.data) ORDER BY e.seq), '[]')
       FROM events e WHERE e.session_id = s.id AND e.seq > p_after
         AND (e.type IN ('input.message', 'output.message.completed',
                         'tool.completed')
              OR (e.turn_id = t.id AND e.type IN
                  ('turn.started', 'reason.started', 'tool.started',
                   'tool.approval_resolved')))))
  FROM t, s);
END $$;

-- The runner's turn starts to wait (ARCHITECTURE 3.9), once its earlier
-- events have landed. Fenced like an event write: the session's row, then
-- the turn under (id, attempt) still running. p_calls: [{id, name,
-- arguments, kind: client|approval, display_name?}]. Writes
-- tool.call_requested (the client's calls) and tool.approval_requested,
-- records the calls, ends the lease and sets the states and the deadline.
-- A turn being cancelled is closed as a cancel instead. Returns 'waiting',
-- 'cancelled' or 'fenced'.
CREATE FUNCTION evr_turn_wait(p_turn uuid, p_attempt integer, p_calls jsonb,
                              p_wait_s double precision)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE t turns; tid text := evr_id('trn', p_turn); cl jsonb; ap jsonb;
BEGIN
  PERFORM 1 FROM sessions WHERE id = (SELECT session_id FROM turns WHERE id = p_turn)
    FOR UPDATE;
  SELECT * INTO t FROM turns WHERE id = p_turn AND attempt = p_attempt
    AND state IN ('running', 'cancelling') FOR UPDATE;
  IF NOT FOUND THEN RETURN 'fenced'; END IF;
  IF t.state = 'cancelling' THEN
    PERFORM evr_cancel_finish(t.session_id, t.id, t.input_message_id);
    RETURN 'cancelled';
  END IF;
  SELECT jsonb_agg(jsonb_build_object('id', c->>'id', 'name', c->>'name',
                                      'arguments', c->'arguments')),
         jsonb_agg(jsonb_strip_nulls(jsonb_build_object('id', c->>'id',
                   'name', c->>'name', 'display_name', c->>'display_name')))
    INTO cl, ap FROM jsonb_array_elements(p_calls) c WHERE c->>'kind' = 'client';
  IF cl IS NOT NULL THEN
    PERFORM evr_emit(t.session_id, 'tool.call_requested', jsonb_build_object(
      'turn_id', tid, 'tool_calls', cl, 'tool_summaries', ap),
      t.id, t.input_message_id);
  END IF;
  SELECT jsonb_agg(jsonb_build_object('id', c->>'id', 'name', c->>'name',
                                      'arguments', c->'arguments'))
    INTO cl FROM jsonb_array_elements(p_calls) c WHERE c->>'kind' = 'approval';
  IF cl IS NOT NULL THEN
    PERFORM evr_emit(t.session_id, 'tool.approval_requested', jsonb_build_object(
      'turn_id', tid, 'tool_calls', cl), t.id, t.input_message_id);
  END IF;
  UPDATE turns SET state = 'waiting', lease_owner = NULL, lease_until = NULL,
    wait_calls = wait_calls || coalesce((SELECT jsonb_object_agg(c->>'id',
        jsonb_build_object('name', c->>'name', 'kind', c->>'kind',
                           'answered', false))
      FROM jsonb_array_elements(p_calls) c), '{}'),
    wait_started = now(), wait_until = now() + p_wait_s * interval '1 second'
  WHERE id = p_turn;
  UPDATE sessions SET status = 'waitingfortoolresults', updated_at = now()
    WHERE id = t.session_id;
  DELETE FROM live_text WHERE session_id = t.session_id;
  RETURN 'waiting';
END $$;

-- POST /sessions/{id}/tool-results (p_kind 'client': [{tool_call_id,
-- text | error, size_bytes?, truncated?}], the API's normal form) and /tool-approvals (p_kind 'approval':
-- [{tool_call_id, approved, reason?}]), in the caller's transaction
-- (ARCHITECTURE 3.9). Validates every answer first (nothing is written if
-- one is wrong), then writes tool.completed (source client) for a
-- result, tool.approval_resolved (and, denied, the call's tool.completed
-- error) for an approval. When no call is left unanswered the turn is
-- queued again (turn.resumed, NOTIFY turns) and the session is active.
-- Returns {code: ok|not_found|not_waiting|unknown_tool_call|
-- already_answered|wrong_kind, id?, accepted?, status?}.
CREATE FUNCTION evr_tool_answer(p_org uuid, p_session uuid, p_kind text,
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
  UPDATE turns SET wait_calls = calls, state = 'queued',
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

-- Waits past their deadline fail: turn.failed {error_code:
-- tool_wait_timeout} and session.idled, as evr_fail_unclaimed closes a
-- turn. The runners call it on their poll. Returns how many it failed.
CREATE FUNCTION evr_expire_waits() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE t turns; s sessions; mid uuid; n integer := 0;
        why text := 'No answer came for the tool calls it waited for; it was given up.';
BEGIN
  FOR t IN SELECT * FROM turns tt WHERE tt.state = 'waiting'
             AND tt.wait_until < now() LIMIT 100 LOOP
    -- the session first, as every writer of a turn does
    PERFORM 1 FROM sessions WHERE id = t.session_id FOR UPDATE;
    PERFORM 1 FROM turns WHERE id = t.id AND state = 'waiting'
      AND wait_until < now() FOR UPDATE;
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

-- evr_cancel as in 002, for a waiting turn too: it has no lease, so the
-- API closes it at once (ARCHITECTURE 3.6, 3.9).
CREATE OR REPLACE FUNCTION evr_cancel(p_org uuid, p_session uuid)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE t turns; live boolean; cmid uuid := uuidv7();
BEGIN
  PERFORM 1 FROM sessions WHERE id = p_session AND org_id = p_org FOR UPDATE;
  IF NOT FOUND THEN RETURN NULL; END IF;
  SELECT * INTO t FROM turns WHERE session_id = p_session
    AND state IN ('queued', 'running', 'cancelling', 'waiting') FOR UPDATE;
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

-- evr_session_delete as in 001, a waiting turn included.
CREATE OR REPLACE FUNCTION evr_session_delete(p_session uuid, p_org uuid)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
  PERFORM 1 FROM sessions WHERE id = p_session AND org_id = p_org FOR UPDATE;
  IF NOT FOUND THEN RETURN false; END IF;
  FOR t IN UPDATE turns SET state = 'cancelled', finished_at = now()
           WHERE session_id = p_session
             AND state IN ('queued', 'running', 'cancelling', 'waiting')
           RETURNING id LOOP
    PERFORM pg_notify('cancels', replace(t.id::text, '-', ''));
  END LOOP;
  DELETE FROM sessions WHERE id = p_session;
  PERFORM pg_notify('ev', replace(p_session::text, '-', '') || ':0');
  RETURN true;
END $$;
