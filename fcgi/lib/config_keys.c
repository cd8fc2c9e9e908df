/*
 * config_keys: every configuration key, its type, default, bounds and
 * one line of help: the one place a default is written. The programs
 * read keys through config_int / config_num / config_str (config.h);
 * `everruns-admin check-config` checks the configured values against
 * this table and `everruns-admin list-config` prints it. A unit test
 * (tests/unit/test_lib.c) checks that conf/everruns.conf.example has
 * exactly these keys, with these defaults for the numbers.
 *
 * Bounds are what check-config accepts; config_int / config_num take a
 * value outside them to the nearer bound (with a warning in the log).
 * Rows are grouped as in the example file.
 */
#include "config.h"

#include <stddef.h>

#define S(name, def, help)                                                     \
	{                                                                      \
		name, CONFIG_STRING, def, 0, 0, NULL, help                     \
	}
#define E(name, def, choices, help)                                            \
	{                                                                      \
		name, CONFIG_ENUM, def, 0, 0, choices, help                    \
	}
#define L(name, def, min, max, help)                                           \
	{                                                                      \
		name, CONFIG_LONG, #def, min, max, NULL, help                  \
	}
#define D(name, def, min, max, help)                                           \
	{                                                                      \
		name, CONFIG_DOUBLE, #def, min, max, NULL, help                \
	}

