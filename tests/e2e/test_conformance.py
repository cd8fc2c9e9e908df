"""Conformance with the upstream API document (issue "Upstream clients
work unchanged"): every response body and every SSE frame recorded during
a scripted run (agents, harnesses, providers and models under both names, MCP
servers and their use as a capability and inline,
session create in each form, a turn with thinking, a tool call and
streamed text, files, an image, a cancel, a client-side tool and its
answer, errors) is checked against the
schema openapi-2026-05-07.json gives for its route, status and event type,
by a validator nobody here wrote: python3-jsonschema, Draft 2020-12 (the
dialect of OpenAPI 3.1; the document names no other). `format` is an
annotation there and is not asserted: the guide's prefixed ids
(`ses_...`) stand where the document says `uuid`.

What the document does not cover (routes it lacks, a status it gives no
schema for, event types it does not define) is printed in the test's
output, never skipped silently. EventData is a oneOf that several
payloads match at once; so an event's envelope is checked with `data`
left open, and its `data` against the schema of its type (the one whose
description reads "Data for <type> event")."""

import base64
import copy
import json
import os
import re
import time
import unittest
import urllib.parse

import evr
from evr import api, new_org, wait_until, SRCDIR

try:
    import jsonschema
except ImportError:  # conf/install-deps --test installs python3-jsonschema
    jsonschema = None

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
BOUNDARY = "----evrConformance7MA4YWxk"

