-- 023: plans that last. evr_turn_mcp (020) in PL/pgSQL. As a non-inlinable SQL function
-- its query was parsed and planned at every call (PostgreSQL keeps no
-- plan of an SQL function's body across calls): 1.2 ms per claimed turn,
-- the whole of the turn overhead's growth (a turn's claim to its
-- turn.started, 3.5 -> 4.6 ms in the turns benchmark). PL/pgSQL keeps the
-- plan for the connection's life. Same result.
CREATE OR REPLACE FUNCTION evr_turn_mcp(p_turn uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
  WITH s AS (SELECT ss.* FROM sessions ss JOIN turns t ON ss.id = t.session_id
             WHERE t.id = p_turn),
  layers AS (
    SELECT 1 AS k, h.capabilities AS caps, h.mcp_servers AS inl
      FROM harnesses h JOIN s ON h.id = s.harness_id
    UNION ALL
    SELECT 2, a.capabilities, a.mcp_servers
      FROM agents a JOIN s ON a.id = s.agent_id
    UNION ALL
    SELECT 3, s.capabilities, s.mcp_servers FROM s),
  refs AS (
    SELECT DISTINCT (regexp_replace(c ->> 'ref', '^mcp:mcp_', ''))::uuid AS id
    FROM layers, jsonb_array_elements(CASE jsonb_typeof(layers.caps)
                   WHEN 'array' THEN layers.caps ELSE '[]' END) AS c
    WHERE c ->> 'ref' ~ '^mcp:mcp_[0-9a-f]{32}$'),
  registered AS (
    SELECT m.name, json_build_object('name', m.name, 'url', m.url,
             'headers_enc', m.headers_enc, 'api_key_enc', m.api_key_enc,
             'mcp_id', evr_id('mcp', m.id)) AS j, m.created_at AS o
    FROM mcp_servers m JOIN refs ON m.id = refs.id
    WHERE m.org_id = (SELECT org_id FROM s) AND m.status = 'active'),
  inline AS (
    SELECT DISTINCT ON (e.key) e.key AS name,
           json_build_object('name', e.key, 'url', e.value ->> 'url',
             'headers', coalesce(e.value -> 'headers', '{}')) AS j
    FROM layers, jsonb_each(CASE jsonb_typeof(layers.inl)
                   WHEN 'object' THEN layers.inl ELSE '{}' END) AS e
    WHERE jsonb_typeof(e.value) = 'object'
    ORDER BY e.key, layers.k DESC)
  SELECT json_agg(j ORDER BY src, o, name) FROM (
    SELECT name, j, 1 AS src, o FROM registered
    UNION ALL
    SELECT name, j, 2, NULL FROM inline
      WHERE name NOT IN (SELECT name FROM registered)) x);
END $$;

-- api_agent, api_harness and api_session (020's wrappers) as single
-- expressions, which PostgreSQL inlines into the calling query: with
-- the base function in a FROM clause they could not be inlined, and each
-- row paid an SQL function's executor start (a list of 50 sessions: 1.3
-- -> 5.1 ms). Same text, byte for byte.
CREATE OR REPLACE FUNCTION api_agent(a agents) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT (left(api_agent_base_020(a)::text, -1) || ', "mcpServers" : '
          || a.mcp_servers::text || '}')::json
$$;
CREATE OR REPLACE FUNCTION api_harness(h harnesses) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT (left(api_harness_base_020(h)::text, -1) || ', "mcpServers" : '
          || h.mcp_servers::text || '}')::json
$$;
CREATE OR REPLACE FUNCTION api_session(s sessions) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT (left(api_session_base_020(s)::text, -1) || ', "mcpServers" : '
          || s.mcp_servers::text || '}')::json
$$;
