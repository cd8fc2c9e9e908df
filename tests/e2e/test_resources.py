"""End-to-end tests of the configuration resources: harnesses, agents,
LLM providers and models (ARCHITECTURE 2.2, 2.3).

Every route is driven over HTTP against the private stack. List and
pagination checks run in a fresh organization (new_org) so that rows other
tests create do not shift the counts; "nothing partial" checks count rows
with psql before and after a rejected request.
"""
import re
import unittest
import uuid

from evr import api, psql, new_org, ADMIN_KEY

V1 = "/api/v1"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ZERO = "0" * 32


def id_re(prefix):
    return re.compile(r"^%s_[0-9a-f]{32}$" % prefix)


def uniq(stem="t"):
    return "%s-%s" % (stem, uuid.uuid4().hex[:12])


def hexid(pub):
    """The uuid hex of a public id (for psql args)."""
    h = pub.split("_", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{32}", h), pub
    return h


def count(table, where="true", *args):
    # table and where are literals of this file; values go in args
    return int(psql("SELECT count(*) FROM %s WHERE %s" % (table, where),
                    *args)[0][0])


class Base(unittest.TestCase):
    org_b = None

    @classmethod
    def setUpClass(cls):
        # a second organization: isolation checks and exact list counts
        if Base.org_b is None:
            Base.org_b = new_org("resources-b-" + uuid.uuid4().hex[:8])
        cls.key_b = Base.org_b["api_key"]

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r.text)
        return r.json

    def err(self, r, status, field=None, code=None):
        self.assertEqual(r.status, status, r.text)
        self.assertIsInstance(r.json, dict, r.text)
        self.assertIsInstance(r.json.get("error"), str)
        self.assertIsInstance(r.json.get("code"), str)
        if field:
            self.assertIn(field, r.json["error"])
        if code:
            self.assertEqual(r.json["code"], code, r.text)
        return r.json

    def assert_ts(self, obj, *keys):
        for k in keys:
            self.assertRegex(obj[k], TS, k)

    def assert_envelope(self, body, offset=0, limit=20):
        self.assertEqual(set(body), {"data", "total", "offset", "limit"})
        self.assertIsInstance(body["data"], list)
        self.assertIsInstance(body["total"], int)
        self.assertEqual(body["offset"], offset)
        self.assertEqual(body["limit"], limit)

    def check_paging(self, path, key=ADMIN_KEY):
        for q in ("limit=0", "limit=101", "limit=abc", "offset=-1",
                  "offset=x", "limit=1.5"):
            name = q.split("=")[0]
            self.err(api("GET", path + "?" + q, key=key), 400, name)
        body = self.ok(api("GET", path + "?limit=1&offset=1", key=key))
        self.assert_envelope(body, 1, 1)
        self.assertLessEqual(len(body["data"]), 1)
        full = self.ok(api("GET", path + "?limit=100", key=key))
        self.assertEqual(full["total"], body["total"])
        if full["total"] > 1:
            self.assertEqual(body["data"][0]["id"], full["data"][1]["id"])
        past = self.ok(api("GET", path + "?offset=100000", key=key))
        self.assertEqual(past["data"], [])
        self.assertEqual(past["total"], full["total"])

    def rejected(self, method, path, body, status, field, table,
                 key=ADMIN_KEY, code=None):
        """A rejected request answers status naming field, adds no row."""
        before = count(table)
        r = api(method, path, body, key=key)
        self.err(r, status, field, code)
        self.assertEqual(count(table), before, (body, r.text))


# --- harnesses ---------------------------------------------------------------

