"""Sessions, the global chat session, API keys and the request edge:
auth forms, errors, limits, idempotency, tenant isolation (issue: Foundation)."""

import json
import random
import re
import threading
import unittest

from evr import api, admin, psql, new_org, ADMIN_KEY

ID = {p: re.compile(r"^%s_[0-9a-f]{32}$" % p) for p in
      ("ses", "agt", "hns", "mod", "org", "usr", "key")}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def org_ids(key):
    """The default agent, the base harness and the llmsim model of key's org."""
    agent = api("GET", "/api/v1/agents/assistant", key=key).json["id"]
    base = api("GET", "/api/v1/harnesses/base", key=key).json["id"]
    models = api("GET", "/api/v1/llm-models", key=key).json["data"]
    model = [m for m in models if m["model_id"] == "llmsim"][0]["id"]
    return agent, base, model


def count(table, where="true", *args):
    return int(psql("SELECT count(*) FROM %s WHERE %s" % (table, where), *args)[0][0])


class Sessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.org = new_org("sessions-a")
        cls.key = cls.org["api_key"]
        cls.agent, cls.base, cls.model = org_ids(cls.key)

    def create(self, body, key=None, **kw):
        return api("POST", "/api/v1/sessions", body, key=key or self.key, **kw)

    def test_guide_create_example(self):
        # the guide's curl example, with our ids
        r = self.create({"agent_id": self.agent, "title": "Q1 Sales Analysis",
                         "tags": ["sales", "analytics"], "model_id": self.model})
        self.assertEqual(r.status, 201, r.text)
        s = r.json
        self.assertRegex(s["id"], ID["ses"])
        self.assertEqual(s["organization_id"], self.org["organization_id"])
        self.assertEqual(s["agent_id"], self.agent)
        self.assertEqual(s["title"], "Q1 Sales Analysis")
        self.assertEqual(s["tags"], ["sales", "analytics"])
        self.assertEqual(s["model_id"], self.model)
        self.assertEqual(s["status"], "idle")
        self.assertRegex(s["harness_id"], ID["hns"])
        self.assertRegex(s["created_at"], TS)
        self.assertRegex(s["updated_at"], TS)
        self.assertEqual(s["usage"], {"input_tokens": 0, "output_tokens": 0})
        # the create transaction wrote session.started as sequence 1
        ev = api("GET", "/api/v1/sessions/%s/events" % s["id"], key=self.key).json
        self.assertEqual([e["type"] for e in ev["data"]], ["session.started"])
        self.assertEqual(ev["data"][0]["sequence"], 1)
        got = api("GET", "/api/v1/sessions/" + s["id"], key=self.key)
        self.assertEqual(got.status, 200)
        self.assertEqual(got.json["title"], "Q1 Sales Analysis")

    def test_get_is_api_session_byte_for_byte(self):
        # GET /sessions/{id} builds the object in C from the columns; every
        # other route uses the SQL function api_session(s): the same bytes
        seed = 18
        print("seed", seed)
        rnd = random.Random(seed)
        odd = ["tab\there", "nl\nquote\"back\\slash", "\u00e9t\u00e9 \u2603 \U0001F600",
               "ctl\x01\x1f", "</script>", ""]
        cases = []
        for i in range(6):
            body = {"agent_id": self.agent} if i % 2 else {"harness_id": self.base}
            if i % 3:
                body["title"] = odd[i]
                body["tags"] = [odd[(i + j) % len(odd)] or "x" for j in range(i)]
            cases.append(self.create(body).json["id"])
        for n, sid in enumerate(cases):
            # every column of the object, with values no create sets:
            # timestamps with sub-millisecond digits, large usage, NULLs
            ts = "20%02d-%02d-%02d %02d:%02d:%02d.%06d+00" % (
                rnd.randrange(0, 40), rnd.randrange(1, 13), rnd.randrange(1, 29),
                rnd.randrange(24), rnd.randrange(60), rnd.randrange(60),
                rnd.choice([0, 999, 999999, rnd.randrange(10 ** 6)]))
            psql("UPDATE sessions SET created_at = $2::timestamptz, "
                 "updated_at = $2::timestamptz + interval '1 day', "
                 "usage_input = $3, usage_output = $4, locale = $5, "
                 "parallel_tool_calls = $6::boolean, max_iterations = $7::int, "
                 "system_prompt = $8, capabilities = $9::jsonb, "
                 "model_id = CASE WHEN $10 THEN NULL ELSE model_id END "
                 "WHERE id = $1::uuid",
                 sid[4:], ts, rnd.randrange(2 ** 40), n, [None, "de-DE"][n % 2],
                 [None, True, False][n % 3], [None, 7][n % 2],
                 [None, odd[n]][n % 2], ['[]', '["a", {"b": 1}]'][n % 2], n == 2)
            want = psql("SELECT api_session(s)::text FROM sessions s WHERE id = $1::uuid",
                        sid[4:])[0][0]
            got = api("GET", "/api/v1/sessions/" + sid, key=self.key)
            self.assertEqual(got.status, 200, got.text)
            self.assertEqual(got.text, want, sid)

    def test_harness_resolution(self):
        agent_h = api("GET", "/api/v1/agents/" + self.agent, key=self.key).json["harness_id"]
        r = self.create({"agent_id": self.agent})
        self.assertEqual(r.json["harness_id"], agent_h)
        r = self.create({"harness_id": self.base})
        self.assertEqual(r.json["harness_id"], self.base)
        self.assertIsNone(r.json["agent_id"])

    def test_create_requires_agent_or_harness(self):
        before = count("sessions")
        r = self.create({"title": "x"})
        self.assertEqual(r.status, 400)
        self.assertIn("agent_id", r.json["error"])
        self.assertEqual(r.json["code"], "validation_error")
        self.assertEqual(count("sessions"), before)

    def test_unknown_references_are_404_naming_the_field(self):
        before = count("sessions")
        for body, field in [
            ({"agent_id": "agt_" + "0" * 32}, "agent_id"),
            ({"agent_id": "agt_01933b5a00007000800000000001"}, "agent_id"),  # the guide's malformed id
            ({"harness_id": "hns_" + "1" * 32}, "harness_id"),
            ({"agent_id": self.agent, "model_id": "mod_" + "2" * 32}, "model_id"),
            ({"agent_id": self.agent, "model_id": "nonsense"}, "model_id"),
        ]:
            r = self.create(body)
            self.assertEqual(r.status, 404, (body, r.text))
            self.assertIn(field, r.json["error"])
            self.assertEqual(r.json["code"], "not_found")
        self.assertEqual(count("sessions"), before)

    def test_validation_errors_name_the_field(self):
        before = count("sessions")
        cases = [
            ({"agent_id": self.agent, "title": 5}, "title"),
            ({"agent_id": self.agent, "title": "x" * 513}, "title"),
            ({"agent_id": self.agent, "tags": "a"}, "tags"),
            ({"agent_id": self.agent, "tags": ["x" * 65]}, "tags[0]"),
            ({"agent_id": self.agent, "tags": ["t%d" % i for i in range(33)]}, "tags"),
            ({"agent_id": self.agent, "tags": [1]}, "tags[0]"),
            ({"agent_id": self.agent, "max_iterations": 0}, "max_iterations"),
            ({"agent_id": self.agent, "max_iterations": "5"}, "max_iterations"),
            ({"agent_id": self.agent, "system_prompt": "x" * 100001}, "system_prompt"),
            ({"agent_id": self.agent, "capabilities": [{"ref": "nope"}]}, "capabilities[0]"),
            ({"agent_id": self.agent, "capabilities": [{"ref": "session_file_system",
                                                        "config": {"max_file_size_mb": "x"}}]},
             "capabilities[0].config.max_file_size_mb"),
            ({"agent_id": self.agent, "capabilities": {}}, "capabilities"),
            ({"agent_id": 7}, "agent_id"),
        ]
        for body, field in cases:
            r = self.create(body)
            self.assertEqual(r.status, 400, (body, r.text))
            self.assertIn(field, r.json["error"], body)
        # limits are inclusive
        ok = self.create({"agent_id": self.agent, "title": "x" * 512,
                          "tags": ["y" * 64] + ["t%d" % i for i in range(31)]})
        self.assertEqual(ok.status, 201, ok.text)
        self.assertEqual(count("sessions"), before + 1)

    def test_capabilities_are_validated_and_normalized(self):
        r = self.create({"agent_id": self.agent, "capabilities": [
            {"ref": "current_time"}, {"ref": "session_file_system", "config": {"max_file_size_mb": 5}}]})
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json["capabilities"], [
            {"ref": "current_time", "config": {}},
            {"ref": "session_file_system", "config": {"max_file_size_mb": 5}}])

    def test_list_filters_and_pagination(self):
        org = new_org("sessions-list")
        key = org["api_key"]
        agent, base, _ = org_ids(key)
        ids = []
        for i in range(5):
            body = {"agent_id": agent, "title": "Report %d" % i, "tags": ["t", "n%d" % (i % 2)]}
            if i == 4:
                body = {"harness_id": base, "title": "Other", "tags": ["t"]}
            ids.append(api("POST", "/api/v1/sessions", body, key=key).json["id"])
        r = api("GET", "/api/v1/sessions?limit=2", key=key)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["total"], 5)
        self.assertEqual((r.json["offset"], r.json["limit"]), (0, 2))
        self.assertEqual([s["id"] for s in r.json["data"]], ids[::-1][:2])  # newest first
        r = api("GET", "/api/v1/sessions?offset=4&limit=2", key=key)
        self.assertEqual([s["id"] for s in r.json["data"]], [ids[0]])
        r = api("GET", "/api/v1/sessions?agent_id=" + agent, key=key)
        self.assertEqual(r.json["total"], 4)
        r = api("GET", "/api/v1/sessions?tags=n1", key=key)
        self.assertEqual(sorted(s["id"] for s in r.json["data"]), sorted([ids[1], ids[3]]))
        r = api("GET", "/api/v1/sessions?tags=t&tags=n0", key=key)
        self.assertEqual(r.json["total"], 2)
        r = api("GET", "/api/v1/sessions?tags=t,n0", key=key)
        self.assertEqual(r.json["total"], 2)
        r = api("GET", "/api/v1/sessions?search=report%203", key=key)
        self.assertEqual([s["id"] for s in r.json["data"]], [ids[3]])
        r = api("GET", "/api/v1/sessions?agent_id=agt_" + "9" * 32, key=key)
        self.assertEqual((r.status, r.json["data"], r.json["total"]), (200, [], 0))
        for q in ("limit=0", "limit=101", "limit=x", "offset=-1", "agent_id=agt_1", "agent_id=bad"):
            r = api("GET", "/api/v1/sessions?" + q, key=key)
            self.assertEqual(r.status, 400, q)
            self.assertIn(q.split("=")[0], r.json["error"])

    def test_patch_title_and_tags(self):
        s = self.create({"agent_id": self.agent, "title": "old", "tags": ["a"]}).json
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"title": "new"}, key=self.key)
        self.assertEqual((r.status, r.json["title"], r.json["tags"]), (200, "new", ["a"]))
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"tags": ["b", "c"]}, key=self.key)
        self.assertEqual((r.json["title"], r.json["tags"]), ("new", ["b", "c"]))
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"title": None}, key=self.key)
        self.assertIsNone(r.json["title"])
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"tags": ["global-chat"]}, key=self.key)
        self.assertEqual(r.status, 400)
        self.assertIn("tags", r.json["error"])
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"title": 1}, key=self.key)
        self.assertEqual(r.status, 400)
        r = api("PATCH", "/api/v1/sessions/ses_" + "3" * 32, {"title": "x"}, key=self.key)
        self.assertEqual(r.status, 404)
        self.assertEqual(psql("SELECT title, tags::text FROM sessions WHERE id = $1::uuid",
                              s["id"][4:]), [(None, "{b,c}")])

    def test_delete_cascades(self):
        s = self.create({"agent_id": self.agent}).json
        sid = s["id"][4:]
        self.assertEqual(count("events", "session_id = $1::uuid", sid), 1)
        r = api("DELETE", "/api/v1/sessions/" + s["id"], key=self.key)
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertEqual(api("GET", "/api/v1/sessions/" + s["id"], key=self.key).status, 404)
        self.assertEqual(api("DELETE", "/api/v1/sessions/" + s["id"], key=self.key).status, 404)
        self.assertEqual(count("events", "session_id = $1::uuid", sid), 0)
        self.assertEqual(api("GET", "/api/v1/sessions/ses_bad", key=self.key).status, 400)

    def test_chat_session_is_a_singleton(self):
        org = new_org("chat")
        key = org["api_key"]
        results = []

        def call():
            results.append(api("POST", "/api/v1/sessions/chat", key=key))

        threads = [threading.Thread(target=call) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r.status for r in results], [200] * 20, [r.text for r in results if r.status != 200])
        ids = {r.json["id"] for r in results}
        self.assertEqual(len(ids), 1)
        s = results[0].json
        self.assertIn("global-chat", s["tags"])
        self.assertIn("user:" + org["user_id"], s["tags"])
        chat_h = api("GET", "/api/v1/harnesses/platform-chat", key=key).json["id"]
        self.assertEqual(s["harness_id"], chat_h)
        self.assertEqual(count("sessions", "org_id = $1::uuid", org["organization_id"][4:]), 1)
        # empty body with any content type, and {}
        r = api("POST", "/api/v1/sessions/chat", raw=b"", content_type="text/plain", key=key)
        self.assertEqual((r.status, r.json["id"]), (200, s["id"]))
        r = api("POST", "/api/v1/sessions/chat", {}, key=key)
        self.assertEqual(r.json["id"], s["id"])
        # its reserved tags cannot be removed
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"tags": ["x"]}, key=key)
        self.assertEqual(r.status, 400)
        r = api("PATCH", "/api/v1/sessions/" + s["id"], {"tags": s["tags"] + ["mine"]}, key=key)
        self.assertEqual(r.status, 200)

    def test_idempotency_key(self):
        body = {"agent_id": self.agent, "title": "idem"}
        before = count("sessions")
        a = self.create(body, headers={"Idempotency-Key": "create-1"})
        b = self.create(body, headers={"Idempotency-Key": "create-1"})
        self.assertEqual((a.status, b.status), (201, 201))
        self.assertEqual(a.json, b.json)
        self.assertEqual(b.headers.get("idempotent-replayed"), "true")
        self.assertNotIn("idempotent-replayed", a.headers)
        self.assertEqual(count("sessions"), before + 1)
        c = self.create({"agent_id": self.agent, "title": "other"}, headers={"Idempotency-Key": "create-1"})
        self.assertEqual((c.status, c.json["code"]), (422, "idempotency_key_reused"))
        # a failed request stores nothing: the key can be used afterwards
        d = self.create({"title": "no agent"}, headers={"Idempotency-Key": "create-2"})
        self.assertEqual(d.status, 400)
        e = self.create(body, headers={"Idempotency-Key": "create-2"})
        self.assertEqual(e.status, 201)
        for bad in ("", "x" * 256, "caf\u00e9"):
            r = self.create(body, headers={"Idempotency-Key": bad})
            self.assertEqual(r.status, 400, repr(bad))
            self.assertIn("Idempotency-Key", r.json["error"])
        self.assertEqual(self.create(body, headers={"Idempotency-Key": "k" * 255}).status, 201)
        # concurrent duplicates: exactly one session
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            self.create(body, headers={"Idempotency-Key": "race"}))) for _ in range(10)]
        before = count("sessions")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual({r.status for r in results}, {201})
        self.assertEqual(len({r.json["id"] for r in results}), 1)
        self.assertEqual(count("sessions"), before + 1)

    def test_tenant_isolation(self):
        other = new_org("sessions-b")
        okey = other["api_key"]
        s = self.create({"agent_id": self.agent, "title": "private"}).json
        for method, path, body in [
            ("GET", "/api/v1/sessions/" + s["id"], None),
            ("PATCH", "/api/v1/sessions/" + s["id"], {"title": "stolen"}),
            ("DELETE", "/api/v1/sessions/" + s["id"], None),
            ("GET", "/api/v1/sessions/%s/events" % s["id"], None),
            ("GET", "/api/v1/sessions/%s/messages" % s["id"], None),
            ("POST", "/api/v1/sessions/%s/messages" % s["id"], {"message": {"content": "hi"}}),
            ("POST", "/api/v1/sessions/%s/cancel" % s["id"], None),
        ]:
            r = api(method, path, body, key=okey)
            self.assertEqual(r.status, 404, (method, path, r.text))
        self.assertNotIn(s["id"], [x["id"] for x in api("GET", "/api/v1/sessions?limit=100", key=okey).json["data"]])
        # another org's agent or model is a 404 naming the field
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=okey)
        self.assertEqual(r.status, 404)
        self.assertIn("agent_id", r.json["error"])
        self.assertEqual(api("GET", "/api/v1/sessions/" + s["id"], key=self.key).json["title"], "private")


