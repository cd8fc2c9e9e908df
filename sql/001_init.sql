-- 001: organizations, users, API keys, harnesses, agents, LLM providers and
-- models, sessions, the event log, idempotency keys.
--
-- Conventions: every table has a uuid primary key (UUIDv7, so ids sort by
-- creation) and, except organizations, an org_id that every query filters
-- on. The API shows ids as "<prefix>_<32 hex>" (evr_id) and timestamps as
-- RFC 3339 UTC with milliseconds (evr_ts). The api_* functions build each
-- resource's JSON so that every route that returns a resource returns the
-- same shape.

CREATE FUNCTION uuidv7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

CREATE FUNCTION evr_id(prefix text, u uuid) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN u IS NULL THEN NULL
              ELSE prefix || '_' || replace(u::text, '-', '') END
$$;

CREATE FUNCTION evr_ts(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE TABLE organizations (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  name text NOT NULL,
  default_model_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  email text NOT NULL,
  name text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, email)
);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
  name text NOT NULL,
  key_prefix text NOT NULL,
  key_hash text NOT NULL UNIQUE,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

CREATE TABLE llm_providers (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  name text NOT NULL,
  provider_type text NOT NULL
    CHECK (provider_type IN ('openai_completions', 'anthropic', 'llmsim')),
  base_url text,
  api_key_enc text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_providers_org ON llm_providers (org_id, created_at);

CREATE TABLE llm_models (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  provider_id uuid NOT NULL REFERENCES llm_providers ON DELETE CASCADE,
  model_id text NOT NULL,
  display_name text NOT NULL DEFAULT '',
  capabilities text[] NOT NULL DEFAULT '{chat,tools}',
  context_tokens integer NOT NULL DEFAULT 128000,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_models_org ON llm_models (org_id, created_at);
CREATE INDEX llm_models_provider ON llm_models (provider_id);

ALTER TABLE organizations ADD FOREIGN KEY (default_model_id)
  REFERENCES llm_models ON DELETE SET NULL;

CREATE TABLE harnesses (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  name text NOT NULL,
  display_name text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  system_prompt text NOT NULL DEFAULT '',
  default_model_id uuid REFERENCES llm_models ON DELETE SET NULL,
  capabilities jsonb NOT NULL DEFAULT '[]',
  tags text[] NOT NULL DEFAULT '{}',
  is_built_in boolean NOT NULL DEFAULT false,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  archived_at timestamptz
);
CREATE UNIQUE INDEX harnesses_name ON harnesses (org_id, name) WHERE status = 'active';

CREATE TABLE agents (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  name text NOT NULL,
  display_name text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  system_prompt text NOT NULL DEFAULT '',
  default_model_id uuid REFERENCES llm_models ON DELETE SET NULL,
  harness_id uuid REFERENCES harnesses,
  capabilities jsonb NOT NULL DEFAULT '[]',
  tags text[] NOT NULL DEFAULT '{}',
  max_iterations integer,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  archived_at timestamptz
);
CREATE UNIQUE INDEX agents_name ON agents (org_id, name) WHERE status = 'active';
CREATE INDEX agents_org ON agents (org_id, created_at);

CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  agent_id uuid REFERENCES agents,
  harness_id uuid NOT NULL REFERENCES harnesses,
  model_id uuid REFERENCES llm_models ON DELETE SET NULL,
  title text,
  tags text[] NOT NULL DEFAULT '{}',
  capabilities jsonb NOT NULL DEFAULT '[]',
  system_prompt text,
  max_iterations integer,
  status text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'active')),
  chat_user_id uuid REFERENCES users ON DELETE CASCADE,
  active_turn_id uuid,
  last_seq bigint NOT NULL DEFAULT 0,
  usage_input bigint NOT NULL DEFAULT 0,
  usage_output bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, chat_user_id)
);
CREATE INDEX sessions_org ON sessions (org_id, created_at DESC, id DESC);
CREATE INDEX sessions_agent ON sessions (org_id, agent_id);
CREATE INDEX sessions_tags ON sessions USING gin (tags);