class TestHarnesses(Base):
    def create(self, **kw):
        body = {"name": uniq("h"), "system_prompt": "Be brief."}
        body.update(kw)
        return self.ok(api("POST", V1 + "/harnesses", body), 201)

    def test_builtins_seeded(self):
        key = new_org("resources-seed-h")["api_key"]
        body = self.ok(api("GET", V1 + "/harnesses", key=key))
        self.assert_envelope(body)
        names = {h["name"]: h for h in body["data"]}
        for n in ("base", "generic", "platform-chat"):
            self.assertIn(n, names)
            self.assertTrue(names[n]["is_built_in"])
        self.assertEqual(names["base"]["capabilities"], [])
        refs = [c["ref"] for c in names["generic"]["capabilities"]]
        self.assertEqual(refs, ["session_file_system", "web_fetch",
                                "current_time", "stateless_todo_list"])
        self.assertEqual(body["total"], 3)

    def test_create_get_shape(self):
        model = self.ok(api("GET", V1 + "/llm-models"))["data"][0]["id"]
        h = self.create(display_name="My H", description="d",
                        default_model_id=model, tags=["a", "b"],
                        capabilities=[{"ref": "current_time"},
                                      "web_fetch"])
        self.assertRegex(h["id"], id_re("hns"))
        self.assertRegex(h["organization_id"], id_re("org"))
        self.assert_ts(h, "created_at", "updated_at")
        self.assertEqual(h["display_name"], "My H")
        self.assertEqual(h["default_model_id"], model)
        self.assertEqual(h["tags"], ["a", "b"])
        self.assertEqual(h["capabilities"],
                         [{"ref": "current_time", "config": {}},
                          {"ref": "web_fetch", "config": {}}])
        self.assertFalse(h["is_built_in"])
        self.assertEqual(h["status"], "active")
        self.assertEqual(self.ok(api("GET", V1 + "/harnesses/" + h["id"])), h)
        self.assertEqual(
            self.ok(api("GET", V1 + "/harnesses/" + h["name"])), h)

    def test_minimal_create_defaults(self):
        h = self.ok(api("POST", V1 + "/harnesses", {"name": uniq("m")}), 201)
        self.assertEqual(h["system_prompt"], "")
        self.assertEqual(h["capabilities"], [])
        self.assertEqual(h["tags"], [])
        self.assertIsNone(h["default_model_id"])

    def test_create_validation(self):
        n = uniq("v")
        cases = [
            ({}, "name"),
            ({"name": None}, "name"),
            ({"name": ""}, "name"),
            ({"name": "Bad_Name"}, "name"),
            ({"name": "UPPER"}, "name"),
            ({"name": "has space"}, "name"),
            ({"name": "a" * 65}, "name"),
            ({"name": 12}, "name"),
            ({"name": n, "system_prompt": "x" * 100001}, "system_prompt"),
            ({"name": n, "system_prompt": 5}, "system_prompt"),
            ({"name": n, "display_name": "x" * 513}, "display_name"),
            ({"name": n, "description": ["x"]}, "description"),
            ({"name": n, "capabilities": "web_fetch"}, "capabilities"),
            ({"name": n, "capabilities": [{"ref": "nope"}]}, "capabilities"),
            ({"name": n, "capabilities": [{"ref": "web_fetch"},
                                          {"ref": "web_fetch"}]},
             "capabilities"),
            ({"name": n, "capabilities": [{"ref": "web_fetch",
                                           "config": 3}]}, "capabilities"),
            ({"name": n, "tags": "a"}, "tags"),
            ({"name": n, "tags": ["t%d" % i for i in range(33)]}, "tags"),
            ({"name": n, "tags": ["x" * 65]}, "tags"),
            ({"name": n, "tags": [1]}, "tags"),
            ({"name": n, "default_model_id": 5}, "default_model_id"),
        ]
        for body, field in cases:
            with self.subTest(body=str(body)[:80]):
                self.rejected("POST", V1 + "/harnesses", body, 400, field,
                              "harnesses")
        # the limits themselves are accepted
        h = self.create(name="a" * 58 + uuid.uuid4().hex[:6],
                        system_prompt="x" * 100000, display_name="y" * 512,
                        tags=["t%d" % i for i in range(31)] + ["z" * 64])
        self.assertEqual(len(h["system_prompt"]), 100000)
        self.assertEqual(len(h["tags"]), 32)

    def test_model_reference_404(self):
        other = self.ok(api("GET", V1 + "/llm-models",
                            key=self.key_b))["data"][0]["id"]
        for ref in ("mod_" + ZERO, "nope", "mod_XYZ", other):
            with self.subTest(ref=ref):
                self.rejected("POST", V1 + "/harnesses",
                              {"name": uniq(), "default_model_id": ref},
                              404, "default_model_id", "harnesses")

    def test_duplicate_name_409(self):
        h = self.create()
        self.rejected("POST", V1 + "/harnesses", {"name": h["name"]}, 409,
                      None, "harnesses", code="conflict")
        self.rejected("POST", V1 + "/harnesses", {"name": "base"}, 409,
                      None, "harnesses", code="conflict")
        other = self.create()
        self.err(api("PATCH", V1 + "/harnesses/" + other["id"],
                     {"name": h["name"]}), 409, code="conflict")
        # the same name in another organization is fine
        self.ok(api("POST", V1 + "/harnesses", {"name": h["name"]},
                    key=self.key_b), 201)

    def test_builtin_read_only(self):
        base = self.ok(api("GET", V1 + "/harnesses/base"))
        for path in ("/harnesses/base", "/harnesses/" + base["id"]):
            self.err(api("PATCH", V1 + path, {"display_name": "X"}), 409,
                     code="read_only")
            self.err(api("DELETE", V1 + path), 409, code="read_only")
        self.assertEqual(self.ok(api("GET", V1 + "/harnesses/base")), base)

    def test_get_errors(self):
        self.err(api("GET", V1 + "/harnesses/hns_123"), 400, "id")
        self.err(api("GET", V1 + "/harnesses/hns_" + "A" * 32), 400)
        self.err(api("GET", V1 + "/harnesses/hns_" + ZERO), 404)
        self.err(api("GET", V1 + "/harnesses/no-such-harness"), 404)
        self.err(api("PATCH", V1 + "/harnesses/hns_" + ZERO, {}), 404)
        self.err(api("DELETE", V1 + "/harnesses/hns_" + ZERO), 404)
        self.err(api("DELETE", V1 + "/harnesses/hns_1"), 400)
        # text PostgreSQL would refuse is a 400, not a 500
        self.err(api("GET", V1 + "/harnesses/%FF"), 400, "id_or_name")
        self.err(api("GET", V1 + "/harnesses?search=%C3"), 400, "search")
        self.err(api("GET", V1 + "/harnesses/caf%C3%A9"), 404)
        self.rejected("POST", V1 + "/harnesses", {"name": "a\u0000b"}, 400,
                      "name", "harnesses")

    def test_patch(self):
        model = self.ok(api("GET", V1 + "/llm-models"))["data"][0]["id"]
        h = self.create(display_name="One", tags=["x"],
                        default_model_id=model,
                        capabilities=[{"ref": "current_time"}])
        p = self.ok(api("PATCH", V1 + "/harnesses/" + h["name"],
                        {"description": "new", "unknown_field": 1}))
        self.assertEqual(p["description"], "new")
        for k in ("name", "display_name", "tags", "default_model_id",
                  "capabilities", "system_prompt", "created_at"):
            self.assertEqual(p[k], h[k], k)
        self.assertGreaterEqual(p["updated_at"], h["updated_at"])
        p = self.ok(api("PATCH", V1 + "/harnesses/" + h["id"],
                        {"default_model_id": None, "capabilities": [],
                         "tags": ["y"], "name": h["name"] + "-2"}))
        self.assertIsNone(p["default_model_id"])
        self.assertEqual(p["capabilities"], [])
        self.assertEqual(p["tags"], ["y"])
        self.assertEqual(p["name"], h["name"] + "-2")
        # invalid patches change nothing
        for body, status, field in (
                ({"name": "Bad!"}, 400, "name"),
                ({"tags": ["x" * 65]}, 400, "tags"),
                ({"system_prompt": "x" * 100001}, 400, "system_prompt"),
                ({"display_name": "ok", "default_model_id": "mod_" + ZERO},
                 404, "default_model_id")):
            self.err(api("PATCH", V1 + "/harnesses/" + h["id"], body),
                     status, field)
        self.assertEqual(self.ok(api("GET", V1 + "/harnesses/" + h["id"])),
                         p)

    def test_delete_archives(self):
        h = self.create()
        self.assertEqual(api("DELETE", V1 + "/harnesses/" + h["id"]).status,
                         204)
        row = psql("SELECT status, archived_at IS NOT NULL FROM harnesses "
                   "WHERE id = $1::uuid", hexid(h["id"]))
        self.assertEqual(row, [("archived", "t")])
        self.err(api("GET", V1 + "/harnesses/" + h["id"]), 404)
        self.err(api("GET", V1 + "/harnesses/" + h["name"]), 404)
        self.err(api("PATCH", V1 + "/harnesses/" + h["id"], {}), 404)
        self.err(api("DELETE", V1 + "/harnesses/" + h["id"]), 404)
        listed = self.ok(api("GET", V1 + "/harnesses?limit=100&search=" +
                             h["name"]))
        self.assertEqual(listed["data"], [])
        listed = self.ok(api("GET", V1 + "/harnesses?include_archived=true"
                             "&search=" + h["name"]))
        self.assertEqual([x["id"] for x in listed["data"]], [h["id"]])
        # the name is free again
        self.create(name=h["name"])
        # an archived harness cannot be referenced
        self.err(api("POST", V1 + "/agents",
                     {"name": uniq(), "harness_id": h["id"]}), 404,
                 "harness_id")

    def test_search_and_paging(self):
        key = self.key_b
        tok = uuid.uuid4().hex[:10]
        for i, body in enumerate(({"display_name": "Alpha " + tok.upper()},
                                  {"description": "about " + tok},
                                  {"name": "s-%s-%d" % (tok, 3)})):
            body.setdefault("name", uniq("s"))
            self.ok(api("POST", V1 + "/harnesses", body, key=key), 201)
        found = self.ok(api("GET", V1 + "/harnesses?search=" + tok,
                            key=key))
        self.assertEqual(found["total"], 3)
        # LIKE wildcards are plain characters
        for wild in ("%25", "_", "%5C"):
            r = self.ok(api("GET", V1 + "/harnesses?search=" + wild,
                            key=key))
            self.assertEqual(r["total"], 0, wild)
        self.err(api("GET", V1 + "/harnesses?search=" + "x" * 300,
                     key=key), 400, "search")
        self.err(api("GET", V1 + "/harnesses?include_archived=maybe",
                     key=key), 400, "include_archived")
        self.check_paging(V1 + "/harnesses", key=key)

    def test_isolation(self):
        h = self.create()
        for m, body in (("GET", None), ("PATCH", {"display_name": "x"}),
                        ("DELETE", None)):
            self.err(api(m, V1 + "/harnesses/" + h["id"], body,
                         key=self.key_b), 404)
            self.err(api(m, V1 + "/harnesses/" + h["name"], body,
                         key=self.key_b), 404)
        listed = self.ok(api("GET", V1 + "/harnesses?limit=100",
                             key=self.key_b))
        self.assertNotIn(h["id"], [x["id"] for x in listed["data"]])
        self.assertEqual(self.ok(api("GET", V1 + "/harnesses/" + h["id"])),
                         h)