const struct config_key config_keys[] = {
	/* database */
	S("database_url", "dbname=everruns",
	  "libpq connection string of the database (direct connections)"),
	E("db_pool", "session", "session|transaction",
	  "transaction: everruns-api behind PgBouncer in transaction mode"),
	S("api_database_url", "",
	  "the database everruns-api connects to; empty: database_url"),
	L("db_connect_timeout_s", 10, 1, 300,
	  "seconds a database connection attempt may take (all programs)"),
	L("db_keepalive_idle_s", 30, 1, 3600,
	  "seconds of TCP silence before keepalive probes"),

	/* the API program */
	L("api_threads", 4, 1, 256, "worker threads per everruns-api process"),
	D("auth_cache_s", 30, 0, 86400,
	  "seconds a thread remembers a valid API key; 0: no cache"),
	E("log_level", "info", "debug|info|warn|error", "log verbosity"),
	L("api_statement_timeout_s", 30, 0, 3600,
	  "longest SQL statement of everruns-api; 0: the database's setting"),

	/* directories */
	S("home", "./var", "the state directory (EVERRUNS_HOME)"),
	S("run_dir", "", "pid and status files; empty: <home>/run"),

	/* secrets */
	S("server_key_file", "",
	  "the key that seals provider and MCP server secrets; empty: "
	  "<home>/server.key"),

	/* limits */
	L("fs_max_file_mb", 25, 1, 512, "largest session file (MiB)"),
	L("fs_session_max_mb", 100, 1, 1048576,
	  "most MiB the files of one session may hold together"),
	L("conn_limit", 256, 1, 65535,
	  "requests in progress at once per client address in nginx"),
	L("fs_entry_min_kb", 4, 0, 1024,
	  "least KiB a file or directory counts towards the session total"),
	L("fs_session_max_entries", 10000, 1, 100000000,
	  "files and directories per session"),
	L("org_max_sessions", 10000, 1, 1000000000,
	  "sessions per organization"),
	L("org_max_storage_mb", 10240, 1, 1073741824,
	  "MiB of session files and images per organization"),
	L("org_max_events", 10000000, 1, 100000000000,
	  "durable events per organization"),
	L("org_max_mcp_servers", 50, 1, 10000,
	  "registered MCP servers per organization (not archived)"),
	L("regex_time_ms", 200, 10, 5000,
	  "file search: most ms matching one line may take"),
	L("grep_tool_budget_ms", 1000, 100, 5000,
	  "grep_files tool: the whole search's time budget"),
	L("regex_match_limit", 1000000, 1000, 100000000,
	  "file search: backtracking steps for one line"),
	L("regex_depth_limit", 100000, 100, 10000000,
	  "file search: deepest backtracking nesting"),
	L("regex_memory_kb", 8192, 256, 1048576,
	  "file search: KiB PCRE2 may allocate for one pattern"),

	/* outbound requests */
	S("guard_allow_providers", "",
	  "internal networks or hosts provider base_urls may reach"),
	S("guard_allow_fetch", "",
	  "internal networks or hosts fetch_url and image urls may reach"),
	L("fetch_max_bytes", 1048576, 1, 67108864,
	  "fetch_url: default byte limit of the text returned"),
	L("fetch_timeout_s", 30, 1, 3600, "fetch_url: default time limit"),
	L("image_fetch_timeout_s", 30, 1, 3600,
	  "time limit for fetching one image part given by url"),
	S("guard_allow_mcp", "",
	  "internal networks or hosts MCP server urls may reach"),
	L("mcp_connect_timeout_s", 10, 1, 300,
	  "MCP: connecting to a server (each request)"),
	L("mcp_list_timeout_s", 15, 1, 3600,
	  "MCP: one server's whole tool listing (initialize, tools/list)"),
	L("mcp_call_timeout_s", 60, 1, 3600, "MCP: one tools/call"),
	L("mcp_tools_ttl_s", 300, 0, 86400,
	  "MCP: how long a server's tool list is cached; 0: not cached"),
	L("mcp_max_response_kb", 4096, 16, 65536,
	  "MCP: largest response body of one request (KiB)"),
	L("mcp_max_tools", 128, 1, 1024,
	  "MCP: tools taken from one server's list"),

	/* the runner */
	L("max_inflight_turns", 500, 1, 100000,
	  "turns one runner process executes at once"),
	D("lease_s", 30, 0.1, 86400, "a turn's lease (seconds)"),
	D("lease_renew_s", 10, 0.01, 86400, "how often leases are renewed"),
	D("runner_poll_s", 2, 0.01, 3600,
	  "how often an idle runner looks for turns unasked"),
	L("drain_s", 20, 0, 86400,
	  "on SIGTERM, seconds turns get to finish before a handover"),
	L("housekeeping_s", 60, 1, 86400, "how often housekeeping runs"),
	L("default_max_iterations", 50, 1, 100000,
	  "reason/act iterations of a turn when nothing else says"),
	L("llm_connect_timeout_s", 10, 1, 3600, "LLM call: connect"),
	L("llm_first_byte_timeout_s", 60, 1, 3600, "LLM call: first byte"),
	L("llm_idle_timeout_s", 120, 1, 3600,
	  "LLM call: silence between bytes"),
	L("llm_call_timeout_s", 600, 1, 86400, "LLM call: the whole call"),
	L("turn_wall_time_s", 1800, 1, 604800, "a whole turn"),
	L("tool_timeout_s", 30, 1, 3600,
	  "one tool call (fetch_url has fetch_timeout_s)"),
	L("tool_wait_max_s", 86400, 1, 2592000,
	  "a turn waiting for tool results or approvals fails after this"),
	L("tools_max", 128, 1, 1024,
	  "entries of the tools list of an agent, harness or session"),
	L("tool_description_max_bytes", 4096, 64, 1048576,
	  "description of one tool of a tools list"),
	L("tool_schema_max_bytes", 65536, 1024, 4194304,
	  "parameters (and hints) of one tool of a tools list, as JSON"),
	L("tool_answers_max", 1000, 1, 100000,
	  "answers in one tool-results or tool-approvals request"),
	L("tool_reason_max_bytes", 4096, 64, 1048576,
	  "reason of one answer of a tool-approvals request"),
	L("runner_alive_s", 30, 1, 3600,
	  "a runner is alive while its heartbeat is younger than this"),
	L("no_runner_timeout_s", 180, 1, 86400,
	  "with no runner alive, queued turns older than this fail"),
	L("tool_result_max_bytes", 65536, 1024, 67108864,
	  "tool results larger than this are truncated for the model"),
	L("event_batch_max", 2048, 1, 100000,
	  "events one durable write transaction of the runner carries at most"),
	L("history_cache_sessions", 1000, 0, 10000000,
	  "sessions whose earlier conversation a runner keeps; 0: none"),
	L("llm_max_response_mb", 16, 1, 1024,
	  "one LLM response's body after decoding (MiB)"),
	L("llm_max_text_kb", 2048, 1, 65536,
	  "answer text of one LLM response (KiB)"),
	L("llm_max_thinking_kb", 2048, 1, 65536,
	  "thinking text of one LLM response (KiB)"),
	L("llm_max_tool_calls", 256, 1, 4096,
	  "tool calls of one model response; past it the turn fails"),
	L("llm_max_tool_args_kb", 4096, 1, 65536,
	  "tool-call arguments of one LLM response (KiB)"),

	/* the sandbox (virtual_bash) */
	L("sandbox_cpu_s", 30, 1, 3600, "CPU seconds of each process"),
	L("sandbox_wall_s", 60, 1, 3600, "wall seconds of one command"),
	L("sandbox_memory_mb", 1024, 64, 65536,
	  "address space of each process (MiB)"),
	L("sandbox_max_processes", 256, 8, 65536,
	  "processes a command may add to its user's"),
	L("sandbox_open_files", 256, 16, 65536, "open files of each process"),
	L("sandbox_output_bytes", 32768, 1024, 10485760,
	  "output kept per stream of a command"),
	L("sandbox_file_mb", 25, 1, 4096, "largest file a command may write"),
	L("sandbox_tmp_mb", 64, 1, 4096, "size of the private /tmp (MiB)"),
	L("sandbox_disk_mb", 512, 1, 65536,
	  "disk use of the working directory while a command runs"),
	S("sandbox_bwrap", "/usr/bin/bwrap", "the bubblewrap program"),
	S("sandbox_dir", "",
	  "where working directories go; empty: $TMPDIR, else /tmp"),

	/* streams */
	L("sse_heartbeat_s", 15, 1, 3600, "SSE comment heartbeat interval"),
	L("sse_cycle_s", 300, 1, 86400,
	  "a stream is cycled after this (+-20 %)"),
	L("sse_max_per_session", 5, 1, 100000,
	  "streams per session in one everruns-sse"),
	L("sse_max_per_org", 1000, 1, 10000000,
	  "streams per organization in one everruns-sse"),
	L("sse_db_connections", 2, 1, 16,
	  "query connections of each everruns-sse"),
	L("sse_query_timeout_s", 30, 0, 3600,
	  "an everruns-sse query running longer is given up; 0: no bound"),
	L("sse_delta_buffer_mb", 32, 1, 65536,
	  "MB of deltas held while the database stalls"),

	/* behind a reverse proxy, browsers (read by everrunsctl) */
	S("url_prefix", "", "the path the application is mounted under"),
	S("trusted_proxies", "",
	  "reverse proxies whose X-Forwarded-For/-Proto are believed"),
	S("cors_origins", "", "origins allowed to call the API from a browser"),
};

const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);
