"""API key roles (fcgi/api/router.c, sql/010_key_roles.sql): every route of
the router's table is called with a member key and with an admin key and
the status is checked against EXPECT below. The routes are read from the
router's source, so a route added without a row here fails this file, as
one added without a role fails the unit tests. Also: what a member may do
with keys (its own only, never an admin key), /auth/me, key expiry
(expires_at, expires_in_days; an expired key is a 401 on the api and on
everruns-sse), everruns-admin create-key --role and the CLI."""

import base64
import calendar
import json
import os
import re
import subprocess
import time
import unittest
import uuid

from evr import BASE, api, admin, admin_run, new_org, psql
from test_sse import Stream

V1 = "/api/v1"
SRC = os.environ.get("EVR_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BUILD = os.environ.get("EVR_BUILDDIR") or SRC
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def router_routes():
    """(method, pattern without /api/v1, role) of fcgi/api/router.c."""
    text = open(os.path.join(SRC, "fcgi", "api", "router.c")).read()
    table = text[text.index("routes[] = {"):]
    table = table[:table.index("\n};")]
    out = []
    for m, p, rest in re.findall(r'\{"(\w+)", (?:V1 )?"([^"]*)"([^{}]*?)\},', table, flags=re.S):
        role = re.search(r'\bR_\w+', rest)
        out.append((m, p, role.group(0) if role else None))
    assert len(out) > 40, out
    return out


def uniq(p):
    return p + "-" + uuid.uuid4().hex[:8]


def multipart(session):
    b = "----evrRoles" + uuid.uuid4().hex
    body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n" % b).encode() + PNG + \
        ("\r\n--%s\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\n%s\r\n--%s--\r\n"
         % (b, session, b)).encode()
    return body, "multipart/form-data; boundary=" + b


class Ctx:
    """The organization both keys belong to, and makers of fresh rows (a
    DELETE or a move needs its own victim for each caller)."""

    def __init__(self):
        org = new_org(uniq("roles"))
        self.admin = org["api_key"]
        r = api("POST", V1 + "/auth/api-keys", {"name": "m", "role": "member"}, key=self.admin)
        assert r.status == 201, r
        self.member = r.json["key"]
        self.member_id = r.json["id"]
        self.agent = api("GET", V1 + "/agents/assistant", key=self.admin).json["id"]
        self.session = self.new_session()
        self.put(self.session, "a/b.txt", "hello roles\n")
        models = api("GET", V1 + "/llm-models", key=self.admin).json["data"]
        self.model = models[0]["id"]
        self.harness = api("GET", V1 + "/harnesses", key=self.admin).json["data"][0]["id"]
        self.provider = self.ok("POST", "/llm-providers",
                                {"name": uniq("p"), "provider_type": "llmsim"})["id"]
        self.image = self.new_image()

    def ok(self, method, path, body=None, status=(200, 201)):
        r = api(method, V1 + path, body, key=self.admin)
        assert r.status in status, (method, path, r)
        return r.json

    def new_session(self):
        return self.ok("POST", "/sessions", {"agent_id": self.agent, "title": "roles"})["id"]

    def put(self, ses, path, text):
        r = api("PUT", V1 + "/sessions/%s/fs/%s" % (ses, path), raw=text.encode(),
                content_type="text/plain", key=self.admin)
        assert r.status in (200, 201), r

    def new_image(self):
        body, ctype = multipart(self.session)
        r = api("POST", V1 + "/images", raw=body, content_type=ctype, key=self.admin)
        assert r.status == 201, r
        return r.json["id"]


def alias(path):
    """/llm-providers... and /llm-models... under their later names."""
    for old, new in (("/llm-providers", "/providers"), ("/llm-models", "/models")):
        if path.startswith(old):
            return new + path[len(old):]
    return path


def via_alias(fn):
    """The call fn makes, through the alias of its path."""
    def call():
        path, kw = fn()
        return alias(path), kw
    return call