# --- agents ------------------------------------------------------------------

class TestAgents(Base):
    def create(self, key=ADMIN_KEY, **kw):
        body = {"name": uniq("a"), "system_prompt": "Hi."}
        body.update(kw)
        return self.ok(api("POST", V1 + "/agents", body, key=key), 201)

    def test_seeded_assistant(self):
        a = self.ok(api("GET", V1 + "/agents/assistant", key=self.key_b))
        self.assertEqual(a["name"], "assistant")
        generic = self.ok(api("GET", V1 + "/harnesses/generic",
                              key=self.key_b))
        self.assertEqual(a["harness_id"], generic["id"])
        self.assertRegex(a["default_model_id"], id_re("mod"))

    def test_create_shape(self):
        model = self.ok(api("GET", V1 + "/llm-models"))["data"][0]["id"]
        harness = self.ok(api("GET", V1 + "/harnesses/base"))["id"]
        a = self.create(display_name="Support", description="desc",
                        default_model_id=model, harness_id=harness,
                        capabilities=[{"ref": "current_time"}],
                        tags=["x"], max_iterations=7)
        self.assertRegex(a["id"], id_re("agt"))
        self.assertRegex(a["organization_id"], id_re("org"))
        self.assert_ts(a, "created_at", "updated_at")
        self.assertIsNone(a["archived_at"])
        self.assertEqual(a["harness_id"], harness)
        self.assertEqual(a["default_model_id"], model)
        self.assertEqual(a["max_iterations"], 7)
        self.assertEqual(a["capabilities"],
                         [{"ref": "current_time", "config": {}}])
        self.assertEqual(a["status"], "active")
        self.assertEqual(self.ok(api("GET", V1 + "/agents/" + a["id"])), a)
        self.assertEqual(self.ok(api("GET", V1 + "/agents/" + a["name"])), a)
        m = self.create()
        self.assertIsNone(m["max_iterations"])
        # none given: the effective one, the organization's base (never null)
        self.assertEqual(m["harness_id"], self.ok(api("GET", V1 + "/harnesses/base"))["id"])

    def test_create_validation(self):
        n = uniq("v")
        cases = [
            ({}, "name"),
            ({"name": "Nope"}, "name"),
            ({"name": "a_b"}, "name"),
            ({"name": "a" * 65}, "name"),
            ({"name": n, "max_iterations": 0}, "max_iterations"),
            ({"name": n, "max_iterations": 1001}, "max_iterations"),
            ({"name": n, "max_iterations": "5"}, "max_iterations"),
            ({"name": n, "max_iterations": 1.5}, "max_iterations"),
            ({"name": n, "harness_id": 1}, "harness_id"),
            ({"name": n, "system_prompt": "x" * 100001}, "system_prompt"),
            ({"name": n, "description": "x" * 513}, "description"),
            ({"name": n, "tags": ["t"] * 33}, "tags"),
            ({"name": n, "tags": ["y" * 65]}, "tags"),
            ({"name": n, "capabilities": [{"ref": 7}]}, "capabilities"),
            ({"name": n, "capabilities": {"ref": "web_fetch"}},
             "capabilities"),
        ]
        for body, field in cases:
            with self.subTest(body=str(body)[:80]):
                self.rejected("POST", V1 + "/agents", body, 400, field,
                              "agents")
        # a 400 wins over a reference that would be a 404
        self.rejected("POST", V1 + "/agents",
                      {"name": n, "max_iterations": 0,
                       "harness_id": "hns_" + ZERO}, 400, "max_iterations",
                      "agents")

    def test_references_404(self):
        other_h = self.ok(api("GET", V1 + "/harnesses/base",
                              key=self.key_b))["id"]
        other_m = self.ok(api("GET", V1 + "/llm-models",
                              key=self.key_b))["data"][0]["id"]
        for field, ref in (("harness_id", "hns_" + ZERO),
                           ("harness_id", "base"),
                           ("harness_id", other_h),
                           ("default_model_id", "mod_" + ZERO),
                           ("default_model_id", "agt_" + ZERO),
                           ("default_model_id", other_m)):
            with self.subTest(field=field, ref=ref):
                self.rejected("POST", V1 + "/agents",
                              {"name": uniq(), field: ref}, 404, field,
                              "agents")

    def test_duplicate_name_409(self):
        a = self.create()
        self.rejected("POST", V1 + "/agents", {"name": a["name"]}, 409,
                      None, "agents", code="conflict")
        self.rejected("POST", V1 + "/agents", {"name": "assistant"}, 409,
                      None, "agents", code="conflict")
        b = self.create()
        self.err(api("PATCH", V1 + "/agents/" + b["id"],
                     {"name": a["name"]}), 409, code="conflict")
        self.assertEqual(self.ok(api("GET", V1 + "/agents/" + b["id"])), b)

    def test_patch(self):
        h = self.ok(api("GET", V1 + "/harnesses/generic"))["id"]
        a = self.create(tags=["one"], harness_id=h, max_iterations=3,
                        capabilities=[{"ref": "current_time"},
                                      {"ref": "web_fetch"}])
        p = self.ok(api("PATCH", V1 + "/agents/" + a["name"],
                        {"display_name": "New"}))
        self.assertEqual(p["display_name"], "New")
        for k in ("name", "tags", "harness_id", "max_iterations",
                  "capabilities", "system_prompt", "description",
                  "default_model_id", "created_at"):
            self.assertEqual(p[k], a[k], k)
        self.assertGreaterEqual(p["updated_at"], a["updated_at"])
        p = self.ok(api("PATCH", V1 + "/agents/" + a["id"],
                        {"capabilities": [{"ref": "stateless_todo_list"}],
                         "max_iterations": None, "harness_id": None,
                         "tags": []}))
        self.assertEqual(p["capabilities"],
                         [{"ref": "stateless_todo_list", "config": {}}])
        self.assertIsNone(p["max_iterations"])
        self.assertEqual(p["harness_id"], self.ok(api("GET", V1 + "/harnesses/base"))["id"])
        self.assertEqual(p["tags"], [])
        for body, status, field in (
                ({"max_iterations": 0}, 400, "max_iterations"),
                ({"name": "X"}, 400, "name"),
                ({"capabilities": [{"ref": "nope"}]}, 400, "capabilities"),
                ({"harness_id": "hns_" + ZERO}, 404, "harness_id"),
                ({"default_model_id": "x"}, 404, "default_model_id")):
            self.err(api("PATCH", V1 + "/agents/" + a["id"], body),
                     status, field)
        self.assertEqual(self.ok(api("GET", V1 + "/agents/" + a["id"])), p)
        self.err(api("PATCH", V1 + "/agents/agt_zz", {}), 400)
        self.err(api("PATCH", V1 + "/agents/agt_" + ZERO, {}), 404)
        self.err(api("PATCH", V1 + "/agents/no-such-agent", {}), 404)
        r = api("PATCH", V1 + "/agents/" + a["id"], raw=b"[1]",
                content_type="application/json")
        self.err(r, 400)
        r = api("PATCH", V1 + "/agents/" + a["id"], raw=b"{bad",
                content_type="application/json")
        self.err(r, 400)

    def test_delete_archives(self):
        a = self.create()
        self.assertEqual(api("DELETE", V1 + "/agents/" + a["name"]).status,
                         204)
        row = psql("SELECT status, archived_at IS NOT NULL FROM agents "
                   "WHERE id = $1::uuid", hexid(a["id"]))
        self.assertEqual(row, [("archived", "t")])
        for m, body in (("GET", None), ("PATCH", {}), ("DELETE", None)):
            self.err(api(m, V1 + "/agents/" + a["id"], body), 404)
        listed = self.ok(api("GET", V1 + "/agents?search=" + a["name"]))
        self.assertEqual(listed["total"], 0)
        listed = self.ok(api("GET", V1 + "/agents?include_archived=true&"
                             "search=" + a["name"]))
        self.assertEqual(listed["total"], 1)
        arch = listed["data"][0]
        self.assertEqual(arch["status"], "archived")
        self.assert_ts(arch, "archived_at")
        self.create(name=a["name"])
        self.err(api("GET", V1 + "/agents/agt_x"), 400)
        self.err(api("DELETE", V1 + "/agents/agt_" + ZERO), 404)

    def test_list_filters(self):
        key = self.key_b
        tok = uuid.uuid4().hex[:10]
        a1 = self.create(key=key, name="f-%s-1" % tok, tags=["red", "big"])
        a2 = self.create(key=key, name=uniq("f"), tags=["red"],
                         display_name="Thing " + tok.upper())
        a3 = self.create(key=key, name=uniq("f"), tags=["blue", "big"],
                         description="x" + tok + "y")

        def ids(q):
            body = self.ok(api("GET", V1 + "/agents?limit=100&" + q,
                               key=key))
            self.assertEqual(body["total"], len(body["data"]))
            return {x["id"] for x in body["data"]}

        self.assertEqual(ids("search=" + tok),
                         {a1["id"], a2["id"], a3["id"]})
        self.assertEqual(ids("search=" + tok.upper()[:6]),
                         {a1["id"], a2["id"], a3["id"]})
        self.assertEqual(ids("tags=red"), {a1["id"], a2["id"]})
        self.assertEqual(ids("tags=red,big"), {a1["id"]})
        self.assertEqual(ids("tags=red&tags=big"), {a1["id"]})
        self.assertEqual(ids("tags=big&search=" + tok), {a1["id"], a3["id"]})
        self.assertEqual(ids("tags=none-such"), set())
        self.assertEqual(ids("search=%25"), set())
        self.err(api("GET", V1 + "/agents?tags=%FF", key=key), 400, "tags")
        self.err(api("GET", V1 + "/agents/%ED%A0%80", key=key), 400)
        self.err(api("GET", V1 + "/agents?tags=" + "x" * 65, key=key), 400,
                 "tags")
        self.err(api("GET", V1 + "/agents?include_archived=2", key=key),
                 400, "include_archived")
        body = self.ok(api("GET", V1 + "/agents", key=key))
        self.assert_envelope(body)
        self.check_paging(V1 + "/agents", key=key)

    def test_isolation(self):
        a = self.create()
        for m, body in (("GET", None), ("PATCH", {"display_name": "x"}),
                        ("DELETE", None)):
            self.err(api(m, V1 + "/agents/" + a["id"], body,
                         key=self.key_b), 404)
            self.err(api(m, V1 + "/agents/" + a["name"], body,
                         key=self.key_b), 404)
        listed = self.ok(api("GET", V1 + "/agents?limit=100",
                             key=self.key_b))
        self.assertNotIn(a["id"], [x["id"] for x in listed["data"]])
        self.assertEqual(self.ok(api("GET", V1 + "/agents/" + a["id"])), a)
        # org B's "assistant" is its own, not ours
        mine = self.ok(api("GET", V1 + "/agents/assistant"))
        theirs = self.ok(api("GET", V1 + "/agents/assistant",
                             key=self.key_b))
        self.assertNotEqual(mine["id"], theirs["id"])