class Edge(unittest.TestCase):
    """Auth forms and the generic error classes, on real routes."""

    def test_auth_header_forms(self):
        for scheme in ("Bearer", "ApiKey", ""):
            r = api("GET", "/api/v1/auth/me", auth_scheme=scheme)
            self.assertEqual(r.status, 200, scheme)
        me = api("GET", "/api/v1/auth/me").json
        self.assertRegex(me["id"], ID["usr"])
        self.assertRegex(me["organization_id"], ID["org"])

    def test_unauthorized(self):
        for key, scheme in [(None, "Bearer"), ("evr_123", "Bearer"), ("nope", "Bearer"),
                            ("evr_" + "a" * 64, "Bearer"), (ADMIN_KEY, "Basic")]:
            r = api("GET", "/api/v1/sessions", key=key, auth_scheme=scheme)
            self.assertEqual(r.status, 401, (key, scheme))
            self.assertEqual(r.json, {"error": "Unauthorized", "code": "unauthorized", "status": 401,
                                      "title": "Unauthorized", "detail": "Unauthorized"})

    def test_api_keys_create_list_revoke(self):
        org = new_org("keys")
        key = org["api_key"]
        r = api("POST", "/api/v1/auth/api-keys", {"name": "ci"}, key=key)
        self.assertEqual(r.status, 201, r.text)
        new = r.json
        self.assertRegex(new["key"], r"^evr_[0-9a-f]{64}$")
        self.assertRegex(new["id"], ID["key"])
        self.assertTrue(new["key_prefix"].startswith(new["key"][:12]))
        self.assertEqual(api("GET", "/api/v1/auth/me", key=new["key"]).status, 200)
        lst = api("GET", "/api/v1/auth/api-keys", key=key).json
        self.assertEqual(lst["total"], 2)
        self.assertNotIn("key", lst["data"][0])
        self.assertNotIn(new["key"], json.dumps(lst))
        # stored only as a SHA-256
        self.assertEqual(count("api_keys", "key_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                               new["key"]), 1)
        self.assertEqual(count("api_keys", "key_hash = $1 OR key_prefix = $1", new["key"]), 0)
        r = api("DELETE", "/api/v1/auth/api-keys/" + new["id"], key=key)
        self.assertEqual(r.status, 204)
        self.assertEqual(api("GET", "/api/v1/auth/me", key=new["key"]).status, 401)
        self.assertEqual(api("DELETE", "/api/v1/auth/api-keys/" + new["id"], key=key).status, 404)
        self.assertEqual(api("DELETE", "/api/v1/auth/api-keys/key_x", key=key).status, 400)
        r = api("POST", "/api/v1/auth/api-keys", {"name": ""}, key=key)
        self.assertEqual(r.status, 400)
        r = api("POST", "/api/v1/auth/api-keys", {"expires_in_days": 0}, key=key)
        self.assertEqual(r.status, 400)
        self.assertIn("expires_in_days", r.json["error"])
        # another org cannot revoke it
        k2 = api("POST", "/api/v1/auth/api-keys", {"name": "x"}, key=key).json
        self.assertEqual(api("DELETE", "/api/v1/auth/api-keys/" + k2["id"]).status, 404)
        self.assertEqual(api("GET", "/api/v1/auth/me", key=k2["key"]).status, 200)

    def test_revocation_reaches_every_worker(self):
        # the api caches valid keys per thread; a revocation must still
        # take effect at once on every process and thread
        org = new_org("revoke")
        k = api("POST", "/api/v1/auth/api-keys", {"name": "hot"}, key=org["api_key"]).json
        results = []

        def hammer(n):
            for _ in range(n):
                results.append(api("GET", "/api/v1/auth/me", key=k["key"]).status)
        threads = [threading.Thread(target=hammer, args=(25,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(set(results), {200})
        self.assertEqual(api("DELETE", "/api/v1/auth/api-keys/" + k["id"], key=org["api_key"]).status, 204)
        results.clear()
        threads = [threading.Thread(target=hammer, args=(25,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(set(results), {401})
        # and an admin revocation too
        k2 = api("POST", "/api/v1/auth/api-keys", {"name": "hot2"}, key=org["api_key"]).json
        for _ in range(40):
            self.assertEqual(api("GET", "/api/v1/auth/me", key=k2["key"]).status, 200)
        admin("revoke-key", k2["id"])
        for _ in range(40):
            self.assertEqual(api("GET", "/api/v1/auth/me", key=k2["key"]).status, 401)

    def test_method_not_allowed(self):
        r = api("PUT", "/api/v1/sessions", {})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["allow"], "GET, POST")
        self.assertEqual(r.json["code"], "method_not_allowed")
        r = api("POST", "/api/v1/sessions/ses_" + "0" * 32)
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["allow"], "GET, PATCH, DELETE")

    def test_unsupported_media_type(self):
        r = api("POST", "/api/v1/sessions", raw=b"title=x", content_type="application/x-www-form-urlencoded")
        self.assertEqual((r.status, r.json["code"]), (415, "unsupported_media_type"))
        r = api("POST", "/api/v1/sessions", raw=b'{"title":"x"}', content_type=None)
        self.assertEqual(r.status, 415)
        r = api("POST", "/api/v1/auth/api-keys", raw=b'{"name":"x"}',
                content_type="application/json; charset=utf-8")
        self.assertEqual(r.status, 201)

    def test_invalid_json_utf8_and_nesting(self):
        before = count("sessions")
        for raw in (b'{"agent_id":', b"[1,2]", b'{"title":"\xff\xfe"}', b"{'a':1}",
                    b'{"title":"a"} x', b"null"):
            r = api("POST", "/api/v1/sessions", raw=raw, content_type="application/json")
            self.assertEqual(r.status, 400, raw)
            self.assertEqual(r.json["code"], "invalid_json", raw)

        def nested(depth):
            return ('{"a":' * (depth - 1) + "1" + "}" * (depth - 1)).encode()

        # 32 levels accepted (then refused for the missing agent), 33 refused as JSON
        r = api("POST", "/api/v1/sessions", raw=nested(32), content_type="application/json")
        self.assertEqual((r.status, r.json["code"]), (400, "validation_error"))
        r = api("POST", "/api/v1/sessions", raw=nested(33), content_type="application/json")
        self.assertEqual((r.status, r.json["code"]), (400, "invalid_json"))
        self.assertIn("nesting", r.json["error"])
        r = api("POST", "/api/v1/auth/api-keys", {"name": "a\u0000b"})
        self.assertEqual(r.status, 400)
        self.assertIn("name", r.json["error"])
        self.assertEqual(count("sessions"), before)

    def test_invalid_utf8_in_path_and_query(self):
        self.assertEqual(api("GET", "/api/v1/agents/%ff%fe").status, 400)
        self.assertEqual(api("GET", "/api/v1/agents/a%00b").status, 400)
        self.assertEqual(api("GET", "/api/v1/sessions?search=%ff").status, 400)
        self.assertEqual(api("GET", "/api/v1/agents?search=%c3%28").status, 400)

    def test_body_limit(self):
        # nginx refuses over 1 MiB in its own JSON shape
        r = api("POST", "/api/v1/sessions", raw=b'{"title":"' + b"x" * (1024 * 1024) + b'"}',
                content_type="application/json")
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json["code"], "payload_too_large")

    def test_unknown_route(self):
        r = api("GET", "/api/v1/nothing-here")
        self.assertEqual((r.status, r.json["code"]), (404, "not_found"))


if __name__ == "__main__":
    unittest.main()