-- The durable event log. Rows never change; they go only with their
-- session. `seq` is per session, gap-free, allocated from sessions.last_seq
-- under the session's row lock.
CREATE TABLE events (
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  seq bigint NOT NULL,
  id uuid NOT NULL DEFAULT uuidv7(),
  type text NOT NULL,
  ts timestamptz NOT NULL DEFAULT clock_timestamp(),
  turn_id uuid,
  input_message_id uuid,
  data jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX events_id ON events (id);

-- Turns: one per user message; the runner claims queued turns and holds a
-- lease (owner, attempt, expiry by the database clock).
CREATE TABLE turns (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
  input_message_id uuid,
  state text NOT NULL DEFAULT 'queued'
    CHECK (state IN ('queued', 'running', 'cancelling', 'completed',
                     'failed', 'cancelled')),
  attempt integer NOT NULL DEFAULT 0,
  lease_owner uuid,
  lease_until timestamptz,
  controls jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE UNIQUE INDEX turns_one_open ON turns (session_id)
  WHERE state IN ('queued', 'running', 'cancelling');
CREATE INDEX turns_queued ON turns (created_at) WHERE state = 'queued';

-- Runner processes and their heartbeats (what /health counts).
CREATE TABLE runners (
  id uuid PRIMARY KEY,
  host text NOT NULL,
  pid integer NOT NULL,
  seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE idempotency_keys (
  org_id uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
  key text NOT NULL,
  request text NOT NULL,     -- method and path
  body_hash text NOT NULL,   -- SHA-256 of the body, hex
  status integer NOT NULL,
  response text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Append one durable event: next sequence under the session's row lock,
-- insert, and a wake-up on channel `ev` ("<session hex>:<seq>"), all in the
-- caller's transaction. Raises foreign_key_violation if the session is gone.
CREATE FUNCTION evr_emit(p_session uuid, p_type text, p_data jsonb,
                         p_turn uuid DEFAULT NULL, p_msg uuid DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
  UPDATE sessions SET last_seq = last_seq + 1 WHERE id = p_session
    RETURNING last_seq INTO s;
  IF s IS NULL THEN
    RAISE EXCEPTION 'session % does not exist', p_session
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  INSERT INTO events (session_id, seq, type, turn_id, input_message_id, data)
    VALUES (p_session, s, p_type, p_turn, p_msg, coalesce(p_data, '{}'));
  PERFORM pg_notify('ev', replace(p_session::text, '-', '') || ':' || s);
  RETURN s;
END $$;

-- JSON shapes of the resources -------------------------------------------

CREATE FUNCTION api_harness(h harnesses) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('hns', h.id), 'organization_id', evr_id('org', h.org_id),
    'name', h.name, 'display_name', h.display_name,
    'description', h.description, 'system_prompt', h.system_prompt,
    'default_model_id', evr_id('mod', h.default_model_id),
    'capabilities', h.capabilities, 'tags', to_json(h.tags),
    'is_built_in', h.is_built_in, 'status', h.status,
    'created_at', evr_ts(h.created_at), 'updated_at', evr_ts(h.updated_at))
$$;

CREATE FUNCTION api_agent(a agents) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('agt', a.id), 'organization_id', evr_id('org', a.org_id),
    'name', a.name, 'display_name', a.display_name,
    'description', a.description, 'system_prompt', a.system_prompt,
    'default_model_id', evr_id('mod', a.default_model_id),
    'harness_id', evr_id('hns', a.harness_id),
    'capabilities', a.capabilities, 'tags', to_json(a.tags),
    'max_iterations', a.max_iterations, 'status', a.status,
    'created_at', evr_ts(a.created_at), 'updated_at', evr_ts(a.updated_at),
    'archived_at', evr_ts(a.archived_at))
$$;

CREATE FUNCTION api_provider(p llm_providers) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('prv', p.id), 'organization_id', evr_id('org', p.org_id),
    'name', p.name, 'provider_type', p.provider_type, 'base_url', p.base_url,
    'api_key_set', p.api_key_enc IS NOT NULL, 'status', p.status,
    'created_at', evr_ts(p.created_at), 'updated_at', evr_ts(p.updated_at))
$$;

CREATE FUNCTION api_model(m llm_models) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('mod', m.id), 'provider_id', evr_id('prv', m.provider_id),
    'provider_name', p.name, 'provider_type', p.provider_type,
    'model_id', m.model_id, 'display_name', m.display_name,
    'capabilities', to_json(m.capabilities),
    'context_tokens', m.context_tokens, 'enabled', m.enabled,
    'created_at', evr_ts(m.created_at), 'updated_at', evr_ts(m.updated_at))
  FROM llm_providers p WHERE p.id = m.provider_id
$$;

CREATE FUNCTION api_session(s sessions) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('ses', s.id), 'organization_id', evr_id('org', s.org_id),
    'agent_id', evr_id('agt', s.agent_id),
    'harness_id', evr_id('hns', s.harness_id),
    'model_id', evr_id('mod', s.model_id), 'title', s.title,
    'tags', to_json(s.tags), 'capabilities', s.capabilities,
    'system_prompt', s.system_prompt, 'max_iterations', s.max_iterations,
    'status', s.status,
    'usage', json_build_object('input_tokens', s.usage_input,
                               'output_tokens', s.usage_output),
    'created_at', evr_ts(s.created_at), 'updated_at', evr_ts(s.updated_at))