# --- providers and models ----------------------------------------------------

class TestProviders(Base):
    def create(self, key=ADMIN_KEY, **kw):
        body = {"name": uniq("p"), "provider_type": "openai_completions"}
        body.update(kw)
        return self.ok(api("POST", V1 + "/llm-providers", body, key=key),
                       201)

    def test_seeded(self):
        key = new_org("resources-seed-p")["api_key"]
        body = self.ok(api("GET", V1 + "/llm-providers", key=key))
        self.assert_envelope(body)
        self.assertEqual([(p["name"], p["provider_type"])
                          for p in body["data"]], [("llmsim", "llmsim")])
        prv = body["data"][0]
        models = self.ok(api("GET", V1 + "/llm-providers/%s/models" %
                             prv["id"], key=key))
        self.assert_envelope(models)
        self.assertEqual([m["model_id"] for m in models["data"]], ["llmsim"])

    def test_create_shape_and_secret(self):
        secret = "sk-" + uuid.uuid4().hex
        p = self.create(name="My OpenAI", base_url="https://api.example/v1",
                        api_key=secret)
        self.assertRegex(p["id"], id_re("prv"))
        self.assertRegex(p["organization_id"], id_re("org"))
        self.assert_ts(p, "created_at", "updated_at")
        self.assertEqual(p["name"], "My OpenAI")
        self.assertEqual(p["base_url"], "https://api.example/v1")
        self.assertIs(p["api_key_set"], True)
        self.assertEqual(p["status"], "active")
        self.assertNotIn("api_key", p)
        self.assertNotIn("api_key_enc", p)
        for r in (api("GET", V1 + "/llm-providers/" + p["id"]),
                  api("GET", V1 + "/llm-providers?limit=100"),
                  api("PATCH", V1 + "/llm-providers/" + p["id"], {})):
            self.assertEqual(r.status, 200)
            self.assertNotIn(secret, r.text)
            self.assertNotIn("api_key_enc", r.text)
        enc = psql("SELECT api_key_enc FROM llm_providers WHERE id = $1::uuid",
                   hexid(p["id"]))[0][0]
        self.assertTrue(enc.startswith("v1:"), enc)
        self.assertNotIn(secret, enc)
        self.assertNotIn(secret[3:], enc)
        # a new key is sealed afresh; null removes it
        secret2 = "sk-" + uuid.uuid4().hex
        q = self.ok(api("PATCH", V1 + "/llm-providers/" + p["id"],
                        {"api_key": secret2}))
        self.assertTrue(q["api_key_set"])
        enc2 = psql("SELECT api_key_enc FROM llm_providers "
                    "WHERE id = $1::uuid", hexid(p["id"]))[0][0]
        self.assertTrue(enc2.startswith("v1:"))
        self.assertNotEqual(enc, enc2)
        self.assertNotIn(secret2, enc2)
        q = self.ok(api("PATCH", V1 + "/llm-providers/" + p["id"],
                        {"api_key": None}))
        self.assertIs(q["api_key_set"], False)
        self.assertEqual(psql("SELECT api_key_enc IS NULL FROM llm_providers "
                              "WHERE id = $1::uuid", hexid(p["id"])),
                         [("t",)])
        n = self.create(provider_type="anthropic")
        self.assertIs(n["api_key_set"], False)
        self.assertIsNone(n["base_url"])

    def test_create_validation(self):
        cases = [
            ({"provider_type": "llmsim"}, "name"),
            ({"name": "", "provider_type": "llmsim"}, "name"),
            ({"name": "x" * 65, "provider_type": "llmsim"}, "name"),
            ({"name": 5, "provider_type": "llmsim"}, "name"),
            ({"name": "p"}, "provider_type"),
            ({"name": "p", "provider_type": "openai"}, "provider_type"),
            ({"name": "p", "provider_type": 1}, "provider_type"),
            ({"name": "p", "provider_type": "llmsim",
              "base_url": "ftp://x"}, "base_url"),
            ({"name": "p", "provider_type": "llmsim",
              "base_url": "http://"}, "base_url"),
            ({"name": "p", "provider_type": "llmsim",
              "base_url": "http://a b"}, "base_url"),
            ({"name": "p", "provider_type": "llmsim",
              "base_url": "https://x/" + "a" * 2040}, "base_url"),
            ({"name": "p", "provider_type": "llmsim", "base_url": 3},
             "base_url"),
            ({"name": "p", "provider_type": "llmsim", "api_key": 3},
             "api_key"),
            ({"name": "p", "provider_type": "llmsim", "api_key": ""},
             "api_key"),
        ]
        for body, field in cases:
            with self.subTest(body=str(body)[:80]):
                self.rejected("POST", V1 + "/llm-providers", body, 400,
                              field, "llm_providers")
        p = self.create(base_url="http://x/" + "a" * 2039)
        self.assertEqual(len(p["base_url"]), 2048)

    def test_get_patch_delete(self):
        p = self.create(base_url="http://localhost:11434/v1")
        self.err(api("GET", V1 + "/llm-providers/prv_12"), 400, "id")
        self.err(api("GET", V1 + "/llm-providers/llmsim"), 400, "id")
        self.err(api("GET", V1 + "/llm-providers/prv_" + ZERO), 404)
        self.err(api("PATCH", V1 + "/llm-providers/prv_" + ZERO, {}), 404)
        self.err(api("DELETE", V1 + "/llm-providers/prv_" + ZERO), 404)
        q = self.ok(api("PATCH", V1 + "/llm-providers/" + p["id"],
                        {"status": "disabled", "name": "renamed"}))
        self.assertEqual((q["status"], q["name"]), ("disabled", "renamed"))
        self.assertEqual(q["base_url"], p["base_url"])
        self.assertEqual(q["provider_type"], p["provider_type"])
        q = self.ok(api("PATCH", V1 + "/llm-providers/" + p["id"],
                        {"base_url": None, "status": "active"}))
        self.assertIsNone(q["base_url"])
        self.assertEqual(q["status"], "active")
        for body, field in (({"status": "paused"}, "status"),
                            ({"name": ""}, "name"),
                            ({"base_url": "file:///etc"}, "base_url"),
                            ({"provider_type": "gemini"}, "provider_type"),
                            ({"api_key": ["k"]}, "api_key")):
            self.err(api("PATCH", V1 + "/llm-providers/" + p["id"], body),
                     400, field)
        self.assertEqual(self.ok(api("GET", V1 + "/llm-providers/" +
                                     p["id"])), q)
        # delete cascades the provider's models, references go to null
        m = self.ok(api("POST", V1 + "/llm-providers/%s/models" % p["id"],
                        {"model_id": "gpt-x"}), 201)
        a = self.ok(api("POST", V1 + "/agents",
                        {"name": uniq(), "default_model_id": m["id"]}), 201)
        self.assertEqual(api("DELETE", V1 + "/llm-providers/" +
                             p["id"]).status, 204)
        self.err(api("GET", V1 + "/llm-providers/" + p["id"]), 404)
        self.err(api("GET", V1 + "/llm-models/" + m["id"]), 404)
        self.assertEqual(count("llm_models", "provider_id = $1::uuid",
                               hexid(p["id"])), 0)
        a = self.ok(api("GET", V1 + "/agents/" + a["id"]))
        self.assertIsNone(a["default_model_id"])
        self.err(api("DELETE", V1 + "/llm-providers/" + p["id"]), 404)

    def test_models_of_provider(self):
        p = self.create()
        path = V1 + "/llm-providers/%s/models" % p["id"]
        m = self.ok(api("POST", path, {"model_id": "gpt-4o"}), 201)
        self.assertRegex(m["id"], id_re("mod"))
        self.assertEqual(m["provider_id"], p["id"])
        self.assertEqual(m["provider_name"], p["name"])
        self.assertEqual(m["provider_type"], "openai_completions")
        self.assertEqual(m["display_name"], "gpt-4o")
        self.assertEqual(m["capabilities"], ["chat", "tools"])
        self.assertEqual(m["context_tokens"], 128000)
        self.assertIs(m["enabled"], True)
        self.assert_ts(m, "created_at", "updated_at")
        m2 = self.ok(api("POST", path, {
            "model_id": "o" * 256, "display_name": "Big",
            "capabilities": ["chat", "vision", "reasoning", "tools"],
            "context_tokens": 10000000, "enabled": False}), 201)
        self.assertEqual(m2["capabilities"],
                         ["chat", "vision", "reasoning", "tools"])
        self.assertIs(m2["enabled"], False)
        body = self.ok(api("GET", path))
        self.assert_envelope(body)
        self.assertEqual([x["id"] for x in body["data"]],
                         [m["id"], m2["id"]])
        self.assertEqual(body["total"], 2)
        self.check_paging(path)
        cases = [
            ({}, "model_id"),
            ({"model_id": ""}, "model_id"),
            ({"model_id": "x" * 257}, "model_id"),
            ({"model_id": 4}, "model_id"),
            ({"model_id": "m", "display_name": "x" * 513}, "display_name"),
            ({"model_id": "m", "capabilities": "chat"}, "capabilities"),
            ({"model_id": "m", "capabilities": ["chat", "fly"]},
             "capabilities[1]"),
            ({"model_id": "m", "capabilities": ["chat", "chat"]},
             "capabilities[1]"),
            ({"model_id": "m", "capabilities": [1]}, "capabilities[0]"),
            ({"model_id": "m", "context_tokens": 0}, "context_tokens"),
            ({"model_id": "m", "context_tokens": 10000001},
             "context_tokens"),
            ({"model_id": "m", "context_tokens": "8"}, "context_tokens"),
            ({"model_id": "m", "enabled": "yes"}, "enabled"),
        ]
        for b, field in cases:
            with self.subTest(body=str(b)[:80]):
                self.rejected("POST", path, b, 400, field, "llm_models")
        self.rejected("POST", V1 + "/llm-providers/prv_%s/models" % ZERO,
                      {"model_id": "m"}, 404, None, "llm_models")
        self.err(api("POST", V1 + "/llm-providers/prv_0/models",
                     {"model_id": "m"}), 400, "id")
        self.err(api("GET", V1 + "/llm-providers/prv_%s/models" % ZERO), 404)
        self.err(api("GET", V1 + "/llm-providers/nope/models"), 400, "id")

    def test_isolation(self):
        p = self.create()
        path = V1 + "/llm-providers/" + p["id"]
        for m, body in (("GET", None), ("PATCH", {"name": "x"}),
                        ("DELETE", None)):
            self.err(api(m, path, body, key=self.key_b), 404)
        self.err(api("GET", path + "/models", key=self.key_b), 404)
        self.rejected("POST", path + "/models", {"model_id": "m"}, 404,
                      None, "llm_models", key=self.key_b)
        listed = self.ok(api("GET", V1 + "/llm-providers?limit=100",
                             key=self.key_b))
        self.assertNotIn(p["id"], [x["id"] for x in listed["data"]])
        self.assertEqual(self.ok(api("GET", path))["name"], p["name"])

    def test_paging(self):
        self.create(key=self.key_b)
        self.check_paging(V1 + "/llm-providers", key=self.key_b)