def calls(c, who):
    """(method, pattern) -> a function giving (path, kwargs of api())."""
    s = "/sessions/" + c.session
    key_for = c.member if who == "member" else c.admin

    def own_key():
        # a key the caller made itself (a member may revoke those)
        r = api("POST", V1 + "/auth/api-keys", {"name": "victim"}, key=key_for)
        assert r.status == 201, r
        return "/auth/api-keys/" + r.json["id"]

    def fresh(kind):
        if kind == "harness":
            return "/harnesses/" + c.ok("POST", "/harnesses", {"name": uniq("h")})["id"]
        if kind == "agent":
            return "/agents/" + c.ok("POST", "/agents", {"name": uniq("a")})["id"]
        if kind == "provider":
            return "/llm-providers/" + c.ok("POST", "/llm-providers",
                                            {"name": uniq("p"), "provider_type": "llmsim"})["id"]
        if kind == "mcp":
            return "/mcp-servers/" + c.ok("POST", "/mcp-servers",
                                          {"name": uniq("mcp"), "url": "https://mcp.example.com/mcp"})["id"]
        if kind == "model":
            return "/llm-models/" + c.ok("POST", "/llm-providers/%s/models" % c.provider,
                                         {"model_id": uniq("m")})["id"]
        if kind == "session":
            return "/sessions/" + c.new_session()
        if kind == "image":
            return "/images/" + c.new_image()
        raise KeyError(kind)

    def fs_file():
        name = uniq("f") + ".txt"
        c.put(c.session, name, "x")
        return name

    def upload():
        body, ctype = multipart(c.session)
        return "/images", {"raw": body, "content_type": ctype}

    J = lambda p, b=None: (p, {"body": b if b is not None else {}})
    G = lambda p: (p, {})
    table = {
        ("GET", "/health"): lambda: G("/health"),
        ("GET", "/metrics"): lambda: G("/metrics"),
        ("GET", "/auth/me"): lambda: G("/auth/me"),
        ("GET", "/auth/api-keys"): lambda: G("/auth/api-keys"),
        ("POST", "/auth/api-keys"): lambda: J("/auth/api-keys", {"name": "k"}),
        ("DELETE", "/auth/api-keys/{key_id}"): lambda: G(own_key()),
        ("GET", "/harnesses"): lambda: G("/harnesses"),
        ("POST", "/harnesses"): lambda: J("/harnesses", {"name": uniq("h")}),
        ("GET", "/harnesses/{harness_id_or_name}"): lambda: G("/harnesses/" + c.harness),
        ("PATCH", "/harnesses/{harness_id_or_name}"): lambda: J(fresh("harness"), {"description": "d"}),
        ("DELETE", "/harnesses/{harness_id_or_name}"): lambda: G(fresh("harness")),
        ("GET", "/agents"): lambda: G("/agents"),
        ("POST", "/agents"): lambda: J("/agents", {"name": uniq("a")}),
        ("GET", "/agents/{agent_id_or_name}"): lambda: G("/agents/" + c.agent),
        ("PATCH", "/agents/{agent_id_or_name}"): lambda: J(fresh("agent"), {"description": "d"}),
        ("DELETE", "/agents/{agent_id_or_name}"): lambda: G(fresh("agent")),
        ("GET", "/llm-providers"): lambda: G("/llm-providers"),
        ("POST", "/llm-providers"): lambda: J("/llm-providers", {"name": uniq("p"), "provider_type": "llmsim"}),
        ("GET", "/mcp-servers"): lambda: G("/mcp-servers"),
        ("POST", "/mcp-servers"): lambda: J("/mcp-servers", {"name": uniq("mcp"), "url": "https://mcp.example.com/mcp"}),
        ("GET", "/mcp-servers/{server_id}"): lambda: G(fresh("mcp")),
        ("PATCH", "/mcp-servers/{server_id}"): lambda: J(fresh("mcp"), {"description": "d"}),
        ("DELETE", "/mcp-servers/{server_id}"): lambda: G(fresh("mcp")),
        ("GET", "/llm-providers/{provider_id}"): lambda: G("/llm-providers/" + c.provider),
        ("PATCH", "/llm-providers/{provider_id}"): lambda: J(fresh("provider"), {"name": uniq("p")}),
        ("DELETE", "/llm-providers/{provider_id}"): lambda: G(fresh("provider")),
        ("GET", "/llm-providers/{provider_id}/models"): lambda: G("/llm-providers/%s/models" % c.provider),
        ("POST", "/llm-providers/{provider_id}/models"):
            lambda: J("/llm-providers/%s/models" % c.provider, {"model_id": uniq("m")}),
        ("GET", "/llm-models"): lambda: G("/llm-models"),
        ("GET", "/llm-models/{model_id}"): lambda: G("/llm-models/" + c.model),
        ("PATCH", "/llm-models/{model_id}"): lambda: J(fresh("model"), {"display_name": "d"}),
        ("DELETE", "/llm-models/{model_id}"): lambda: G(fresh("model")),
        ("GET", "/capabilities"): lambda: G("/capabilities"),
        ("GET", "/capabilities/{capability_id}"): lambda: G("/capabilities/web_fetch"),
        ("GET", "/sessions"): lambda: G("/sessions"),
        ("POST", "/sessions"): lambda: J("/sessions", {"agent_id": c.agent}),
        ("POST", "/sessions/chat"): lambda: J("/sessions/chat"),
        ("GET", "/sessions/{session_id}"): lambda: G(s),
        ("PATCH", "/sessions/{session_id}"): lambda: J(s, {"title": "t"}),
        ("DELETE", "/sessions/{session_id}"): lambda: G(fresh("session")),
        ("POST", "/sessions/{session_id}/cancel"): lambda: J(s + "/cancel"),
        ("POST", "/sessions/{session_id}/tool-results"):
            lambda: J(s + "/tool-results", {"tool_results": [{"tool_call_id": "call_x", "result": "r"}]}),
        ("POST", "/sessions/{session_id}/tool-approvals"):
            lambda: J(s + "/tool-approvals", {"approvals": [{"tool_call_id": "call_x", "approved": True}]}),
        ("POST", "/sessions/{session_id}/messages"):
            lambda: J(fresh("session") + "/messages",
                      {"message": {"content": [{"type": "text", "text": "hi"}]}}),
        ("GET", "/sessions/{session_id}/messages"): lambda: G(s + "/messages"),
        ("GET", "/sessions/{session_id}/fs"): lambda: G(s + "/fs"),
        ("POST", "/sessions/{session_id}/fs/_/stat"): lambda: J(s + "/fs/_/stat", {"path": "/a/b.txt"}),
        ("POST", "/sessions/{session_id}/fs/_/move"):
            lambda: J(s + "/fs/_/move", {"src_path": "/" + fs_file(), "dst_path": "/" + uniq("mv")}),
        ("POST", "/sessions/{session_id}/fs/_/copy"):
            lambda: J(s + "/fs/_/copy", {"src_path": "/a/b.txt", "dst_path": "/" + uniq("cp")}),
        ("POST", "/sessions/{session_id}/fs/_/grep"): lambda: J(s + "/fs/_/grep", {"pattern": "hello"}),
        ("GET", "/sessions/{session_id}/fs/_/download/{path*}"): lambda: G(s + "/fs/_/download/a/b.txt"),
        ("GET", "/sessions/{session_id}/fs/{path*}"): lambda: G(s + "/fs/a/b.txt"),
        ("POST", "/sessions/{session_id}/fs/{path*}"):
            lambda: (s + "/fs/" + uniq("n"), {"raw": b"x", "content_type": "text/plain"}),
        ("PUT", "/sessions/{session_id}/fs/{path*}"):
            lambda: (s + "/fs/" + uniq("n"), {"raw": b"x", "content_type": "text/plain"}),
        ("DELETE", "/sessions/{session_id}/fs/{path*}"): lambda: G(s + "/fs/" + fs_file()),
        ("GET", "/images"): lambda: G("/images"),
        ("POST", "/images"): upload,
        ("GET", "/images/{image_id}"): lambda: G("/images/" + c.image),
        ("GET", "/images/{image_id}/content"): lambda: G("/images/%s/content" % c.image),
        ("DELETE", "/images/{image_id}"): lambda: G(fresh("image")),
    }
    # the later upstream document's names (/providers, /models) are
    # aliases: the same call through the alias path
    for (m, path), fn in list(table.items()):
        if path.startswith(("/llm-providers", "/llm-models")):
            table[(m, alias(path))] = via_alias(fn)
    return table


