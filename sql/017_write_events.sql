-- 017: evr_write_events (004) and evr_claim (011) with plans that stay
-- small as the tables grow.
--
-- evr_write_events: with plans that stay small as the tables
-- grow. The cached generic plan of 004's statement joined the batch to
-- sessions, turns and live_text by hashing them, each read whole (a
-- sequential scan of every session and turn, with the pruning of the
-- pages the batches themselves keep updating), for every flush. Here each
-- of those tables is reached only through its primary key, by the batch's
-- distinct ids (= ANY of an array: index scans whatever the estimate), and
-- the rest is joined in memory. Same arguments, results, locks (sessions,
-- then turns, each in id order) and fences as 004.
CREATE OR REPLACE FUNCTION evr_write_events(p_turn uuid[], p_attempt integer[],
    p_session uuid[], p_type text[], p_data jsonb[], p_msg uuid[],
    p_uin bigint[], p_uout bigint[], p_kind text[], p_final text[])
RETURNS TABLE (idx integer, seq bigint, fenced boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_sess uuid[] := ARRAY(SELECT DISTINCT x FROM unnest(p_session) x ORDER BY x);
  v_turn uuid[] := ARRAY(SELECT DISTINCT x FROM unnest(p_turn) x ORDER BY x);
  v_ended uuid[] := ARRAY(SELECT DISTINCT s FROM unnest(p_session, p_final) u(s, f)
                          WHERE f IS NOT NULL);
BEGIN
  -- sessions in id order, then the turns' fences
  PERFORM 1 FROM sessions s WHERE s.id = ANY(v_sess) ORDER BY s.id FOR UPDATE;
  PERFORM 1 FROM turns t WHERE t.id = ANY(v_turn) ORDER BY t.id FOR SHARE;
  -- then everything else in one statement, whatever the batch's size
  RETURN QUERY
  WITH tt AS MATERIALIZED (
    SELECT t.id, t.attempt, t.state FROM turns t
    WHERE t.id = ANY(v_turn) AND t.state IN ('running', 'cancelling')),
  b AS (
    SELECT u.* FROM unnest(p_turn, p_attempt, p_session, p_type, p_data,
                           p_msg, p_uin, p_uout, p_kind, p_final)
      WITH ORDINALITY AS u(turn, att, sess, typ, dat, msg, ui, uo, kind, fin, i)),
  chk AS (
    -- a turn no longer running under (id, attempt) is fenced; a
    -- cancelling turn takes only the two events that close the cancel
    SELECT b.*, tt.id IS NULL AS fen,
           tt.id IS NOT NULL AND (tt.state = 'running'
             OR (tt.state = 'cancelling' AND b.kind = 'cancel')) AS ok
    FROM b LEFT JOIN tt ON tt.id = b.turn AND tt.attempt = b.att),
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
    FROM cnt WHERE s.id = ANY(v_sess) AND s.id = cnt.sess
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
    FROM num WHERE num.fin IS NOT NULL AND t.id = ANY(v_turn) AND t.id = num.turn
    RETURNING t.id),
  gone AS (
    -- the live text of sessions whose turn ended in this batch (a fenced
    -- turn's final event is not in num: its session keeps its rows)
    DELETE FROM live_text l
    WHERE l.session_id = ANY(v_ended)
      AND l.session_id IN (SELECT num.sess FROM num WHERE num.fin IS NOT NULL)
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

-- evr_claim as in 011, with the candidates read by two plain index scans
-- of the partial indexes (queued; leased by expiry) instead of a bitmap OR
-- of both. Every claimed, renewed or finished turn leaves a dead entry in
-- those indexes until a vacuum; a bitmap scan visits the heap page of
-- each dead entry at every claim (so a claim's cost grew with every turn
-- run since the last vacuum: 2,000 entries and 100 pages read to find
-- nothing, measured), while an index scan marks them dead as it passes
-- and later claims skip them.
CREATE OR REPLACE FUNCTION evr_claim(p_owner uuid, p_max integer, p_lease_s double precision)
RETURNS TABLE (id uuid, session_id uuid, org_id uuid, state text, attempt integer,
               age_ms bigint)
LANGUAGE plpgsql SET enable_bitmapscan = off AS $$
BEGIN
  RETURN QUERY
  WITH open AS (
    SELECT t.id, t.org_id, t.created_at FROM turns t WHERE t.state = 'queued'
    UNION ALL
    SELECT t.id, t.org_id, t.created_at FROM turns t
    WHERE t.state IN ('running', 'cancelling') AND t.lease_until < now()),
  cand AS (
    SELECT o.id, o.created_at,
           row_number() OVER (PARTITION BY o.org_id ORDER BY o.created_at) AS rn
    FROM open o
    ORDER BY rn, o.created_at LIMIT p_max * 4),
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
