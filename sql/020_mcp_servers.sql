-- MCP servers (issue 16): remote Model Context Protocol servers an
-- organization registers once (/v1/mcp-servers) and its agents, harnesses
-- and sessions use by the capability ref 'mcp:<mcp_id>', or name inline
-- in their upstream `mcpServers` map {name: {url, headers?}}.
--
-- The api_key and the header values are sealed with the server key
-- (crypto_seal, as llm_providers.api_key_enc): headers_enc holds the
-- sealed JSON object of the headers, header_names their names in order
-- (the API shows each value as "********"). DELETE archives: the row
-- stays for the history, the name is free again.
CREATE TABLE mcp_servers (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  name text NOT NULL,
  description text,
  url text NOT NULL,
  header_names text[] NOT NULL DEFAULT '{}',
  headers_enc text,
  api_key_enc text,
  status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'disabled', 'archived')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  archived_at timestamptz
);
CREATE UNIQUE INDEX mcp_servers_name ON mcp_servers (org_id, name)
  WHERE status <> 'archived';
CREATE INDEX mcp_servers_org ON mcp_servers (org_id, created_at);

CREATE FUNCTION api_mcp_server(m mcp_servers) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('mcp', m.id), 'organization_id', evr_id('org', m.org_id),
    'name', m.name, 'description', m.description, 'url', m.url,
    'transport_type', 'http',
    'auth_mode', CASE WHEN m.api_key_enc IS NULL THEN 'none'
                      ELSE 'api_key' END,
    'headers', (SELECT coalesce(json_object_agg(n, '********'::text ORDER BY i),
                                '{}')
                FROM unnest(m.header_names) WITH ORDINALITY AS h(n, i)),
    'api_key_set', m.api_key_enc IS NOT NULL, 'status', m.status,
    'created_at', evr_ts(m.created_at), 'updated_at', evr_ts(m.updated_at),
    'archived_at', evr_ts(m.archived_at), 'deleted_at', NULL,
    'self_url', '/api/v1/mcp-servers/' || evr_id('mcp', m.id),
    'view_url', '/', 'ui_link', '/')
$$;

-- The inline servers of each layer: the upstream `mcpServers` map
-- {name: {url, headers?}}, validated by the API.
ALTER TABLE harnesses ADD COLUMN mcp_servers jsonb NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN mcp_servers jsonb NOT NULL DEFAULT '{}';
ALTER TABLE sessions ADD COLUMN mcp_servers jsonb NOT NULL DEFAULT '{}';

-- api_agent and api_harness gain `mcpServers`: the functions as they are
-- now (whatever migration wrote them last) are kept under another name
-- and the member is added to their JSON, keeping its key order.
ALTER FUNCTION api_agent(agents) RENAME TO api_agent_base_020;
CREATE FUNCTION api_agent(a agents) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT (left(b::text, -1) || ', "mcpServers" : ' || a.mcp_servers::text
          || '}')::json
  FROM api_agent_base_020(a) AS b
$$;
ALTER FUNCTION api_harness(harnesses) RENAME TO api_harness_base_020;
CREATE FUNCTION api_harness(h harnesses) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT (left(b::text, -1) || ', "mcpServers" : ' || h.mcp_servers::text
          || '}')::json
  FROM api_harness_base_020(h) AS b
$$;

ALTER FUNCTION api_session(sessions) RENAME TO api_session_base_020;
CREATE FUNCTION api_session(s sessions) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT (left(b::text, -1) || ', "mcpServers" : ' || s.mcp_servers::text
          || '}')::json
  FROM api_session_base_020(s) AS b
$$;

-- The MCP servers a turn may use, resolved (the runner reads it with
-- evr_turn_config): the registered servers its layers name by the
-- capability ref 'mcp:mcp_<hex>' (active ones of the session's
-- organization) and the inline servers of its layers (by name, the later
-- layer wins: harness, agent, session). Each: {name, url, headers (inline,
-- plain) | headers_enc (sealed JSON), api_key_enc, mcp_id}; NULL when
-- there is none (the claim adds it to the configuration only then).
CREATE FUNCTION evr_turn_mcp(p_turn uuid) RETURNS json
LANGUAGE sql STABLE AS $$
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
      WHERE name NOT IN (SELECT name FROM registered)) x
$$;