class TestModels(Base):
    def provider(self, key=ADMIN_KEY):
        return self.ok(api("POST", V1 + "/llm-providers",
                           {"name": uniq("p"), "provider_type": "anthropic"},
                           key=key), 201)

    def model(self, prv, key=ADMIN_KEY, **kw):
        body = {"model_id": "claude-" + uuid.uuid4().hex[:6]}
        body.update(kw)
        return self.ok(api("POST", V1 + "/llm-providers/%s/models" %
                           prv["id"], body, key=key), 201)

    def test_list(self):
        key = self.key_b
        body = self.ok(api("GET", V1 + "/llm-models", key=key))
        self.assert_envelope(body)
        seeded = [m for m in body["data"] if m["model_id"] == "llmsim"]
        self.assertEqual(len(seeded), 1)
        self.assertEqual(seeded[0]["provider_name"], "llmsim")
        self.assertEqual(seeded[0]["provider_type"], "llmsim")
        p = self.provider(key)
        m1, m2 = self.model(p, key), self.model(p, key)
        only = self.ok(api("GET", V1 + "/llm-models?provider_id=" + p["id"],
                           key=key))
        self.assertEqual([x["id"] for x in only["data"]], [m1["id"], m2["id"]])
        self.assertEqual(only["total"], 2)
        none = self.ok(api("GET", V1 + "/llm-models?provider_id=prv_" + ZERO,
                           key=key))
        self.assertEqual((none["data"], none["total"]), ([], 0))
        self.err(api("GET", V1 + "/llm-models?provider_id=bad", key=key),
                 400, "provider_id")
        self.err(api("GET", V1 + "/llm-models?provider_id=mod_" + ZERO,
                     key=key), 400, "provider_id")
        self.check_paging(V1 + "/llm-models", key=key)
        # another organization's provider filters to nothing
        mine = self.provider()
        self.model(mine)
        other = self.ok(api("GET", V1 + "/llm-models?provider_id=" +
                            mine["id"], key=key))
        self.assertEqual(other["total"], 0)

    def test_get_patch_delete(self):
        p = self.provider()
        m = self.model(p, display_name="Claude", context_tokens=200000)
        self.assertEqual(self.ok(api("GET", V1 + "/llm-models/" + m["id"])),
                         m)
        q = self.ok(api("PATCH", V1 + "/llm-models/" + m["id"],
                        {"display_name": "Renamed"}))
        self.assertEqual(q["display_name"], "Renamed")
        for k in ("model_id", "capabilities", "context_tokens", "enabled",
                  "provider_id", "created_at"):
            self.assertEqual(q[k], m[k], k)
        q = self.ok(api("PATCH", V1 + "/llm-models/" + m["id"],
                        {"model_id": "claude-next", "capabilities": ["chat"],
                         "context_tokens": 1, "enabled": False}))
        self.assertEqual((q["model_id"], q["capabilities"],
                          q["context_tokens"], q["enabled"]),
                         ("claude-next", ["chat"], 1, False))
        for body, field in (({"model_id": ""}, "model_id"),
                            ({"capabilities": ["x"]}, "capabilities"),
                            ({"context_tokens": 0}, "context_tokens"),
                            ({"enabled": 1}, "enabled"),
                            ({"display_name": 3}, "display_name")):
            self.err(api("PATCH", V1 + "/llm-models/" + m["id"], body), 400,
                     field)
        self.assertEqual(self.ok(api("GET", V1 + "/llm-models/" + m["id"])),
                         q)
        for method in ("GET", "PATCH", "DELETE"):
            b = {} if method == "PATCH" else None
            self.err(api(method, V1 + "/llm-models/mod_1", b), 400, "id")
            self.err(api(method, V1 + "/llm-models/llmsim", b), 400, "id")
            self.err(api(method, V1 + "/llm-models/mod_" + ZERO, b), 404)
        # deleting a model clears the references to it
        h = self.ok(api("POST", V1 + "/harnesses",
                        {"name": uniq(), "default_model_id": m["id"]}), 201)
        self.assertEqual(api("DELETE", V1 + "/llm-models/" + m["id"]).status,
                         204)
        self.err(api("GET", V1 + "/llm-models/" + m["id"]), 404)
        self.err(api("DELETE", V1 + "/llm-models/" + m["id"]), 404)
        h = self.ok(api("GET", V1 + "/harnesses/" + h["id"]))
        self.assertIsNone(h["default_model_id"])
        self.ok(api("GET", V1 + "/llm-providers/" + p["id"]))

    def test_isolation(self):
        m = self.model(self.provider())
        for method, body in (("GET", None), ("PATCH", {"enabled": False}),
                             ("DELETE", None)):
            self.err(api(method, V1 + "/llm-models/" + m["id"], body,
                         key=self.key_b), 404)
        listed = self.ok(api("GET", V1 + "/llm-models?limit=100",
                             key=self.key_b))
        self.assertNotIn(m["id"], [x["id"] for x in listed["data"]])
        self.assertEqual(self.ok(api("GET", V1 + "/llm-models/" + m["id"])),
                         m)


if __name__ == "__main__":
    unittest.main()