# (method, pattern) -> (status with a member key, status with an admin key).
# A route of the router missing here fails test_every_route.
A = 403  # what a member gets on an admin route
EXPECT = {
    ("GET", "/health"): (200, 200),
    ("GET", "/metrics"): (200, 200),
    ("GET", "/auth/me"): (200, 200),
    ("GET", "/auth/api-keys"): (200, 200),
    ("POST", "/auth/api-keys"): (201, 201),
    ("DELETE", "/auth/api-keys/{key_id}"): (204, 204),
    ("GET", "/harnesses"): (200, 200),
    ("POST", "/harnesses"): (A, 201),
    ("GET", "/harnesses/{harness_id_or_name}"): (200, 200),
    ("PATCH", "/harnesses/{harness_id_or_name}"): (A, 200),
    ("DELETE", "/harnesses/{harness_id_or_name}"): (A, 204),
    ("GET", "/agents"): (200, 200),
    ("POST", "/agents"): (A, 201),
    ("GET", "/agents/{agent_id_or_name}"): (200, 200),
    ("PATCH", "/agents/{agent_id_or_name}"): (A, 200),
    ("DELETE", "/agents/{agent_id_or_name}"): (A, 204),
    ("GET", "/llm-providers"): (A, 200),
    ("POST", "/llm-providers"): (A, 201),
    ("GET", "/llm-providers/{provider_id}"): (A, 200),
    ("PATCH", "/llm-providers/{provider_id}"): (A, 200),
    ("DELETE", "/llm-providers/{provider_id}"): (A, 204),
    ("GET", "/llm-providers/{provider_id}/models"): (A, 200),
    ("POST", "/llm-providers/{provider_id}/models"): (A, 201),
    ("GET", "/mcp-servers"): (200, 200),
    ("POST", "/mcp-servers"): (A, 201),
    ("GET", "/mcp-servers/{server_id}"): (200, 200),
    ("PATCH", "/mcp-servers/{server_id}"): (A, 200),
    ("DELETE", "/mcp-servers/{server_id}"): (A, 204),
    ("GET", "/llm-models"): (200, 200),
    ("GET", "/llm-models/{model_id}"): (200, 200),
    ("PATCH", "/llm-models/{model_id}"): (A, 200),
    ("DELETE", "/llm-models/{model_id}"): (A, 204),
    ("GET", "/capabilities"): (200, 200),
    ("GET", "/capabilities/{capability_id}"): (200, 200),
    ("GET", "/sessions"): (200, 200),
    ("POST", "/sessions"): (201, 201),
    ("POST", "/sessions/chat"): ((200, 201), (200, 201)),
    ("GET", "/sessions/{session_id}"): (200, 200),
    ("PATCH", "/sessions/{session_id}"): (200, 200),
    ("DELETE", "/sessions/{session_id}"): (204, 204),
    ("POST", "/sessions/{session_id}/cancel"): (200, 200),
    ("POST", "/sessions/{session_id}/tool-results"): (409, 409),
    ("POST", "/sessions/{session_id}/tool-approvals"): (409, 409),
    ("POST", "/sessions/{session_id}/messages"): (201, 201),
    ("GET", "/sessions/{session_id}/messages"): (200, 200),
    ("GET", "/sessions/{session_id}/fs"): (200, 200),
    ("POST", "/sessions/{session_id}/fs/_/stat"): (200, 200),
    ("POST", "/sessions/{session_id}/fs/_/move"): (200, 200),
    ("POST", "/sessions/{session_id}/fs/_/copy"): (201, 201),
    ("POST", "/sessions/{session_id}/fs/_/grep"): (200, 200),
    ("GET", "/sessions/{session_id}/fs/_/download/{path*}"): (200, 200),
    ("GET", "/sessions/{session_id}/fs/{path*}"): (200, 200),
    ("POST", "/sessions/{session_id}/fs/{path*}"): (201, 201),
    ("PUT", "/sessions/{session_id}/fs/{path*}"): (201, 201),
    ("DELETE", "/sessions/{session_id}/fs/{path*}"): (200, 200),
    ("GET", "/images"): (200, 200),
    ("POST", "/images"): (201, 201),
    ("GET", "/images/{image_id}"): (200, 200),
    ("GET", "/images/{image_id}/content"): (200, 200),
    ("DELETE", "/images/{image_id}"): (204, 204),
}
EXPECT.update({(m, alias(p)): v for (m, p), v in EXPECT.items() if alias(p) != p})