$$;

CREATE FUNCTION api_key(k api_keys) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', evr_id('key', k.id), 'name', k.name, 'key_prefix', k.key_prefix,
    'user_id', evr_id('usr', k.user_id),
    'expires_at', evr_ts(k.expires_at), 'last_used_at', evr_ts(k.last_used_at),
    'created_at', evr_ts(k.created_at))
$$;

-- Seed a new organization: built-in harnesses, the llmsim provider and
-- model (the organization's default), and a default agent.
CREATE FUNCTION evr_seed_org(p_org uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE prv uuid; mdl uuid; gen uuid;
BEGIN
  INSERT INTO harnesses (org_id, name, display_name, description, system_prompt,
                         capabilities, tags, is_built_in)
  VALUES
   (p_org, 'base', 'Base', 'A helpful assistant with no tools.',
    'You are a helpful assistant.', '[]', '{built-in}', true),
   (p_org, 'generic', 'Generic',
    'A general-purpose agent environment with a session filesystem, web fetch, time and a todo list.',
    'You are a helpful assistant. Use the tools available to you when they help you answer accurately.',
    '[{"ref":"session_file_system","config":{}},{"ref":"web_fetch","config":{}},{"ref":"current_time","config":{}},{"ref":"stateless_todo_list","config":{}}]',
    '{built-in}', true),
   (p_org, 'platform-chat', 'Platform Chat', 'General chat with the generic tools.',
    'You are the platform''s chat assistant. Answer questions, help the user think, and use your tools (files, web fetch, time, todo list) when they help.',
    '[{"ref":"session_file_system","config":{}},{"ref":"web_fetch","config":{}},{"ref":"current_time","config":{}},{"ref":"stateless_todo_list","config":{}}]',
    '{built-in,chat}', true);
  SELECT id INTO gen FROM harnesses WHERE org_id = p_org AND name = 'generic';

  INSERT INTO llm_providers (org_id, name, provider_type)
    VALUES (p_org, 'llmsim', 'llmsim') RETURNING id INTO prv;
  INSERT INTO llm_models (org_id, provider_id, model_id, display_name,
                          capabilities, context_tokens)
    VALUES (p_org, prv, 'llmsim', 'LLM Simulator', '{chat,tools,vision}', 128000)
    RETURNING id INTO mdl;
  UPDATE organizations SET default_model_id = mdl WHERE id = p_org;

  INSERT INTO agents (org_id, name, display_name, description, system_prompt,
                      harness_id, default_model_id)
  VALUES (p_org, 'assistant', 'Assistant', 'A default agent to chat with.',
          'You are a friendly, concise assistant.', gen, mdl);
END $$;

-- Sessions ----------------------------------------------------------------

-- Tags that only the server sets (the global chat session's).
CREATE FUNCTION evr_reserved_tags(tags text[]) RETURNS text[]
  LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(t ORDER BY t), '{}')
  FROM unnest(tags) t WHERE t = 'global-chat' OR t LIKE 'user:%'
$$;

-- Create a session and its session.started event (sequence 1). The harness
-- is the given one, else the agent's, else the organization's `base`.
CREATE FUNCTION evr_session_create(p_org uuid, p_agent uuid, p_harness uuid,
    p_model uuid, p_title text, p_tags text[], p_caps jsonb, p_prompt text,
    p_max_iter integer, p_chat_user uuid DEFAULT NULL)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE sid uuid; h uuid := p_harness; s sessions;
BEGIN
  IF h IS NULL AND p_agent IS NOT NULL THEN
    SELECT harness_id INTO h FROM agents WHERE id = p_agent AND org_id = p_org;
  END IF;
  IF h IS NULL THEN
    SELECT id INTO h FROM harnesses
      WHERE org_id = p_org AND name = 'base' AND is_built_in AND status = 'active';
  END IF;
  INSERT INTO sessions (org_id, agent_id, harness_id, model_id, title, tags,
                        capabilities, system_prompt, max_iterations, chat_user_id)
    VALUES (p_org, p_agent, h, p_model, p_title, coalesce(p_tags, '{}'),
            coalesce(p_caps, '[]'), p_prompt, p_max_iter, p_chat_user)
    RETURNING id INTO sid;
  PERFORM evr_emit(sid, 'session.started', jsonb_strip_nulls(jsonb_build_object(
    'harness_id', evr_id('hns', h), 'agent_id', evr_id('agt', p_agent),
    'model_id', evr_id('mod', p_model))));
  SELECT * INTO s FROM sessions WHERE id = sid;
  RETURN api_session(s);
END $$;

-- The caller's singleton chat session, created on first use. Exactly one
-- per user even under concurrent calls: the unique (org_id, chat_user_id)
-- makes a concurrent insert wait and then do nothing.
CREATE FUNCTION evr_chat_session(p_org uuid, p_user uuid)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE s sessions; h uuid; sid uuid;
BEGIN
  SELECT * INTO s FROM sessions WHERE org_id = p_org AND chat_user_id = p_user;
  IF FOUND THEN RETURN api_session(s); END IF;
  SELECT id INTO h FROM harnesses
    WHERE org_id = p_org AND name = 'platform-chat' AND is_built_in AND status = 'active';
  INSERT INTO sessions (org_id, harness_id, title, tags, chat_user_id)
    VALUES (p_org, h, 'Chat', ARRAY['global-chat', 'user:' || evr_id('usr', p_user)], p_user)
    ON CONFLICT (org_id, chat_user_id) DO NOTHING
    RETURNING id INTO sid;
  IF sid IS NOT NULL THEN
    PERFORM evr_emit(sid, 'session.started',
                     jsonb_build_object('harness_id', evr_id('hns', h)));
  END IF;
  SELECT * INTO s FROM sessions WHERE org_id = p_org AND chat_user_id = p_user;
  RETURN api_session(s);
END $$;

-- Delete a session with everything it owns. Open turns are marked
-- cancelled first (without events) and their runners told on `cancels`;
-- streams learn of the deletion from "<session>:0" on `ev`.
CREATE FUNCTION evr_session_delete(p_session uuid, p_org uuid)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
  PERFORM 1 FROM sessions WHERE id = p_session AND org_id = p_org FOR UPDATE;
  IF NOT FOUND THEN RETURN false; END IF;
  FOR t IN UPDATE turns SET state = 'cancelled', finished_at = now()
           WHERE session_id = p_session AND state IN ('queued', 'running', 'cancelling')
           RETURNING id LOOP
    PERFORM pg_notify('cancels', replace(t.id::text, '-', ''));
  END LOOP;
  DELETE FROM sessions WHERE id = p_session;
  PERFORM pg_notify('ev', replace(p_session::text, '-', '') || ':0');
  RETURN true;
END $$;
