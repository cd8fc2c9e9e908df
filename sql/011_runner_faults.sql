-- 011: the runner's faults (issue 13): a turn's wall-time limit across
-- takeovers, deltas fenced by the turn's lease, and turns no runner is
-- alive to run.

-- evr_claim as in 004, and how long ago each turn was first started
-- (0 for a first claim), so the turn's wall-time limit survives takeovers.
DROP FUNCTION evr_claim(uuid, integer, double precision);
CREATE FUNCTION evr_claim(p_owner uuid, p_max integer, p_lease_s double precision)
RETURNS TABLE (id uuid, session_id uuid, org_id uuid, state text, attempt integer,
               age_ms bigint)
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
  RETURNING t.id, t.session_id, t.org_id, t.state, t.attempt,
            (extract(epoch FROM now() - t.started_at) * 1000)::bigint;
END $$;

-- Deltas as in 004, written only while the turn runs under the writer's
-- attempt: a runner that lost its lease (taken over, cancelled, finished)
-- reaches no client. One primary-key probe per chunk.
DROP FUNCTION evr_write_deltas(uuid[], bigint[], integer[], text[]);
CREATE FUNCTION evr_write_deltas(p_turn uuid[], p_attempt integer[],
    p_session uuid[], p_m bigint[], p_off integer[], p_text text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE i integer;
BEGIN
  FOR i IN 1..coalesce(array_length(p_session, 1), 0) LOOP
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM turns WHERE id = p_turn[i]
                              AND attempt = p_attempt[i] AND state = 'running');
    INSERT INTO live_text (session_id, m, off, text)
      VALUES (p_session[i], p_m[i], p_off[i], p_text[i])
      ON CONFLICT DO NOTHING;
    PERFORM pg_notify('evd', json_build_object(
      's', replace(p_session[i]::text, '-', ''), 'm', p_m[i],
      'off', p_off[i], 'd', p_text[i])::text);
  END LOOP;
END $$;

-- Turns that no runner is alive to run (no heartbeat in p_alive_s): queued
-- for more than p_wait_s, or left by a runner whose lease ended that long
-- ago, fail with error_code no_runner and their sessions go idle. The API
-- calls it (GET /health, GET /sessions/{id}): while no runner is alive,
-- nothing else would. Returns how many turns it failed.
CREATE FUNCTION evr_fail_unclaimed(p_wait_s double precision,
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
             AND tt.created_at < now() - p_wait_s * interval '1 second')
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
