-- 008: the SSE program's catch-up (fcgi/sse/catchup.c; ARCHITECTURE 1, 4.5) as
-- one function. For each (session, cursor) pair, in the order given: the
-- session's events after the cursor (at most 200, in sequence order), or
-- one row with NULL event columns when there are none; `present` says
-- whether the session still exists (a deleted one closes its streams).
--
-- jit = off: a round of some 600 sessions or more is estimated above
-- jit_above_cost, and compiling it took 21 ms of a 65 ms round (measured,
-- 1,000 sessions) for a query that runs in about 12 ms without. The
-- setting holds for the query inside whatever the database's jit setting
-- is, and through PgBouncer too (nothing is set on the connection).
-- PL/pgSQL rather than SQL: it keeps the query's plan for the backend's
-- life; a SQL function with a SET clause is planned on every call
-- (measured for one session: 0.33 ms a call, against 0.40 ms for the
-- bare query and 0.80 ms for the SQL function).
CREATE FUNCTION evr_catchup(p_sessions uuid[], p_after bigint[])
RETURNS TABLE (r_session uuid, r_seq bigint, r_type text, r_id uuid,
               r_data text, r_present boolean, r_ts_us bigint,
               r_turn uuid, r_msg uuid)
LANGUAGE plpgsql STABLE SET jit = off AS $$
BEGIN
  RETURN QUERY
  SELECT c.session, x.seq, x.type, x.id, x.data,
         EXISTS (SELECT 1 FROM sessions s WHERE s.id = c.session),
         x.ts_us, x.turn, x.msg
  FROM unnest(p_sessions, p_after) WITH ORDINALITY AS c(session, after, k)
  LEFT JOIN LATERAL (
    SELECT e.seq, e.type, e.id, e.data::text AS data,
           (extract(epoch FROM e.ts) * 1000000)::bigint AS ts_us,
           e.turn_id AS turn, e.input_message_id AS msg
    FROM events e
    WHERE e.session_id = c.session AND e.seq > c.after
    ORDER BY e.seq LIMIT 200) x ON true
  ORDER BY c.k, x.seq;
END $$;