# Where this server departs from the document on purpose (the README's
# "Compatibility" lists them); each is printed with every run.
KNOWN = {
    "TypedId": "the document's TypedId (a generic id) carries the pattern of one "
               "instantiation, ^agent_; ids here are the guide's <prefix>_<32 hex> "
               "(hns_, agt_, ...): checked as ^[a-z]+_[0-9a-f]{32}$",
}
# Responses the document describes in words only: the schema they get.
LISTING = {"type": "object", "required": ["data"],
           "properties": {"data": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/FileInfo"}}}}
INFERRED = {
    "GET /v1/sessions/{session_id}/fs 200": LISTING,
    "GET /v1/sessions/{session_id}/fs/{path} 200": {
        "anyOf": [{"$ref": "#/components/schemas/SessionFile"}, LISTING]},
    "PUT /v1/sessions/{session_id}/fs/{path} 201": {"$ref": "#/components/schemas/SessionFile"},
    "GET /v1/images/{image_id} 200": {"$ref": "#/components/schemas/ImageInfo"},
}
# SSE frames that are not Events of the document (listed, not checked)
CONTROL = ("connected", "disconnecting")
# The later document's names of routes this one has (same handlers).
ALIASES = (("/v1/providers", "/v1/llm-providers"), ("/v1/models", "/v1/llm-models"))
OVERRIDES = {}  # route kind -> schema, where the document is overruled (none)


def jsonschema_version():
    try:
        from importlib.metadata import version
        return version("jsonschema")
    except Exception:  # not installed as a distribution
        return "?"


def find_doc():
    """The contract: $EVR_UPSTREAM_OPENAPI, else the copy in the tree
    (tests/e2e/upstream, with its MIT licence)."""
    for p in (os.environ.get("EVR_UPSTREAM_OPENAPI"),
              os.path.join(SRCDIR, "tests", "e2e", "upstream", "openapi-2026-05-07.json")):
        if p and os.path.exists(p):
            return p
    return None


class Contract:
    """The document, its path templates and the validators."""

    def __init__(self, path):
        with open(path) as f:
            self.doc = json.load(f)
        comps = copy.deepcopy(self.doc["components"])
        # checked per type instead (see the module's comment)
        comps["schemas"]["EventData"] = {}
        comps["schemas"]["TypedId"] = dict(comps["schemas"]["TypedId"],
                                           pattern="^[a-z]+_[0-9a-f]{32}$")
        self.comps = comps
        self.cache = {}
        self.templates = []
        for p in self.doc["paths"]:
            rx = re.escape(p)
            rx = re.sub(r"\\\{path\\\}", "(?:.+)", rx)
            rx = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", rx)
            # literal segments first: /sessions/chat before /sessions/{id}
            self.templates.append((p.count("{"), p, re.compile("^" + rx + "$")))
        self.templates.sort()
        # event type -> schema of its data
        self.data_schema = {}
        for name, s in self.doc["components"]["schemas"].items():
            m = re.match(r"Data for `?([a-z_.]+)`? event", s.get("description", ""))
            if m and name.endswith("Data"):
                self.data_schema[m.group(1)] = name

    def validator(self, ref):
        if ref not in self.cache:
            schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                      "$ref": ref, "components": self.comps}
            cls = jsonschema.Draft202012Validator
            cls.check_schema(schema)
            self.cache[ref] = cls(schema)
        return self.cache[ref]

    def errors(self, ref, value):
        return ["%s: %s" % ("/".join(str(x) for x in e.absolute_path) or "(root)", e.message)
                for e in self.validator(ref).iter_errors(value)][:5]

    def template(self, path):
        for _, p, rx in self.templates:
            if rx.match(path):
                return p
        return None


class Recorder:
    """Every request of the run, checked as it comes; the gaps listed."""

    def __init__(self, contract, key):
        self.c = contract
        self.key = key
        self.failures = []
        self.checked = {}
        self.uncovered = set()
        self.events_checked = {}
        self.seen = []  # (method, path) of every request

    def note(self, what):
        self.uncovered.add(what)

    def check_events(self, where, events):
        for ev in events:
            t = ev.get("type")
            self.events_checked[t] = self.events_checked.get(t, 0) + 1
            errs = self.c.errors("#/components/schemas/Event", ev)
            name = self.c.data_schema.get(t)
            if name:
                errs += ["data: " + x for x in
                         self.c.errors("#/components/schemas/" + name, ev.get("data"))]
            else:
                self.note("event type %s: not defined by the document" % t)
            if errs:
                self.failures.append("%s event %s: %s" % (where, t, errs))

    def __call__(self, method, path, body=None, expect=None, **kw):
        kw.setdefault("key", self.key)
        r = api(method, path, body, **kw)
        if expect is not None and r.status != expect:
            raise AssertionError("%s %s: %d, expected %d: %s" % (method, path, r.status,
                                                                 expect, r.text))
        self.check(method, path, r)
        return r

    def check(self, method, path, r):
        u = urllib.parse.urlsplit(path)
        self.seen.append((method, u.path))
        p = u.path[4:] if u.path.startswith("/api/") else u.path
        where = "%s %s %d" % (method, p, r.status)
        for new, old in ALIASES:
            if p == new or p.startswith(new + "/"):
                self.note("%s %s...: checked as the alias of %s..." % (method, new, old))
                p = old + p[len(new):]
        tpl = self.c.template(p)
        op = self.c.doc["paths"].get(tpl, {}).get(method.lower()) if tpl else None
        if op is None:
            self.note("route %s %s: not in the document" % (
                method, re.sub(r"[a-z]{3}_[0-9a-f]{32}", "{id}", p)))
            return
        key = "%s %s %d" % (method, tpl, r.status)
        resp = op["responses"].get(str(r.status)) or op["responses"].get("%dXX" % (r.status // 100))
        ctype = r.headers.get("content-type", "")
        if not ctype.startswith("application/json") or not r.body:
            self.checked[key] = self.checked.get(key, 0) + 1
            return
        schema = OVERRIDES.get(key)
        if schema is None and resp is not None:
            schema = resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is None and r.status >= 400:
            # statuses with no body schema: the document's ErrorResponse
            schema = {"$ref": "#/components/schemas/ErrorResponse"}
            self.note("%s: no schema in the document; checked as ErrorResponse" % key)
        elif schema is None and key in INFERRED:
            schema = INFERRED[key]
            self.note("%s: no schema in the document; checked as %s" % (
                key, json.dumps(schema)))
        elif schema is None:
            self.note("%s: no schema in the document (not checked)" % key)
            return
        ref = schema.get("$ref")
        if ref is None:  # an inline schema: register it under a name
            name = "__inline_%d" % len(self.c.comps["schemas"])
            self.c.comps["schemas"][name] = schema
            self.c.cache.clear()
            ref = "#/components/schemas/" + name
        value = r.json
        errs = self.c.errors(ref, value)
        if errs:
            self.failures.append("%s (%s): %s" % (where, ref.split("/")[-1], errs))
        if ref.endswith("ListResponse_Event"):
            self.check_events(where, value.get("data", []))
        self.checked[key] = self.checked.get(key, 0) + 1


def unexercised(seen):
    """Our own routes (static/openapi.json, which a unit test holds to the
    router) that no request of the run reached."""
    with open(os.path.join(SRCDIR, "static", "openapi.json")) as f:
        ours = json.load(f)
    out = []
    for p, ops in ours["paths"].items():
        rx = re.escape(p)
        rx = re.sub(r"\\\{path\\\}", "(?:.+)", rx)
        rx = re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", rx) + "$")
        for m in ops:
            if m == "parameters" or ops[m].get("x-served-by"):
                continue
            if not any(sm == m.upper() and rx.match(sp) for sm, sp in seen):
                out.append((m.upper(), p))
    return out


def sse_frames(sid, key, query, until, timeout=30, then=None):
    """Read an SSE stream until until(frame) is true; returns the frames.
    then(): called once the stream is open (to start a turn)."""
    from test_sse import Stream
    s = Stream(sid, key, query, timeout=timeout)
    assert s.status == 200, s.status
    out = []
    try:
        out.append(s.frame())  # connected
        if then:
            then()
        while True:
            f = s.frame()
            if f is None:
                break
            out.append(f)
            if until(f):
                break
    finally:
        s.close()
    return out


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # a missing validator or document fails the run: never a silent pass
        if jsonschema is None:
            raise AssertionError("python3-jsonschema is not installed "
                                 "(conf/install-deps --test)")
        path = find_doc()
        if path is None:
            raise AssertionError("openapi-2026-05-07.json not found (tests/e2e/upstream, "
                                 "or set EVR_UPSTREAM_OPENAPI)")
        cls.contract = Contract(path)
        cls.key = new_org("conformance")["api_key"]

    def test_scripted_run_matches_the_document(self):
        c = self.contract
        rec = Recorder(c, self.key)
        V = "/api/v1"
        print("\nvalidator: jsonschema %s, Draft 2020-12; document %s"
              % (jsonschema_version(), os.path.basename(find_doc())))

        # --- catalogue: agents, harnesses, providers, models, capabilities
        rec("GET", V + "/agents", expect=200)
        agent = rec("GET", V + "/agents/assistant", expect=200).json
        plain = rec("POST", V + "/agents", {"name": "conf-plain", "system_prompt": "Be brief."},
                    expect=201).json
        self.assertIsInstance(plain["harness_id"], str)
        rec("PATCH", V + "/agents/" + plain["id"], {"description": "patched"}, expect=200)
        rec("GET", V + "/harnesses", expect=200)
        base = rec("GET", V + "/harnesses/base", expect=200).json
        self.assertEqual(plain["harness_id"], base["id"])  # the effective harness
        rec("GET", V + "/capabilities", expect=200)
        rec("GET", V + "/capabilities/test_math", expect=200)
        for prv_path, mod_path in (("/llm-providers", "/llm-models"), ("/providers", "/models")):
            prvs = rec("GET", V + prv_path, expect=200).json["data"]
            sim = [p for p in prvs if p["provider_type"] == "llmsim"][0]
            rec("GET", V + prv_path + "/" + sim["id"], expect=200)
            rec("GET", V + prv_path + "/" + sim["id"] + "/models", expect=200)
            mods = rec("GET", V + mod_path, expect=200).json["data"]
            rec("GET", V + mod_path + "/" + mods[0]["id"], expect=200)
        made = rec("POST", V + "/providers", {"name": "conf-openai", "provider_type": "openai_completions",
                                               "base_url": "http://127.0.0.1:9/v1"}, expect=201).json
        rec("POST", V + "/llm-providers/%s/models" % made["id"],
            {"model_id": "conf-model", "capabilities": ["chat"]}, expect=201)
        rec("PATCH", V + "/providers/" + made["id"], {"name": "conf-openai-2"}, expect=200)
        rec("DELETE", V + "/llm-providers/" + made["id"])
        # MCP servers, used as a capability (the list shows them, is_mcp)
        # and inline (mcpServers)
        mcp = rec("POST", V + "/mcp-servers", {"name": "conf-mcp", "url": "https://mcp.example.com/mcp",
                                               "api_key": "sk-x", "headers": {"X-A": "b"}},
                  expect=201).json
        rec("GET", V + "/mcp-servers", expect=200)
        rec("GET", V + "/mcp-servers/" + mcp["id"], expect=200)
        rec("PATCH", V + "/mcp-servers/" + mcp["id"], {"description": "d", "status": "disabled"},
            expect=200)
        rec("PATCH", V + "/mcp-servers/" + mcp["id"], {"status": "active"}, expect=200)
        rec("GET", V + "/capabilities?search=conf-mcp", expect=200)
        mag = rec("POST", V + "/agents", {"name": "conf-mcp-agent",
                                          "capabilities": [{"ref": "mcp:" + mcp["id"]}],
                                          "mcpServers": {"docs": {"url": "https://docs.example/mcp",
                                                                  "headers": {"X-B": "c"}}}},
                  expect=201).json
        rec("GET", V + "/agents/" + mag["id"], expect=200)
        rec("DELETE", V + "/agents/" + mag["id"])
        rec("DELETE", V + "/mcp-servers/" + mcp["id"])
        rec("GET", V + "/mcp-servers?include_archived=true", expect=200)

        # --- sessions: every create form
        s1 = rec("POST", V + "/sessions", {"agent_id": agent["id"], "title": "conf"},
                 expect=201).json
        rec("POST", V + "/sessions", {"agent_name": "assistant"}, expect=201)
        files = [{"path": "/notes/readme.md", "content": "hello"},
                 {"path": "/workspace/bin.dat", "content": base64.b64encode(b"\x00\x01").decode(),
                  "encoding": "base64", "is_readonly": True}]
        s3 = rec("POST", V + "/sessions", {"harness_name": "generic", "locale": "uk-UA",
                                          "parallel_tool_calls": False,
                                          "initial_files": files}, expect=201).json
        self.assertEqual(s3.get("locale"), "uk-UA")
        self.assertIs(s3.get("parallel_tool_calls"), False)
        rec("GET", V + "/sessions", expect=200)
        rec("GET", V + "/sessions/" + s1["id"], expect=200)
        rec("PATCH", V + "/sessions/" + s1["id"], {"title": "conf 2"}, expect=200)

        # --- files (s3 has initial files, written with file.written events)
        listing = rec("GET", V + "/sessions/%s/fs" % s3["id"], expect=200).json
        self.assertIn("/notes", [f["path"] for f in listing["data"]])
        got = rec("GET", V + "/sessions/%s/fs/bin.dat" % s3["id"], expect=200).json
        self.assertTrue(got["is_readonly"])
        rec("GET", V + "/sessions/%s/fs/notes?recursive=true" % s3["id"], expect=200)
        rec("PUT", V + "/sessions/%s/fs/a/b.txt" % s3["id"], {"content": "one"}, expect=201)
        rec("POST", V + "/sessions/%s/fs/a/c.txt" % s3["id"], {"content": "two"}, expect=201)
        rec("POST", V + "/sessions/%s/fs/_/stat" % s3["id"], {"path": "/a/b.txt"}, expect=200)
        rec("POST", V + "/sessions/%s/fs/_/copy" % s3["id"],
            {"src_path": "/a/b.txt", "dst_path": "/a/d.txt"}, expect=201)
        rec("POST", V + "/sessions/%s/fs/_/move" % s3["id"],
            {"src_path": "/a/d.txt", "dst_path": "/a/e.txt"}, expect=200)
        rec("POST", V + "/sessions/%s/fs/_/grep" % s3["id"], {"pattern": "one"}, expect=200)
        rec("DELETE", V + "/sessions/%s/fs/a/e.txt" % s3["id"], expect=200)
        rec("GET", V + "/sessions/%s/fs/nope.txt" % s3["id"], expect=404)
        rec("POST", V + "/sessions/%s/fs/a/c.txt" % s3["id"], {"content": "again"}, expect=409)
        rec("PUT", V + "/sessions/%s/fs/bin.dat" % s3["id"], {"content": "x"}, expect=400)  # read-only
        rec("DELETE", V + "/sessions/%s/fs/bin.dat" % s3["id"], expect=403)
        ev3 = rec("GET", V + "/sessions/%s/events?types=file.written" % s3["id"], expect=200).json
        self.assertEqual([e["data"]["path"] for e in ev3["data"]][:2],
                         ["/notes/readme.md", "/bin.dat"])  # /workspace dropped

        # --- an image and a turn with thinking, a tool call and streamed text
        body = (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; "
                b"filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n" + PNG + b"\r\n--"
                + BOUNDARY.encode() + b"--\r\n")
        img = rec("POST", V + "/images", raw=body, expect=201,
                  content_type="multipart/form-data; boundary=" + BOUNDARY).json
        rec("GET", V + "/images", expect=200)
        rec("GET", V + "/images/" + img["id"], expect=200)
        tools = rec("POST", V + "/sessions", {"harness_name": "base",
                                             "capabilities": [{"ref": "test_math"}]},
                    expect=201).json
        sid = tools["id"]
        text = ('#think\n#tool calculate {"operation":"add","a":2,"b":3}\n'
                '#tool calculate {"operation":"divide","a":1,"b":0}\n'
                "#tokens 40\n#rate 200")

        def send():
            rec("POST", V + "/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": text},
                                         {"type": "image_file", "image_id": img["id"],
                                          "filename": "p.png"}]}}, expect=201)
            # busy: the guide's 400
            rec("POST", V + "/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": "again"}]}})
        frames = sse_frames(sid, self.key, "since_sequence=0",
                            lambda f: f.get("event") == "session.idled", then=send)
        rec.seen.append(("GET", V + "/sessions/%s/sse" % sid))
        seen = {}
        for f in frames:
            t = f.get("event")
            if not t or "data" not in f:
                continue
            seen[t] = seen.get(t, 0) + 1
            if t in CONTROL:
                rec.note("SSE frame %s: not an Event of the document (%s)" % (t, sorted(f["data"])))
                continue
            rec.check_events("SSE", [f["data"]])
        for t in ("reason.thinking.delta", "output.message.delta", "tool.started",
                  "tool.completed", "output.message.completed"):
            self.assertIn(t, seen)
        rec("GET", V + "/sessions/%s/messages" % sid, expect=200)
        rec("GET", V + "/sessions/%s/events" % sid, expect=200)
        rec("GET", V + "/sessions/%s/events?limit=5" % sid, expect=200)
        rec("GET", V + "/sessions/%s/events?after_sequence=3&types=tool.output.delta,"
            "tool.completed&exclude=llm.generation" % sid, expect=200)

        # --- a failed turn
        frames = sse_frames(sid, self.key, "",
                            lambda f: f.get("event") == "session.idled",
                            then=lambda: rec("POST", V + "/sessions/%s/messages" % sid,
                                             {"message": {"content": [
                                                 {"type": "text", "text": "#error bad_request"}]}},
                                             expect=201))
        rec.check_events("SSE", [f["data"] for f in frames
                                 if f.get("id") and f["event"] not in CONTROL])
        self.assertIn("turn.failed", [f.get("event") for f in frames])

        # --- cancel a streaming turn
        frames = sse_frames(sid, self.key, "",
                            lambda f: f.get("event") == "output.message.delta",
                            then=lambda: rec("POST", V + "/sessions/%s/messages" % sid,
                                             {"message": {"content": [
                                                 {"type": "text", "text": "#tokens 400\n#rate 20"}]}},
                                             expect=201))
        rec("POST", V + "/sessions/%s/cancel" % sid, {}, expect=200)
        rec("POST", V + "/sessions/%s/cancel" % sid, {}, expect=200)
        rec.check_events("SSE", [f["data"] for f in frames
                                 if f.get("id") and f["event"] not in CONTROL])
        wait_until(lambda: api("GET", V + "/sessions/" + sid, key=self.key).json["status"] == "idle",
                   what="idle after cancel")
        evs = rec("GET", V + "/sessions/%s/events" % sid, expect=200).json["data"]
        self.assertIn("turn.cancelled", [e["type"] for e in evs])

        # --- a client-side tool: the session waits, the client answers
        tool = {"type": "client_side", "name": "get_location", "description": "Where the user is.",
                "parameters": {"type": "object", "properties": {}}}
        s4 = rec("POST", V + "/sessions", {"agent_id": agent["id"], "tools": [tool]}, expect=201).json
        rec("POST", V + "/sessions/%s/messages" % s4["id"],
            {"message": {"content": [{"type": "text", "text": "#tool get_location {}"}]}}, expect=201)
        wait_until(lambda: api("GET", V + "/sessions/" + s4["id"], key=self.key).json["status"]
                   == "waitingfortoolresults", what="waiting for the client")
        rec("GET", V + "/sessions/" + s4["id"], expect=200)
        evs = rec("GET", V + "/sessions/%s/events" % s4["id"], expect=200).json["data"]
        call = [e for e in evs if e["type"] == "tool.call_requested"][0]["data"]["tool_calls"][0]
        rec("POST", V + "/sessions/%s/tool-results" % s4["id"],
            {"tool_results": [{"tool_call_id": call["id"], "result": {"city": "Kyiv"}}]}, expect=200)
        wait_until(lambda: api("GET", V + "/sessions/" + s4["id"], key=self.key).json["status"] == "idle",
                   what="idle after the answer")
        rec("GET", V + "/sessions/%s/events" % s4["id"], expect=200)
        rec("POST", V + "/sessions/%s/tool-results" % s4["id"],
            {"tool_results": [{"tool_call_id": call["id"], "result": 1}]}, expect=409)
        rec("POST", V + "/sessions/%s/tool-approvals" % s4["id"],
            {"approvals": [{"tool_call_id": call["id"], "approved": True}]}, expect=409)

        # --- the rest of the routes: keys, the chat session, harnesses,
        # downloads, deletions, health and metrics
        rec("GET", V + "/auth/me", expect=200)
        made_key = rec("POST", V + "/auth/api-keys", {"name": "conf"}, expect=201).json
        rec("GET", V + "/auth/api-keys", expect=200)
        rec("DELETE", V + "/auth/api-keys/" + made_key["id"])
        rec("POST", V + "/sessions/chat", {}, expect=200)
        h = rec("POST", V + "/harnesses", {"name": "conf-h", "system_prompt": "x"}, expect=201).json
        rec("PATCH", V + "/harnesses/" + h["id"], {"description": "d"}, expect=200)
        rec("DELETE", V + "/harnesses/" + h["id"])
        m = rec("GET", V + "/llm-models", expect=200).json["data"][0]
        rec("PATCH", V + "/models/" + m["id"], {"display_name": "Sim"}, expect=200)
        prv = rec("POST", V + "/llm-providers", {"name": "conf-x", "provider_type": "openai_completions",
                                                "base_url": "http://127.0.0.1:9/v1"}, expect=201).json
        rec("PATCH", V + "/llm-models/" + m["id"], {"display_name": "LLM Simulator"}, expect=200)
        rec("PATCH", V + "/llm-providers/" + prv["id"], {"name": "conf-y"}, expect=200)
        pm = rec("POST", V + "/providers/%s/models" % prv["id"], {"model_id": "x"}, expect=201).json
        pm2 = rec("POST", V + "/providers/%s/models" % prv["id"], {"model_id": "y"}, expect=201).json
        rec("DELETE", V + "/models/" + pm["id"])
        rec("DELETE", V + "/llm-models/" + pm2["id"])
        rec("DELETE", V + "/providers/" + prv["id"])
        rec("GET", V + "/sessions/%s/fs/_/download/notes/readme.md" % s3["id"], expect=200)
        rec("GET", V + "/images/%s/content" % img["id"], expect=200)
        rec("DELETE", V + "/images/" + img["id"])
        rec("GET", "/health", key=None, expect=200)
        rec("GET", "/metrics", key=None)

        # --- errors
        rec("GET", V + "/sessions/ses_" + "0" * 32, expect=404)
        rec("GET", V + "/sessions/nope", expect=400)
        rec("POST", V + "/sessions", {"agent_id": 5}, expect=400)
        rec("POST", V + "/sessions", {"agent_name": "nobody"}, expect=404)
        rec("GET", V + "/agents/nobody", expect=404)
        rec("GET", V + "/sessions", key=None, expect=401)
        rec("GET", V + "/sessions/%s/events?types=no.such" % sid, expect=400)
        # deleting a session closes its streams with `disconnecting`
        frames = sse_frames(s1["id"], self.key, "",
                            lambda f: f.get("event") == "disconnecting",
                            then=lambda: rec("DELETE", V + "/sessions/" + s1["id"], expect=204))
        for f in frames:
            if f.get("event") in CONTROL:
                rec.note("SSE frame %s: not an Event of the document (%s)"
                         % (f["event"], sorted(f["data"])))
        rec("DELETE", V + "/agents/" + plain["id"])

        print("checked: %d response kinds, %d responses; %d event types, %d events"
              % (len(rec.checked), sum(rec.checked.values()), len(rec.events_checked),
                 sum(rec.events_checked.values())))
        for k in sorted(rec.checked):
            print("  checked  %s (x%d)" % (k, rec.checked[k]))
        for t in sorted(rec.events_checked):
            print("  checked  event %s (x%d)" % (t, rec.events_checked[t]))
        for m_, p_ in unexercised(rec.seen):
            print("  NOT EXERCISED  %s %s (a route of static/openapi.json)" % (m_, p_))
        for k in sorted(KNOWN):
            print("  DIFFERENCE   %s: %s" % (k, KNOWN[k]))
        for u in sorted(rec.uncovered):
            print("  NOT COVERED  " + u)
        self.assertEqual(rec.failures, [], "\n".join(rec.failures))


if __name__ == "__main__":
    unittest.main()
