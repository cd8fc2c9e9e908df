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

-- Write a batch of events for several turns in one transaction (ARCHITECTURE
-- 4.2). Arrays are parallel, one element per event, in order. p_kind:
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
BEGIN
  -- sessions in id order, then the turns' fences
  PERFORM 1 FROM sessions s WHERE s.id = ANY(p_session) ORDER BY s.id FOR UPDATE;
  PERFORM 1 FROM turns t WHERE t.id = ANY(p_turn) ORDER BY t.id FOR SHARE;
  -- then everything else in one statement, whatever the batch's size
  RETURN QUERY
  WITH b AS (
    SELECT u.* FROM unnest(p_turn, p_attempt, p_session, p_type, p_data,
                           p_msg, p_uin, p_uout, p_kind, p_final)
      WITH ORDINALITY AS u(turn, att, sess, typ, dat, msg, ui, uo, kind, fin, i)),
  chk AS (
    -- a turn no longer running under (id, attempt) is fenced; a
    -- cancelling turn takes only the two events that close the cancel
    SELECT b.*, t.id IS NULL AS fen,
           t.id IS NOT NULL AND (t.state = 'running'
             OR (t.state = 'cancelling' AND b.kind = 'cancel')) AS ok
    FROM b LEFT JOIN turns t ON t.id = b.turn AND t.attempt = b.att
      AND t.state IN ('running', 'cancelling')),
  num AS (
    SELECT chk.*, row_number() OVER (PARTITION BY chk.sess ORDER BY chk.i) AS k
    FROM chk WHERE chk.ok),
  cnt AS (
    SELECT num.sess, count(*) AS n, sum(coalesce(num.ui, 0)) AS ui,
           sum(coalesce(num.uo, 0)) AS uo, bool_or(num.fin IS NOT NULL) AS ends
    FROM num GROUP BY num.sess),
  up AS (
    UPDATE sessions s SET last_seq = s.last_seq + cnt.n,
        usage_input = s.usage_input + cnt.ui,
        usage_output = s.usage_output + cnt.uo,
        status = CASE WHEN cnt.ends THEN 'idle' ELSE s.status END,
        active_turn_id = CASE WHEN cnt.ends THEN NULL ELSE s.active_turn_id END,
        updated_at = CASE WHEN cnt.ends THEN now() ELSE s.updated_at END
    FROM cnt WHERE s.id = cnt.sess
    RETURNING s.id, s.last_seq - cnt.n AS base, s.usage_input, s.usage_output),
  ins AS (
    INSERT INTO events (session_id, seq, type, turn_id, input_message_id, data)
    SELECT num.sess, up.base + num.k, num.typ, num.turn, num.msg,
           CASE WHEN num.typ = 'session.idled' THEN
             coalesce(num.dat, '{}') || jsonb_build_object('usage',
               jsonb_build_object('input_tokens', up.usage_input,
                                  'output_tokens', up.usage_output))
           ELSE coalesce(num.dat, '{}') END
    FROM num JOIN up ON up.id = num.sess
    RETURNING events.session_id, events.seq),
  fin AS (
    UPDATE turns t SET state = num.fin, finished_at = now(),
                       lease_owner = NULL, lease_until = NULL
    FROM num WHERE num.fin IS NOT NULL AND t.id = num.turn
    RETURNING t.id),
  gone AS (
    DELETE FROM live_text l USING num
    WHERE num.fin IS NOT NULL AND l.session_id = num.sess
    RETURNING 1),
  wake AS (
    -- one wake-up per session, with its last sequence
    SELECT pg_notify('ev', replace(x.sid::text, '-', '') || ':' || x.m)
    FROM (SELECT ins.session_id AS sid, max(ins.seq) AS m FROM ins
          GROUP BY ins.session_id) x)
  SELECT chk.i::integer, up.base + num.k, chk.fen
  FROM chk LEFT JOIN num ON num.i = chk.i LEFT JOIN up ON up.id = num.sess
  WHERE (SELECT count(*) FROM wake) >= 0
  ORDER BY chk.i;
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