class Roles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Ctx()

    def test_every_route(self):
        routes = router_routes()
        missing = [(m, p) for m, p, _ in routes if (m, p) not in EXPECT]
        self.assertEqual(missing, [], "routes of the router without a row in EXPECT")
        norole = [(m, p) for m, p, r in routes if r in (None, "R_UNSET")]
        self.assertEqual(norole, [], "routes of the router without a role")
        stale = set(EXPECT) - {(m, p) for m, p, _ in routes}
        self.assertEqual(stale, set(), "rows of EXPECT the router does not have")
        bad = []
        for who in ("member", "admin"):
            key = self.c.member if who == "member" else self.c.admin
            table = calls(self.c, who)
            for m, p, role in routes:
                path, kw = table[(m, p)]()
                url = path if path in ("/health", "/metrics") else V1 + path
                r = api(m, url, key=key, **kw)
                want = EXPECT[(m, p)][0 if who == "member" else 1]
                want = want if isinstance(want, tuple) else (want,)
                if r.status not in want:
                    bad.append((who, m, p, r.status, want, r.text[:200]))
                elif r.status == 403:
                    # names the role needed, in the API's error shape
                    if r.json is None or r.json.get("code") != "forbidden" or \
                            "'admin'" not in r.json.get("error", ""):
                        bad.append((who, m, p, "403 body", r.text[:200]))
                if role == "R_ADMIN" and who == "member" and r.status != 403:
                    bad.append((who, m, p, "an admin route let a member in", r.status))
        self.assertEqual(bad, [])

    def test_me_reports_the_role(self):
        for key, role in ((self.c.admin, "admin"), (self.c.member, "member")):
            r = api("GET", V1 + "/auth/me", key=key)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["role"], role)
            self.assertEqual(r.json["roles"], [role])

    def test_member_keys(self):
        c = self.c
        # a member cannot mint an admin key
        r = api("POST", V1 + "/auth/api-keys", {"role": "admin"}, key=c.member)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.json["code"], "forbidden")
        self.assertIn("admin", r.json["error"])
        r = api("POST", V1 + "/auth/api-keys", {"role": "root"}, key=c.admin)
        self.assertEqual(r.status, 400, r)
        # the default role is member
        k = api("POST", V1 + "/auth/api-keys", {"name": "dflt"}, key=c.admin).json
        self.assertEqual(k["role"], "member")
        adm = api("POST", V1 + "/auth/api-keys", {"role": "admin"}, key=c.admin).json
        self.assertEqual(adm["role"], "admin")
        # a member sees only itself and the keys it made
        mine = api("POST", V1 + "/auth/api-keys", {"name": "mine"}, key=c.member).json
        seen = {x["id"] for x in api("GET", V1 + "/auth/api-keys", key=c.member).json["data"]}
        self.assertNotIn(adm["id"], seen)
        self.assertNotIn(k["id"], seen)
        self.assertIn(mine["id"], seen)
        self.assertIn(c.member_id, seen)
        every = {x["id"] for x in api("GET", V1 + "/auth/api-keys?limit=100", key=c.admin).json["data"]}
        self.assertTrue({adm["id"], k["id"], mine["id"], c.member_id} <= every)
        # nor revoke another's: the admin key survives a member's attempt
        r = api("DELETE", V1 + "/auth/api-keys/" + adm["id"], key=c.member)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(api("GET", V1 + "/auth/me", key=adm["key"]).status, 200)
        self.assertEqual(api("DELETE", V1 + "/auth/api-keys/" + mine["id"], key=c.member).status, 204)
        self.assertEqual(api("GET", V1 + "/auth/me", key=mine["key"]).status, 401)
        # revoking a member key revokes what it minted (and so on down);
        # keys an admin key made stay
        m = api("POST", V1 + "/auth/api-keys", {"name": "m2"}, key=c.admin).json
        child = api("POST", V1 + "/auth/api-keys", {"name": "c"}, key=m["key"]).json
        grand = api("POST", V1 + "/auth/api-keys", {"name": "g"}, key=child["key"]).json
        self.assertEqual(api("GET", V1 + "/auth/me", key=grand["key"]).status, 200)
        self.assertEqual(api("DELETE", V1 + "/auth/api-keys/" + m["id"], key=c.admin).status, 204)
        for k in (m, child, grand):
            self.assertEqual(api("GET", V1 + "/auth/me", key=k["key"]).status, 401, k["name"])
        self.assertEqual(api("GET", V1 + "/auth/me", key=adm["key"]).status, 200)
        self.assertEqual(api("GET", V1 + "/auth/me", key=c.member).status, 200)

    def test_expiry(self):
        c = self.c
        for body in ({"expires_at": "2020-01-01T00:00:00Z"}, {"expires_at": "tomorrow"},
                     {"expires_at": "2031-02-31T00:00:00Z"},
                     {"expires_at": "2030-01-01T00:00:00Z", "expires_in_days": 3},
                     {"expires_in_days": 0}):
            r = api("POST", V1 + "/auth/api-keys", body, key=c.admin)
            self.assertEqual(r.status, 400, (body, r))
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
        k = api("POST", V1 + "/auth/api-keys", {"expires_at": soon}, key=c.admin).json
        self.assertTrue(k["expires_at"].startswith(soon[:19]), k)
        me = api("GET", V1 + "/auth/me", key=k["key"])
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json["api_key_expires_at"], k["expires_at"])
        r = api("GET", V1 + "/sessions/%s/events" % c.session, key=k["key"])
        self.assertEqual(r.status, 200, r)
        # a stream of the key ends when the key does
        st = Stream(c.session, k["key"], timeout=10)
        self.assertEqual(st.status, 200)
        try:
            frames = st.until(lambda f: f.get("event") == "disconnecting", limit=50)
        finally:
            st.close()
        self.assertEqual(frames[-1]["data"]["reason"], "key_expired")
        time.sleep(max(0.0, calendar.timegm(time.strptime(soon, "%Y-%m-%dT%H:%M:%SZ"))
                       - time.time() + 0.5))
        self.assertEqual(api("GET", V1 + "/auth/me", key=k["key"]).status, 401)
        # everruns-sse refuses it too
        self.assertEqual(api("GET", V1 + "/sessions/%s/events" % c.session, key=k["key"]).status, 401)
        self.assertEqual(api("GET", V1 + "/sessions/%s/sse" % c.session, key=k["key"],
                             timeout=5).status, 401)
        # a member's key never outlives the member
        m = api("POST", V1 + "/auth/api-keys", {"expires_in_days": 2}, key=c.admin).json
        mk = api("POST", V1 + "/auth/api-keys", {"expires_in_days": 30}, key=m["key"]).json
        self.assertEqual(mk["expires_at"], m["expires_at"])
        mk = api("POST", V1 + "/auth/api-keys", {}, key=m["key"]).json
        self.assertEqual(mk["expires_at"], m["expires_at"])

    def test_admin_create_key_role(self):
        org = new_org(uniq("cli-roles"))
        key = admin("create-key", "--org", org["organization_id"], "--role", "member").strip().splitlines()[-1]
        r = api("GET", V1 + "/auth/me", key=key)
        self.assertEqual(r.json["role"], "member")
        self.assertEqual(api("GET", V1 + "/llm-providers", key=key).status, 403)
        key = admin("create-key", "--org", org["organization_id"], "--role", "admin",
                    "--expires-in-days", "1").strip().splitlines()[-1]
        r = api("GET", V1 + "/auth/me", key=key)
        self.assertEqual(r.json["role"], "admin")
        self.assertIsNotNone(r.json["api_key_expires_at"])
        self.assertNotEqual(admin_run("create-key", "--org", org["organization_id"],
                                      "--role", "root").returncode, 0)
        # keys made before roles existed are admins (the migration's default)
        self.assertEqual(api("GET", V1 + "/auth/me", key=org["api_key"]).json["role"], "admin")

    def test_cli_creates_either_role(self):
        cli = os.path.join(BUILD, "fcgi", "cli", "everruns")
        env = dict(os.environ, EVERRUNS_API_URL=BASE, EVERRUNS_API_KEY=self.c.admin,
                   EVERRUNS_CONFIG="/nonexistent")
        for role in ("member", "admin"):
            p = subprocess.run([cli, "api-keys", "create", "--role", role, "--json"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                               universal_newlines=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            made = json.loads(p.stdout)
            self.assertEqual(made["role"], role)
        env["EVERRUNS_API_KEY"] = self.c.member
        p = subprocess.run([cli, "api-keys", "create", "--role", "admin"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           universal_newlines=True)
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertIn("admin", p.stderr)


if __name__ == "__main__":
    unittest.main()
