"""MCP servers (issue 16): the /v1/mcp-servers resource, the references
to it from agents, harnesses and sessions, and the runner's MCP client
(Streamable HTTP) end to end.

The real server is the MCP reference server `@modelcontextprotocol/
server-everything` from npm (tests/package.json), started here in its
streamableHttp mode on loopback. The fault cases (a server that dies,
hangs, answers garbage or too much) use a small stand-in written here,
on loopback too. The stack's runner is paused while a runner of our own,
whose guard allows 127.0.0.1 (guard_allow_mcp), runs the turns."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import unittest

from evr import HOME, api, new_org, psql, stack_pid, start_runner, wait_until
from test_drivers import Fake, fake_providers
from test_turns import events, send, wait_idle

HERE = os.path.dirname(os.path.abspath(__file__))

V1 = "/api/v1"


def uniq(p):
    return "%s-%s" % (p, os.urandom(4).hex())


class Resource(unittest.TestCase):
    """create / list / get / patch / delete and validation."""

    @classmethod
    def setUpClass(cls):
        cls.key = new_org(uniq("mcp-res"))["api_key"]
        r = api("POST", V1 + "/auth/api-keys", {"name": "m", "role": "member"}, key=cls.key)
        assert r.status == 201, r
        cls.member = r.json["key"]

    def create(self, body, status=201, key=None):
        r = api("POST", V1 + "/mcp-servers", body, key=key or self.key)
        self.assertEqual(r.status, status, r.text)
        return r.json

    def test_lifecycle_and_secrets_never_returned(self):
        s = self.create({"name": uniq("jira"), "url": "https://mcp.example.com/mcp",
                         "description": "Jira tools", "api_key": "sk-secret-1",
                         "headers": {"X-Tenant": "acme-secret"}})
        self.assertTrue(s["id"].startswith("mcp_"))
        self.assertEqual(s["transport_type"], "http")
        self.assertEqual(s["status"], "active")
        self.assertTrue(s["api_key_set"])
        self.assertEqual(s["auth_mode"], "api_key")
        self.assertEqual(s["headers"], {"X-Tenant": "********"})
        self.assertNotIn("api_key", s)
        g = api("GET", V1 + "/mcp-servers/" + s["id"], key=self.member)
        self.assertEqual(g.status, 200, g.text)
        for r in (g, api("GET", V1 + "/mcp-servers", key=self.key)):
            self.assertNotIn("sk-secret-1", r.text)
            self.assertNotIn("acme-secret", r.text)
        # stored sealed
        row = psql("SELECT api_key_enc, headers_enc FROM mcp_servers WHERE "
                   "id = replace($1, 'mcp_', '')::uuid", s["id"])[0]
        self.assertNotIn("sk-secret-1", row[0])
        self.assertNotIn("acme-secret", row[1])
        # list, search
        lst = api("GET", V1 + "/mcp-servers?search=JIRA", key=self.key).json
        self.assertIn(s["id"], [x["id"] for x in lst["data"]])
        self.assertEqual(api("GET", V1 + "/mcp-servers?search=nomatch-zz", key=self.key).json["data"], [])
        # patch: description, status
        p = api("PATCH", V1 + "/mcp-servers/" + s["id"], {"description": "d2", "status": "disabled"},
                key=self.key)
        self.assertEqual(p.status, 200, p.text)
        self.assertEqual((p.json["description"], p.json["status"]), ("d2", "disabled"))
        # a new url without the secrets again: 400, nothing changed
        p = api("PATCH", V1 + "/mcp-servers/" + s["id"], {"url": "https://other.example.com/mcp"},
                key=self.key)
        self.assertEqual(p.status, 400, p.text)
        self.assertEqual(api("GET", V1 + "/mcp-servers/" + s["id"], key=self.key).json["url"],
                         "https://mcp.example.com/mcp")
        p = api("PATCH", V1 + "/mcp-servers/" + s["id"],
                {"url": "https://other.example.com/mcp", "api_key": None, "headers": None}, key=self.key)
        self.assertEqual(p.status, 200, p.text)
        self.assertFalse(p.json["api_key_set"])
        self.assertEqual(p.json["headers"], {})
        # a member cannot write
        self.assertEqual(api("PATCH", V1 + "/mcp-servers/" + s["id"], {"description": "x"},
                             key=self.member).status, 403)
        # delete archives: gone from the list, name free again
        self.assertEqual(api("DELETE", V1 + "/mcp-servers/" + s["id"], key=self.key).status, 204)
        self.assertEqual(api("DELETE", V1 + "/mcp-servers/" + s["id"], key=self.key).status, 404)
        ids = [x["id"] for x in api("GET", V1 + "/mcp-servers", key=self.key).json["data"]]
        self.assertNotIn(s["id"], ids)
        arch = api("GET", V1 + "/mcp-servers?include_archived=true", key=self.key).json["data"]
        self.assertIn("archived", [x["status"] for x in arch if x["id"] == s["id"]])
        self.create({"name": s["name"], "url": "https://mcp.example.com/mcp"})

    def test_validation(self):
        bad = [
            {"url": "https://x.example/mcp"},
            {"name": uniq("a")},
            {"name": "", "url": "https://x.example/mcp"},
            {"name": uniq("a"), "url": "ftp://x.example/mcp"},
            {"name": uniq("a"), "url": "file:///etc/passwd"},
            {"name": uniq("a"), "url": "http://"},
            {"name": uniq("a"), "url": "http://a b/"},
            {"name": uniq("a"), "url": "http://x.example/\r\nX: y"},
            # numeric addresses the guard refuses (the test stack's
            # guard_allow_mcp is 127.0.0.0/8)
            {"name": uniq("a"), "url": "http://169.254.169.254/latest"},
            {"name": uniq("a"), "url": "http://10.1.2.3:8080/mcp"},
            {"name": uniq("a"), "url": "http://user@[::1]:9/mcp"},
            {"name": uniq("a"), "url": "https://[fd00:ec2::254]/mcp"},
            {"name": uniq("a"), "url": "http://192.168.0.1"},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"X-A": "v\r\nInjected: 1"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"X-A": "v\nx"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"X-A": "v\u0000x"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"X-A\r\nB": "v"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"X A": "v"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"Host": "evil"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"mcp-session-id": "x"}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": {"X-A": 1}},
            {"name": uniq("a"), "url": "https://x.example/mcp", "headers": ["X-A"]},
            {"name": uniq("a"), "url": "https://x.example/mcp", "api_key": "k\r\nX: 1"},
            {"name": uniq("a"), "url": "https://x.example/mcp", "api_key": ""},
            {"name": uniq("a"), "url": "https://x.example/mcp", "transport_type": "stdio"},
            {"name": uniq("a"), "url": "https://x.example/mcp", "auth_mode": "o_auth"},
        ]
        for b in bad:
            with self.subTest(body=b):
                r = api("POST", V1 + "/mcp-servers", b, key=self.key)
                self.assertEqual(r.status, 400, r.text)
                self.assertEqual(r.json["code"], "validation_error", r.text)
        # duplicate name: 409
        n = uniq("dup")
        self.create({"name": n, "url": "https://x.example/mcp"})
        r = api("POST", V1 + "/mcp-servers", {"name": n, "url": "https://y.example/mcp"}, key=self.key)
        self.assertEqual(r.status, 409, r.text)
        # a member cannot create; a malformed id is 400, another's 404
        self.assertEqual(api("POST", V1 + "/mcp-servers", {"name": uniq("m"), "url": "https://x.example/"},
                             key=self.member).status, 403)
        self.assertEqual(api("GET", V1 + "/mcp-servers/nope", key=self.key).status, 400)
        self.assertEqual(api("GET", V1 + "/mcp-servers/mcp_" + "0" * 32, key=self.key).status, 404)
        other = new_org(uniq("mcp-other"))["api_key"]
        s = self.create({"name": uniq("mine"), "url": "https://x.example/mcp"})
        self.assertEqual(api("GET", V1 + "/mcp-servers/" + s["id"], key=other).status, 404)

    def test_organization_limit(self):
        # org_max_mcp_servers (50 in the test stack's configuration)
        key = new_org(uniq("mcp-limit"))["api_key"]
        made = []
        for i in range(60):
            r = api("POST", V1 + "/mcp-servers", {"name": "s%d" % i, "url": "https://x.example/mcp"},
                    key=key)
            if r.status != 201:
                break
            made.append(r.json["id"])
        self.assertEqual(len(made), 50)
        self.assertEqual((r.status, r.json["code"]), (429, "org_mcp_server_limit"), r.text)
        self.assertIn("org_max_mcp_servers", r.json["error"])
        # archived ones do not count
        self.assertEqual(api("DELETE", V1 + "/mcp-servers/" + made[0], key=key).status, 204)
        r = api("POST", V1 + "/mcp-servers", {"name": "again", "url": "https://x.example/mcp"}, key=key)
        self.assertEqual(r.status, 201, r.text)

    def test_references(self):
        s = self.create({"name": uniq("ref"), "url": "https://x.example/mcp"})
        ref = "mcp:" + s["id"]
        # capabilities lists the active servers
        caps = api("GET", V1 + "/capabilities?limit=100", key=self.member).json["data"]
        mine = [c for c in caps if c.get("is_mcp")]
        self.assertIn(ref, [c["id"] for c in mine])
        # an agent, a harness, a session may use it
        a = api("POST", V1 + "/agents", {"name": uniq("ag"), "capabilities": [{"ref": ref}],
                                         "mcpServers": {"docs": {"url": "https://docs.example/mcp",
                                                                 "headers": {"X-K": "v"}}}},
                key=self.key)
        self.assertEqual(a.status, 201, a.text)
        self.assertEqual(a.json["capabilities"], [{"ref": ref, "config": {}}])
        self.assertEqual(a.json["mcpServers"], {"docs": {"url": "https://docs.example/mcp",
                                                         "headers": {"X-K": "v"}}})
        g = api("GET", V1 + "/agents/" + a.json["id"], key=self.key)
        self.assertEqual(g.json["mcpServers"]["docs"]["url"], "https://docs.example/mcp")
        h = api("POST", V1 + "/harnesses", {"name": uniq("hn"), "capabilities": [ref]}, key=self.key)
        self.assertEqual(h.status, 201, h.text)
        self.assertEqual(h.json["mcpServers"], {})
        ses = api("POST", V1 + "/sessions", {"agent_id": a.json["id"], "capabilities": [{"ref": ref}],
                                             "mcpServers": {"x": {"url": "https://x.example/mcp"}}},
                  key=self.key)
        self.assertEqual(ses.status, 201, ses.text)
        self.assertEqual(ses.json["mcpServers"], {"x": {"url": "https://x.example/mcp"}})
        g = api("GET", V1 + "/sessions/" + ses.json["id"], key=self.key)
        self.assertEqual(g.json["mcpServers"], {"x": {"url": "https://x.example/mcp"}})
        # refs that name no active server of this organization: 400
        other = new_org(uniq("mcp-o2"))["api_key"]
        theirs = api("POST", V1 + "/mcp-servers", {"name": "t", "url": "https://x.example/"},
                     key=other).json["id"]
        d = self.create({"name": uniq("dis"), "url": "https://x.example/mcp"})
        api("PATCH", V1 + "/mcp-servers/" + d["id"], {"status": "disabled"}, key=self.key)
        for bad in ("mcp:" + theirs, "mcp:" + d["id"], "mcp:mcp_" + "0" * 32, "mcp:nope", "mcp:"):
            for path, body in (("/agents", {"name": uniq("x")}), ("/harnesses", {"name": uniq("x")}),
                               ("/sessions", {"agent_id": a.json["id"]})):
                with self.subTest(ref=bad, path=path):
                    body = dict(body, capabilities=[{"ref": bad}])
                    r = api("POST", V1 + path, body, key=self.key)
                    self.assertEqual(r.status, 400, r.text)
        # the same server twice
        r = api("POST", V1 + "/agents", {"name": uniq("x"), "capabilities": [ref, ref]}, key=self.key)
        self.assertEqual(r.status, 400, r.text)
        # bad inline maps
        for m in ([], {"a": "https://x"}, {"a": {}}, {"a": {"url": "gopher://x"}},
                  {"a": {"url": "https://x", "headers": {"X": "a\r\nb"}}}, {"": {"url": "https://x"}},
                  {("s%d" % i): {"url": "https://x"} for i in range(17)}):
            with self.subTest(map=m):
                r = api("POST", V1 + "/agents", {"name": uniq("x"), "mcpServers": m}, key=self.key)
                self.assertEqual(r.status, 400, r.text)
                r = api("POST", V1 + "/sessions", {"agent_id": a.json["id"], "mcpServers": m},
                        key=self.key)
                self.assertEqual(r.status, 400, r.text)
        # patch an agent's map
        p = api("PATCH", V1 + "/agents/" + a.json["id"], {"mcpServers": {}}, key=self.key)
        self.assertEqual(p.status, 200, p.text)
        self.assertEqual(p.json["mcpServers"], {})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=30):
    def up():
        if proc.poll() is not None:
            raise AssertionError("the server exited (%s)" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_until(up, timeout=timeout, interval=0.1, what="port %d" % port)


def start_everything():
    """The MCP reference server on 127.0.0.1: (Popen, url)."""
    if not os.path.isdir(os.path.join(HERE, "..", "node_modules", "@modelcontextprotocol",
                                      "server-everything")):
        raise AssertionError("tests/node_modules lacks @modelcontextprotocol/server-everything "
                             "(tests/run installs tests/package-lock.json with npm ci)")
    port = free_port()
    log = open(os.path.join(HOME, "log", "mcp-everything.log"), "ab")
    p = subprocess.Popen(["node", os.path.join(HERE, "mcp_everything.mjs")], cwd=HERE,
                         env=dict(os.environ, PORT=str(port)), stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    log.close()
    wait_port(port, p)
    return p, "http://127.0.0.1:%d/mcp" % port


def start_standin(log=None):
    """The stand-in (mcp_standin.py) on 127.0.0.1: (Popen, base url)."""
    env = dict(os.environ)
    if log:
        env["MCP_STANDIN_LOG"] = log
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "mcp_standin.py")], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(p.stdout.readline())
    return p, "http://127.0.0.1:%d" % port


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait(timeout=10)


class Turns(unittest.TestCase):
    """Turns that use MCP tools, on a runner of our own that allows
    127.0.0.1 (guard_allow_mcp) with short MCP time and size limits, while
    the stack's runner is paused so the turns are ours."""

    ENV = dict(EVERRUNS_GUARD_ALLOW_MCP="127.0.0.1", EVERRUNS_MCP_CALL_TIMEOUT_S=4,
               EVERRUNS_MCP_LIST_TIMEOUT_S=3, EVERRUNS_MCP_MAX_RESPONSE_KB=64,
               EVERRUNS_MCP_CONNECT_TIMEOUT_S=2)

    @classmethod
    def start_our_runner(cls):
        cls.runner = start_runner("runner-mcp", **cls.ENV)
        wait_until(lambda: psql("SELECT count(*) FROM runners WHERE pid = $1 AND "
                                "seen_at > now() - interval '3 s'", cls.runner.pid)[0][0] == "1",
                   timeout=10, what="our runner")

    @classmethod
    def setUpClass(cls):
        cls.key = new_org(uniq("mcp-turns"))["api_key"]
        cls.agent = api("GET", V1 + "/agents/assistant", key=cls.key).json["id"]
        cls.procs = []
        cls.log = os.path.join(HOME, "log", "mcp-standin-%s.jsonl" % os.urandom(3).hex())
        cls.paused = stack_pid("runner")
        os.kill(cls.paused, signal.SIGSTOP)
        cls.runner = None
        try:
            ev, cls.ev_url = start_everything()
            cls.procs.append(ev)
            st, cls.st_url = start_standin(cls.log)
            cls.procs.append(st)
            cls.start_our_runner()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.runner:
            cls.runner.send_signal(signal.SIGTERM)
            try:
                cls.runner.wait(timeout=15)
            except Exception:
                cls.runner.kill()
        os.kill(cls.paused, signal.SIGCONT)
        for p in cls.procs:
            stop(p)

    def server(self, url, name=None, **extra):
        r = api("POST", V1 + "/mcp-servers", dict({"name": name or uniq("srv"), "url": url}, **extra),
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json

    def session(self, caps=(), inline=None):
        body = {"agent_id": self.agent, "capabilities": [{"ref": c} for c in caps]}
        if inline:
            body["mcpServers"] = inline
        r = api("POST", V1 + "/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def call(self, sid, tool, args, timeout=30):
        """One turn in which the model (llmsim) calls tool(args): its
        events; it must end."""
        t0 = time.monotonic()
        r = send(self.key, sid, "#tool %s %s" % (tool, json.dumps(args)))
        self.assertEqual(r.status, 201, r.text)
        evs = wait_idle(self.key, sid, r.json["sequence"], timeout=timeout)
        self.elapsed = time.monotonic() - t0
        return evs

    def completed(self, evs, n=1):
        done = [e["data"] for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(len(done), n, [e["type"] for e in evs])
        self.assertEqual(evs[-2]["type"], "turn.completed", evs[-2])
        return done[0] if n == 1 else done

    def test_list_and_call_the_reference_server(self):
        s = self.server(self.ev_url, name="everything")
        sid = self.session(["mcp:" + s["id"]])
        d = self.completed(self.call(sid, "everything__echo", {"message": "hello mcp"}))
        self.assertTrue(d["success"], d)
        self.assertEqual(d["tool_name"], "everything__echo")
        self.assertEqual(d["result"], [{"type": "text", "text": "Echo: hello mcp"}])
        d = self.completed(self.call(sid, "everything__get-sum", {"a": 2, "b": 40}))
        self.assertTrue(d["success"], d)
        self.assertIn("42", d["result"][0]["text"])
        # the reasoning that follows sent the tools to the model: the
        # reason.started carries nothing of them, but a tool of another
        # server name is not there
        d = self.completed(self.call(sid, "nothere__echo", {"message": "x"}))
        self.assertFalse(d["success"])
        self.assertIn("no tool named", d["error"])

    def test_tools_reach_the_provider_in_both_wire_formats(self):
        s = self.server(self.ev_url, name="everything-w")
        fake = Fake()
        try:
            providers = fake_providers(fake, self.key)
            for kind in ("openai_completions", "anthropic"):
                with self.subTest(kind=kind):
                    name = uniq("m")
                    m = api("POST", V1 + "/llm-providers/%s/models" % providers[kind],
                            {"model_id": name, "capabilities": ["chat", "tools"]}, key=self.key)
                    self.assertEqual(m.status, 201, m.text)
                    fake.script(name, {"tool_calls": [{"id": "call_m", "name": "everything-w__echo",
                                                       "arguments": '{"message":"via the wire"}'}]},
                                {"text": "It echoed."})
                    r = api("POST", V1 + "/sessions", {"agent_id": self.agent, "model_id": m.json["id"],
                                                       "capabilities": [{"ref": "mcp:" + s["id"]}]},
                            key=self.key)
                    sid = r.json["id"]
                    msg = send(self.key, sid, "echo something")
                    evs = wait_idle(self.key, sid, msg.json["sequence"], timeout=30)
                    d = self.completed(evs)
                    self.assertTrue(d["success"], d)
                    self.assertEqual(d["result"][0]["text"], "Echo: via the wire")
                    reqs = fake.requests(name)
                    self.assertEqual(len(reqs), 2)
                    tools = reqs[0]["body"]["tools"]
                    if kind == "openai_completions":
                        defs = {t["function"]["name"]: t["function"] for t in tools}
                        params = defs["everything-w__echo"]["parameters"]
                        last = reqs[1]["body"]["messages"][-1]
                        self.assertEqual((last["role"], last["tool_call_id"]), ("tool", "call_m"))
                        self.assertIn("Echo: via the wire", json.dumps(last["content"]))
                    else:
                        defs = {t["name"]: t for t in tools}
                        params = defs["everything-w__echo"]["input_schema"]
                        self.assertIn("Echo: via the wire", json.dumps(reqs[1]["body"]["messages"][-1]))
                    self.assertIn("message", params["properties"])
                    self.assertIn("everything-w__get-sum", defs)
        finally:
            fake.stop()

    def test_approval_writes_asks_before_an_mcp_call(self):
        # approval "writes": every MCP tool reaches out, so it asks first;
        # approved, it runs when the turn resumes (before any listing);
        # denied, the server never sees the call
        s = self.server(self.st_url + "/mcp")
        for approved in (True, False):
            with self.subTest(approved=approved):
                r = api("POST", V1 + "/sessions", {"agent_id": self.agent, "approval": "writes",
                                                   "capabilities": [{"ref": "mcp:" + s["id"]}]},
                        key=self.key)
                self.assertEqual(r.status, 201, r.text)
                sid = r.json["id"]
                text = "approved %s" % approved
                m = send(self.key, sid, "#tool %s__ok %s" % (s["name"], json.dumps({"text": text})))
                since = m.json["sequence"]
                wait_until(lambda: api("GET", V1 + "/sessions/" + sid, key=self.key).json["status"]
                           == "waitingfortoolresults", timeout=15, what="waiting")
                asked = [e for e in events(self.key, sid, since) if e["type"] == "tool.approval_requested"]
                self.assertEqual(len(asked), 1)
                call = asked[0]["data"]["tool_calls"][0]
                self.assertEqual(call["name"], s["name"] + "__ok")
                open(self.log, "w").close()
                a = api("POST", V1 + "/sessions/%s/tool-approvals" % sid,
                        {"approvals": [{"tool_call_id": call["id"], "approved": approved,
                                        "reason": "no"}]}, key=self.key)
                self.assertEqual(a.status, 200, a.text)
                d = self.completed(wait_idle(self.key, sid, since, timeout=30))
                calls = [json.loads(l) for l in open(self.log)]
                if approved:
                    self.assertTrue(d["success"], d)
                    self.assertEqual(d["result"][0]["text"], text)
                    self.assertIn("tools/call", [c["method"] for c in calls])
                else:
                    self.assertFalse(d["success"])
                    self.assertIn("denied", d["error"])
                    self.assertNotIn("tools/call", [c["method"] for c in calls])

    def test_tool_error_from_the_reference_server(self):
        s = self.server(self.ev_url, name="ev-err")
        sid = self.session(["mcp:" + s["id"]])
        # echo without its required argument: the server refuses it
        d = self.completed(self.call(sid, "ev-err__echo", {}))
        self.assertFalse(d["success"], d)
        self.assertEqual(d["status"], "error")
        # the server's own refusal, not a tool missing here
        self.assertNotIn("no tool named", d["error"])
        self.assertIn("message", d["error"])

    def test_inline_server_and_headers(self):
        sid = self.session(inline={"inl": {"url": self.st_url + "/mcp", "headers": {"X-Standin": "inline-h"}}})
        d = self.completed(self.call(sid, "inl__ok", {"text": "from inline"}))
        self.assertTrue(d["success"], d)
        self.assertEqual(d["result"][0]["text"], "from inline")
        seen = [json.loads(l) for l in open(self.log)]
        self.assertIn("inline-h", [x["x"] for x in seen])

    def test_registered_server_key_and_session_protocol(self):
        s = self.server(self.st_url + "/mcp", api_key="sk-mcp-test", headers={"X-Standin": "reg-h"})
        sid = self.session(["mcp:" + s["id"]])
        open(self.log, "w").close()
        d = self.completed(self.call(sid, s["name"] + "__sse", {"text": "over sse"}))
        self.assertTrue(d["success"], d)
        self.assertEqual(d["result"][0]["text"], "over sse")
        # a stream left open after the response: the call did not wait for it
        self.assertLess(self.elapsed, 10)
        seen = [json.loads(l) for l in open(self.log)]
        methods = [x["method"] for x in seen]
        self.assertEqual(methods[:3], ["initialize", "notifications/initialized", "tools/list"], seen)
        self.assertIn("tools/call", methods)
        for x in seen:
            self.assertEqual((x["auth"], x["x"]), ("Bearer sk-mcp-test", "reg-h"), x)
            if x["method"] != "initialize":
                self.assertTrue(x["session"] and x["session"].startswith("standin-"), x)
                self.assertEqual(x["version"], "2025-06-18", x)
        # the tool list is cached: a second turn does not list again
        open(self.log, "w").close()
        self.completed(self.call(sid, s["name"] + "__ok", {"text": "again"}))
        methods = [json.loads(l)["method"] for l in open(self.log)]
        self.assertNotIn("tools/list", methods)
        self.assertIn("tools/call", methods)
        # a name outside [A-Za-z0-9_-] is sanitised
        d = self.completed(self.call(sid, s["name"] + "__odd_name_with_dots", {}))
        self.assertIn("standin", json.dumps(d) if d["success"] else d["error"] + "standin")

    def test_tool_errors(self):
        s = self.server(self.st_url + "/mcp")
        sid = self.session(["mcp:" + s["id"]])
        n = s["name"]
        d = self.completed(self.call(sid, n + "__fail", {}))
        self.assertFalse(d["success"])
        self.assertIn("the standin failed on purpose", d["error"])
        d = self.completed(self.call(sid, n + "__rpcerr", {}))
        self.assertFalse(d["success"])
        self.assertIn("bad arguments", d["error"])
        d = self.completed(self.call(sid, n + "__huge", {"kb": 200}))
        self.assertFalse(d["success"])
        self.assertIn("larger than 64 KiB", d["error"])
        d = self.completed(self.call(sid, n + "__huge", {"kb": 8}))
        self.assertTrue(d["success"], d)

    def test_slow_server_times_out(self):
        s = self.server(self.st_url + "/mcp")
        sid = self.session(["mcp:" + s["id"]])
        d = self.completed(self.call(sid, s["name"] + "__hang", {}))
        self.assertFalse(d["success"])
        self.assertIn("did not answer within 4 s", d["error"])
        print("\n  a server that never answers (mcp_call_timeout_s = 4): the turn ended in %.2f s"
              % self.elapsed)
        self.assertLess(self.elapsed, 12)

    def test_slow_server_cancelled(self):
        s = self.server(self.ev_url, name="ev-slow")
        sid = self.session(["mcp:" + s["id"]])
        r = send(self.key, sid, "#tool ev-slow__trigger-long-running-operation " +
                 json.dumps({"duration": 30, "steps": 3}))
        self.assertEqual(r.status, 201, r.text)
        wait_until(lambda: events(self.key, sid, r.json["sequence"], types="tool.started"),
                   timeout=15, what="tool.started")
        time.sleep(0.5)
        t0 = time.monotonic()
        c = api("POST", V1 + "/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual(c.json["status"], "cancelled", c.text)
        wait_until(lambda: api("GET", V1 + "/sessions/" + sid, key=self.key).json["status"] == "idle",
                   timeout=5, interval=0.01, what="idle after cancel")
        took = time.monotonic() - t0
        print("\n  cancel during an MCP call (a 30 s operation): idle %.3f s after the cancel" % took)
        self.assertLess(took, 2.0)
        types = [e["type"] for e in events(self.key, sid, r.json["sequence"])]
        self.assertIn("turn.cancelled", types)
        self.assertNotIn("turn.completed", types)
        # the session goes on
        d = self.completed(self.call(sid, "ev-slow__echo", {"message": "after"}))
        self.assertTrue(d["success"], d)

    def test_takeover_mid_call(self):
        # the runner dies during a call; the runner that takes the turn
        # over acts on that call again before any listing
        s = self.server(self.st_url + "/mcp")
        sid = self.session(["mcp:" + s["id"]])
        r = send(self.key, sid, "#tool %s__hang {}" % s["name"])
        self.assertEqual(r.status, 201, r.text)
        wait_until(lambda: events(self.key, sid, r.json["sequence"], types="tool.started"),
                   timeout=15, what="tool.started")
        self.runner.kill()
        self.runner.wait(timeout=10)
        self.start_our_runner()
        evs = wait_idle(self.key, sid, r.json["sequence"], timeout=30)
        d = self.completed(evs)
        self.assertFalse(d["success"])
        self.assertIn("did not answer within 4 s", d["error"])
        self.assertEqual(len([e for e in evs if e["type"] == "tool.started"]), 2)

    def test_server_dies_mid_call(self):
        p, url = start_standin()
        self.procs.append(p)
        s = self.server(url + "/mcp")
        sid = self.session(["mcp:" + s["id"]])
        d = self.completed(self.call(sid, s["name"] + "__die", {}))
        self.assertFalse(d["success"])
        self.assertIn("failed", d["error"])
        p.wait(timeout=5)
        # now it is down: its tools are gone, the turn goes on
        d = self.completed(self.call(sid, s["name"] + "__ok", {"text": "x"}))
        self.assertFalse(d["success"])

    def test_refused_address(self):
        # numeric addresses are refused at create (the API's list is
        # 127.0.0.0/8), registered or inline
        for url in ("http://169.254.169.254/mcp", "http://10.0.0.1:9/mcp", "http://[::1]:9/mcp"):
            r = api("POST", V1 + "/mcp-servers", {"name": uniq("r"), "url": url}, key=self.key)
            self.assertEqual(r.status, 400, r.text)
            self.assertIn("guard_allow_mcp", r.json["error"])
            r = api("POST", V1 + "/sessions", {"agent_id": self.agent,
                                               "mcpServers": {"r": {"url": url}}}, key=self.key)
            self.assertEqual(r.status, 400, r.text)
        # our runner's list is 127.0.0.1 only: what passed the API is
        # refused on connection, before any packet (nobody listens there)
        port = self.st_url.rsplit(":", 1)[1]
        logf = os.path.join(HOME, "log", "runner-mcp.log")
        for url in ("http://127.0.0.2:%s/mcp" % port, "http://2130706434:%s/mcp" % port,
                    "http://0x7f000002:%s/mcp" % port):
            with self.subTest(url=url):
                s = self.server(url)
                sid = self.session(["mcp:" + s["id"]])
                d = self.completed(self.call(sid, s["name"] + "__ok", {"text": "x"}))
                self.assertFalse(d["success"])
                self.assertIn("no tool named", d["error"])
                lines = [l for l in open(logf, errors="replace") if "(%s): no tools" % url in l]
                self.assertEqual(len(lines), 1, url)
                self.assertIn("the address guard refused its address", lines[0])
                self.assertIn("guard_allow_mcp", lines[0])

    def test_listing_failures_leave_the_turn_going(self):
        for path in ("/hang-list", "/nothing-here-404"):
            with self.subTest(path=path):
                s = self.server(self.st_url + path)
                sid = self.session(["mcp:" + s["id"]])
                d = self.completed(self.call(sid, s["name"] + "__ok", {"text": "x"}))
                self.assertFalse(d["success"])
                self.assertIn("no tool named", d["error"])
                logf = os.path.join(HOME, "log", "runner-mcp.log")
                lines = [l for l in open(logf, errors="replace")
                         if "(%s): no tools" % (self.st_url + path) in l]
                self.assertEqual(len(lines), 1, path)
                self.assertIn("did not answer within 3 s" if "hang" in path else "HTTP 404", lines[0])

    def test_generated_garbage(self):
        seed = int(os.environ.get("EVR_MCP_SEED") or random.randrange(1 << 30))
        print("\n  test_mcp garbage seed: %d (EVR_MCP_SEED replays it)" % seed)
        rnd = random.Random(seed)
        s = self.server(self.st_url + "/mcp")
        sid = self.session(["mcp:" + s["id"]])
        for i in range(24):
            k = rnd.randrange(1 << 30)
            with self.subTest(call=i, seed=k):
                d = self.completed(self.call(sid, s["name"] + "__garbage", {"seed": k}, timeout=30))
                self.assertIn(d["status"], ("success", "error"))
                # it reached the stand-in (listed, called)
                self.assertNotIn("no tool named", d.get("error", ""))
        for i in range(6):
            k = rnd.randrange(1 << 30)
            with self.subTest(listing=i, seed=k):
                g = self.server(self.st_url + "/garbage-list/%d" % k)
                sid2 = self.session(["mcp:" + g["id"]])
                self.completed(self.call(sid2, g["name"] + "__ok", {"text": "x"}, timeout=30))


if __name__ == "__main__":
    unittest.main()
