-- 004: the runner's side of turns: claiming with leases, the effective
-- configuration of a turn, batched fenced event writes, delta writes.
-- The functions the runner calls per turn are PL/pgSQL so that their
-- plans are cached per connection (SQL functions are planned per call).

-- Leased turns by expiry, for takeovers (queued ones: turns_queued).
CREATE INDEX turns_leased ON turns (lease_until)
  WHERE state IN ('running', 'cancelling');

-- Claim up to p_max turns for runner p_owner: queued ones, and running or
-- cancelling ones whose lease expired (a lost runner's). Oldest first,
-- round-robin across organizations. Each claim counts an attempt.
CREATE FUNCTION evr_claim(p_owner uuid, p_max integer, p_lease_s double precision)
RETURNS TABLE (id uuid, session_id uuid, org_id uuid, state text, attempt integer)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
  WITH cand AS (
    SELECT t.id, t.created_at,
           row_number() OVER (PARTITION BY t.org_id ORDER BY t.created_at) AS rn
    FROM turns t
    WHERE t.state = 'queued'
       OR (t.state IN ('running', 'cancelling') AND t.lease_until < now())
    ORDER BY rn, t.created_at LIMIT p_max * 4),
  c AS (
    SELECT t.id FROM turns t JOIN cand ON cand.id = t.id
    WHERE t.state = 'queued'
       OR (t.state IN ('running', 'cancelling') AND t.lease_until < now())
    ORDER BY cand.rn, cand.created_at
    FOR UPDATE OF t SKIP LOCKED LIMIT p_max)
  UPDATE turns t SET
    state = CASE WHEN t.state = 'queued' THEN 'running' ELSE t.state END,
    attempt = t.attempt + 1, lease_owner = p_owner,
    lease_until = now() + p_lease_s * interval '1 second',
    started_at = coalesce(t.started_at, now())
  FROM c WHERE t.id = c.id
  RETURNING t.id, t.session_id, t.org_id, t.state, t.attempt;
END $$;

-- Renew the leases a runner holds; returns the turns it no longer holds
-- among those it thinks it holds (fenced: taken over or finished).
CREATE FUNCTION evr_renew(p_owner uuid, p_turns uuid[], p_lease_s double precision)
RETURNS SETOF uuid LANGUAGE sql AS $$
  WITH r AS (
    UPDATE turns SET lease_until = now() + p_lease_s * interval '1 second'
    WHERE id = ANY(p_turns) AND lease_owner = p_owner
      AND state IN ('running', 'cancelling')
    RETURNING id)
  SELECT u FROM unnest(p_turns) u WHERE u NOT IN (SELECT id FROM r)
$$;

-- Give turns back (SIGTERM drain): the lease ends now and the attempt is
-- not counted, so another runner resumes at once.
CREATE FUNCTION evr_release(p_owner uuid, p_turns uuid[]) RETURNS void
LANGUAGE sql AS $$
  UPDATE turns SET lease_until = now() - interval '1 millisecond',
                   attempt = greatest(attempt - 1, 0), lease_owner = NULL
  WHERE id = ANY(p_turns) AND lease_owner = p_owner
$$;

-- Everything the runner needs to run a turn, as one JSON document: the
-- layers of configuration (harness, agent, session, message controls),
-- the resolved model and its provider, the session's conversation events
-- after sequence p_after (a runner caches older ones: events never change)
-- and this turn's own progress events (for a takeover).
CREATE FUNCTION evr_turn_config(p_turn uuid, p_after bigint) RETURNS json
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
    'session', json_build_object('id', evr_id('ses', s.id), 'title', s.title,
       'system_prompt', s.system_prompt, 'capabilities', s.capabilities,
       'max_iterations', s.max_iterations, 'harness_id', evr_id('hns', s.harness_id),
       'agent_id', evr_id('agt', s.agent_id)),
    'agent', (SELECT json_build_object('system_prompt', a.system_prompt,
       'capabilities', a.capabilities, 'max_iterations', a.max_iterations) FROM a),
    'harness', (SELECT json_build_object('system_prompt', h.system_prompt,
       'capabilities', h.capabilities) FROM h),
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
                  ('turn.started', 'reason.started', 'tool.started')))))
  FROM t, s);
END $$;

-- Write a batch of events for several turns in one transaction (DESIGN
-- 4.5). Arrays are parallel, one element per event, in order. p_kind:
-- NULL for an ordinary event, 'cancel' for the two events that close a
-- cancelled turn (the only ones a 'cancelling' turn accepts). p_final:
-- the state the turn ends in with this event (its session goes idle).
-- Fences first: a turn not running under (id, attempt) writes nothing.
-- Returns the sequence given to each event (NULL if not written) and
-- whether its turn was fenced.
CREATE FUNCTION evr_write_events(p_turn uuid[], p_attempt integer[],
    p_session uuid[], p_type text[], p_data jsonb[], p_msg uuid[],
    p_uin bigint[], p_uout bigint[], p_kind text[], p_final text[])
