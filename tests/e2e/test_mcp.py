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
import unittest

from evr import api, new_org, psql, stack_pid, start_runner, wait_until

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


if __name__ == "__main__":
    unittest.main()