RETURNS TABLE (idx integer, seq bigint, fenced boolean)
LANGUAGE plpgsql AS $$
DECLARE
  i integer; n integer := coalesce(array_length(p_turn, 1), 0);
  st text; ok boolean; sq bigint; uin bigint; uout bigint; d jsonb;
  fenced_turns uuid[] := '{}'; state_of jsonb := '{}';
  last_seq jsonb := '{}'; k text;
BEGIN
  PERFORM 1 FROM sessions WHERE id = ANY(p_session) ORDER BY id FOR UPDATE;
  FOR i IN 1..n LOOP
    k := p_turn[i]::text;
    IF NOT state_of ? k AND NOT p_turn[i] = ANY(fenced_turns) THEN
      SELECT t.state INTO st FROM turns t
        WHERE t.id = p_turn[i] AND t.attempt = p_attempt[i]
          AND t.state IN ('running', 'cancelling') FOR SHARE;
      IF NOT FOUND THEN
        fenced_turns := fenced_turns || p_turn[i];
      ELSE
        state_of := state_of || jsonb_build_object(k, st);
      END IF;
    END IF;
    IF p_turn[i] = ANY(fenced_turns) THEN
      idx := i; seq := NULL; fenced := true; RETURN NEXT; CONTINUE;
    END IF;
    st := state_of ->> k;
    ok := (st = 'running') OR (st = 'cancelling' AND p_kind[i] = 'cancel');
    IF NOT ok THEN
      idx := i; seq := NULL; fenced := false; RETURN NEXT; CONTINUE;
    END IF;
    UPDATE sessions s SET last_seq = s.last_seq + 1,
        usage_input = s.usage_input + coalesce(p_uin[i], 0),
        usage_output = s.usage_output + coalesce(p_uout[i], 0)
      WHERE s.id = p_session[i]
      RETURNING s.last_seq, s.usage_input, s.usage_output INTO sq, uin, uout;
    IF sq IS NULL THEN
      idx := i; seq := NULL; fenced := true; RETURN NEXT; CONTINUE;
    END IF;
    d := coalesce(p_data[i], '{}');
    IF p_type[i] = 'session.idled' THEN
      d := d || jsonb_build_object('usage', jsonb_build_object(
             'input_tokens', uin, 'output_tokens', uout));
    END IF;
    INSERT INTO events (session_id, seq, type, turn_id, input_message_id, data)
      VALUES (p_session[i], sq, p_type[i], p_turn[i], p_msg[i], d);
    last_seq := last_seq || jsonb_build_object(p_session[i]::text, sq);
    IF p_final[i] IS NOT NULL THEN
      UPDATE turns SET state = p_final[i], finished_at = now(),
                       lease_owner = NULL, lease_until = NULL
        WHERE id = p_turn[i];
      UPDATE sessions SET status = 'idle', active_turn_id = NULL, updated_at = now()
        WHERE id = p_session[i];
      DELETE FROM live_text WHERE session_id = p_session[i];
      state_of := state_of || jsonb_build_object(k, p_final[i]);
    END IF;
    idx := i; seq := sq; fenced := false; RETURN NEXT;
  END LOOP;
  FOR k IN SELECT jsonb_object_keys(last_seq) LOOP
    PERFORM pg_notify('ev', replace(k, '-', '') || ':' || (last_seq ->> k));
  END LOOP;
END $$;

-- Deltas: live text chunks and their ephemeral notifications (`evd`,
-- {s, m, off, d}). The caller runs this with synchronous_commit off.
CREATE FUNCTION evr_write_deltas(p_session uuid[], p_m bigint[],
    p_off integer[], p_text text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE i integer;
BEGIN
  FOR i IN 1..coalesce(array_length(p_session, 1), 0) LOOP
    -- unfenced, so a late chunk for a deleted or idle session is dropped
    -- here rather than left behind
    INSERT INTO live_text (session_id, m, off, text)
      SELECT p_session[i], p_m[i], p_off[i], p_text[i]
      WHERE EXISTS (SELECT 1 FROM sessions
                    WHERE id = p_session[i] AND status = 'active')
      ON CONFLICT DO NOTHING;
    PERFORM pg_notify('evd', json_build_object(
      's', replace(p_session[i]::text, '-', ''), 'm', p_m[i],
      'off', p_off[i], 'd', p_text[i])::text);
  END LOOP;
END $$;
