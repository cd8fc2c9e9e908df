"""Client-side tools and the waiting turn (ARCHITECTURE 3.9): a call of a
client-side tool writes tool.call_requested, the session waits
(waitingfortoolresults, no lease, no runner), POST .../tool-results answers
and the turn goes on from the log; with llmsim and with the fake provider's
OpenAI and Anthropic wire formats. Wrong answers (unknown ids, duplicates,
late, another session's call, the wrong kind, a session that does not
wait), cancel while waiting, the wait's time limit, and a seeded run of
hostile result payloads."""

import json
import os
import random
import signal
import sys
import time
import unittest

from evr import api, at_once, psql, new_org, wait_until, ctl, pg_restart, stack_pid, start_runner
from test_drivers import Fake, fake_providers

LOCATE = {"type": "client_side", "name": "get_location",
          "description": "The user's location, from the client.",
          "parameters": {"type": "object", "properties": {"precise": {"type": "boolean"}}},
          "display_name": "Location"}
PICK = {"type": "client_side", "name": "pick_color",
        "description": "Ask the user to pick a color.",
        "parameters": {"type": "object", "properties": {}}}


def events(key, sid, since=0):
    r = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d&limit=1000" % (sid, since), key=key)
    assert r.status == 200, r.text
    return r.json["data"]


def wait_event(key, sid, typ, since=0, timeout=15):
    out = []

    def seen():
        out[:] = events(key, sid, since)
        return any(e["type"] == typ for e in out)
    wait_until(seen, timeout=timeout, what=typ)
    return out


def send(key, sid, text):
    r = api("POST", "/api/v1/sessions/%s/messages" % sid,
            {"message": {"content": [{"type": "text", "text": text}]}}, key=key)
    assert r.status == 201, r.text
    return r.json


def results(key, sid, answers):
    return api("POST", "/api/v1/sessions/%s/tool-results" % sid, {"tool_results": answers}, key=key)


def approvals(key, sid, answers):
    return api("POST", "/api/v1/sessions/%s/tool-approvals" % sid, {"approvals": answers}, key=key)


def status(key, sid):
    return api("GET", "/api/v1/sessions/%s" % sid, key=key).json["status"]


def requested(evs):
    """The calls of the last tool.call_requested."""
    return [e for e in evs if e["type"] == "tool.call_requested"][-1]["data"]["tool_calls"]


class ClientTools(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.org = new_org("client-tools")
        cls.key = cls.org["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def session(self, tools=(LOCATE,), **body):
        body.setdefault("agent_id", self.agent)
        body["tools"] = list(tools)
        r = api("POST", "/api/v1/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def wait_for_request(self, sid, since=0):
        evs = wait_event(self.key, sid, "tool.call_requested", since)
        wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
        return evs

    def test_request_answer_continue_llmsim(self):
        sid = self.session()
        m = send(self.key, sid, 'Where am I?\n#tool get_location {"precise": true}')
        evs = self.wait_for_request(sid)
        calls = requested(evs)
        self.assertEqual([c["name"] for c in calls], ["get_location"])
        self.assertEqual(calls[0]["arguments"], {"precise": True})
        req = [e for e in evs if e["type"] == "tool.call_requested"][-1]["data"]
        # the new event types are known to the filters
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=0&types=tool.call_requested,"
                "tool.approval_requested,tool.approval_resolved,turn.resumed" % sid, key=self.key)
        self.assertEqual((r.status, [e["type"] for e in r.json["data"]]), (200, ["tool.call_requested"]))
        self.assertEqual(req["tool_summaries"][0]["display_name"], "Location")
        self.assertEqual(req["turn_id"], m["turn_id"])
        # nothing holds the turn while it waits
        row = psql("SELECT state, lease_owner IS NULL FROM turns WHERE id = $1::uuid",
                   m["turn_id"][4:])
        self.assertEqual(row, [("waiting", "t")])
        got = api("GET", "/api/v1/sessions/" + sid, key=self.key).json
        self.assertEqual(got["status"], "waitingfortoolresults")
        self.assertEqual(got["tools"][0]["name"], "get_location")
        r = results(self.key, sid, [{"tool_call_id": calls[0]["id"], "result": {"city": "Kyiv"}}])
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json, {"accepted": 1, "status": "active"})
        evs = wait_event(self.key, sid, "session.idled")
        types = [e["type"] for e in evs]
        self.assertEqual(types[types.index("act.started"):], [
            "act.started", "tool.call_requested", "tool.completed", "turn.resumed", "act.completed",
            "reason.started", "output.message.started", "output.message.completed", "reason.completed",
            "turn.completed", "session.idled"])
        act = [e for e in evs if e["type"] == "act.completed"][0]["data"]
        self.assertEqual((act["success_count"], act["error_count"]), (1, 0))
        self.assertEqual(types.count("turn.started"), 1)
        done = [e for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(done[0]["data"]["source"], "client")
        self.assertTrue(done[0]["data"]["success"])
        self.assertIn("Kyiv", done[0]["data"]["result"][0]["text"])
        # llmsim's answer summarises the tool result: the model saw it
        final = [e for e in evs if e["type"] == "output.message.completed"][-1]
        self.assertIn("Kyiv", json.dumps(final["data"]["message"]["content"]))
        self.assertEqual(status(self.key, sid), "idle")
        # the SQL shape and the C shape of GET agree
        sql = json.loads(psql("SELECT api_session(s) FROM sessions s WHERE id = $1::uuid",
                              sid[4:])[0][0])
        self.assertEqual(sql, api("GET", "/api/v1/sessions/" + sid, key=self.key).json)

    def test_several_calls_mixed_with_builtins_partial_answers(self):
        sid = self.session(tools=(LOCATE, PICK))
        send(self.key, sid, '#tool get_location {}\n#tool get_current_time {"timezone": "UTC"}\n'
                            '#tool pick_color {}')
        evs = self.wait_for_request(sid)
        types = [e["type"] for e in evs]
        # the built-in ran in the same step, before the wait
        builtin = [e for e in evs if e["type"] == "tool.completed"]
        self.assertEqual([d["data"]["tool_name"] for d in builtin], ["get_current_time"])
        self.assertLess(types.index("tool.completed"), types.index("tool.call_requested"))
        self.assertNotIn("act.completed", types)
        calls = requested(evs)
        self.assertEqual([c["name"] for c in calls], ["get_location", "pick_color"])
        r = results(self.key, sid, [{"tool_call_id": calls[1]["id"], "result": "teal"}])
        self.assertEqual((r.status, r.json), (200, {"accepted": 1, "status": "waitingfortoolresults"}))
        self.assertEqual(status(self.key, sid), "waitingfortoolresults")
        r = results(self.key, sid, [{"tool_call_id": calls[0]["id"], "error": "location is off"}])
        self.assertEqual((r.status, r.json), (200, {"accepted": 1, "status": "active"}))
        evs = wait_event(self.key, sid, "session.idled")
        done = {e["data"]["tool_call_id"]: e["data"] for e in evs if e["type"] == "tool.completed"}
        self.assertEqual(done[calls[0]["id"]]["error"], "location is off")
        self.assertFalse(done[calls[0]["id"]]["success"])
        self.assertEqual(done[calls[1]["id"]]["result"][0]["text"], "teal")
        self.assertEqual(evs[-2]["type"], "turn.completed")
        # one model step, one wait: the turn's iterations go on from the log
        self.assertEqual(evs[-2]["data"]["iterations"], 2)

    def test_wrong_answers(self):
        sid = self.session(tools=(LOCATE, PICK))
        other = self.session()
        # a session that does not wait
        r = results(self.key, other, [{"tool_call_id": "call_1", "result": 1}])
        self.assertEqual((r.status, r.json["code"]), (409, "not_waiting"))
        send(self.key, sid, "#tool get_location {}\n#tool pick_color {}")
        calls = requested(self.wait_for_request(sid))
        a, b = calls[0]["id"], calls[1]["id"]
        send(self.key, other, "#tool get_location {}")
        ocall = requested(self.wait_for_request(other))[0]["id"]
        cases = [
            ([{"tool_call_id": "call_nope", "result": 1}], 400, "unknown_tool_call"),
            ([{"tool_call_id": ocall, "result": 1}], 400, "unknown_tool_call"),  # another session's
            ([{"tool_call_id": a, "result": 1}, {"tool_call_id": a, "result": 2}], 400, "duplicate_tool_call"),
            ([{"tool_call_id": a, "result": 1}, {"tool_call_id": "call_nope", "result": 2}], 400,
             "unknown_tool_call"),
            ([], 400, "validation_error"),
            ([{"result": 1}], 400, "validation_error"),
            ([{"tool_call_id": a, "error": 5}], 400, "validation_error"),
        ]
        for body, st, code in cases:
            r = results(self.key, sid, body)
            self.assertEqual((r.status, r.json["code"]), (st, code), (body, r.text))
        # nothing of a refused request was written: a is still pending
        self.assertEqual([e for e in events(self.key, sid) if e["type"] == "tool.completed"], [])
        r = api("POST", "/api/v1/sessions/%s/tool-results" % sid, {"results": []}, key=self.key)
        self.assertEqual((r.status, r.json["code"]), (400, "validation_error"))
        # the wrong kind: an approval for a client-side call
        r = approvals(self.key, sid, [{"tool_call_id": a, "approved": True}])
        self.assertEqual((r.status, r.json["code"]), (400, "wrong_kind"))
        # another organization's session is not found
        stranger = new_org("client-tools-other")["api_key"]
        r = results(stranger, sid, [{"tool_call_id": a, "result": 1}])
        self.assertEqual((r.status, r.json["code"]), (404, "not_found"))
        self.assertEqual(results(self.key, sid, [{"tool_call_id": a, "result": 1}]).status, 200)
        # twice
        r = results(self.key, sid, [{"tool_call_id": a, "result": 1}])
        self.assertEqual((r.status, r.json["code"]), (409, "already_answered"))
        self.assertIn(a, r.json["error"])
        self.assertEqual(results(self.key, sid, [{"tool_call_id": b, "result": 2}]).status, 200)
        wait_event(self.key, sid, "session.idled")
        # late: the turn went on and ended
        r = results(self.key, sid, [{"tool_call_id": b, "result": 3}])
        self.assertEqual((r.status, r.json["code"]), (409, "not_waiting"))
        api("POST", "/api/v1/sessions/%s/cancel" % other, key=self.key)

    def test_new_message_while_waiting_is_refused_as_while_active(self):
        sid = self.session()
        send(self.key, sid, "#tool get_location {}")
        self.wait_for_request(sid)
        r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": "hello?"}]}}, key=self.key)
        self.assertEqual((r.status, r.json["code"]), (400, "session_busy"))
        api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)

    def test_cancel_while_waiting(self):
        sid = self.session()
        m = send(self.key, sid, "#tool get_location {}")
        evs = self.wait_for_request(sid)
        call = requested(evs)[0]["id"]
        c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual((c.status, c.json["status"]), (200, "cancelled"))
        # at once: no runner is involved
        self.assertEqual(status(self.key, sid), "idle")
        evs = events(self.key, sid)
        self.assertEqual([e["type"] for e in evs][-4:],
                         ["turn.cancelled", "input.message", "output.message.completed", "session.idled"])
        self.assertEqual(psql("SELECT state FROM turns WHERE id = $1::uuid", m["turn_id"][4:]),
                         [("cancelled",)])
        r = results(self.key, sid, [{"tool_call_id": call, "result": 1}])
        self.assertEqual((r.status, r.json["code"]), (409, "not_waiting"))
        # the next turn runs; its history gives the unanswered call a result
        send(self.key, sid, "hello again")
        evs = wait_event(self.key, sid, "session.idled", evs[-1]["sequence"])
        self.assertEqual(evs[-2]["type"], "turn.completed")

    def test_wait_past_its_deadline_fails(self):
        sid = self.session()
        m = send(self.key, sid, "#tool get_location {}")
        call = requested(self.wait_for_request(sid))[0]["id"]
        # the deadline the runner set is tool_wait_max_s (the test stack's
        # default); move it into the past: a runner's poll fails the turn
        left = float(psql("SELECT extract(epoch FROM wait_until - wait_started) FROM turns "
                          "WHERE id = $1::uuid", m["turn_id"][4:])[0][0])
        self.assertAlmostEqual(left, 86400, delta=1)
        psql("UPDATE turns SET wait_until = now() - interval '1 second' WHERE id = $1::uuid",
             m["turn_id"][4:])
        evs = wait_event(self.key, sid, "session.idled", timeout=15)
        failed = [e for e in evs if e["type"] == "turn.failed"][0]["data"]
        self.assertEqual(failed["error_code"], "tool_wait_timeout")
        self.assertEqual(status(self.key, sid), "idle")
        r = results(self.key, sid, [{"tool_call_id": call, "result": 1}])
        self.assertEqual((r.status, r.json["code"]), (409, "not_waiting"))

    def test_answers_cancel_and_expiry_racing(self):
        # the answer routes, cancel and the wait's expiry, at once on one
        # waiting turn: each takes the session's row first, so every run
        # ends in one consistent state (no 500, no deadlock, one result
        # per call at most, the session idle at the end)
        import threading
        seed = int(os.environ.get("EVR_SEED", random.randrange(1 << 30)))
        print("seed: EVR_SEED=%d" % seed, file=sys.stderr)
        rnd = random.Random(seed)
        for round_ in range(6):
            sid = self.session()
            m = send(self.key, sid, "#tool get_location {}")
            call = requested(self.wait_for_request(sid))[0]["id"]
            tid = m["turn_id"][4:]
            acts = ["answer"] * rnd.randint(1, 4) + rnd.sample(["cancel", "expire", "answer"], 2)
            rnd.shuffle(acts)
            out = [None] * len(acts)

            def run(i, what):
                if what == "answer":
                    r = results(self.key, sid, [{"tool_call_id": call, "result": i}])
                    out[i] = (what, r.status, (r.json or {}).get("code"))
                elif what == "cancel":
                    r = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
                    out[i] = (what, r.status, None)
                else:
                    psql("UPDATE turns SET wait_until = now() - interval '1 second' "
                         "WHERE id = $1::uuid AND state = 'waiting'", tid)
                    psql("SELECT evr_expire_waits()")
                    out[i] = (what, 200, None)
            threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(acts)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            self.assertTrue(all(out), (round_, acts, out))
            for what, st, code in out:
                self.assertIn((what, st), {("answer", 200), ("answer", 409), ("cancel", 200),
                                           ("expire", 200)}, (round_, acts, out))
                if what == "answer" and st == 409:
                    self.assertIn(code, ("already_answered", "not_waiting"), out)
            self.assertLessEqual(len([o for o in out if o[:2] == ("answer", 200)]), 1, out)
            evs = wait_event(self.key, sid, "session.idled", timeout=20)
            wait_until(lambda: status(self.key, sid) == "idle", what="idle")
            evs = events(self.key, sid)
            types = [e["type"] for e in evs]
            done = [e for e in evs if e["type"] == "tool.completed" and
                    e["data"]["tool_call_id"] == call]
            self.assertLessEqual(len(done), 1, (acts, out))
            self.assertEqual(len([t for t in types if t == "session.idled"]), 1, (acts, out, types))
            row = psql("SELECT state FROM turns WHERE id = $1::uuid", tid)[0][0]
            self.assertIn(row, ("completed", "failed", "cancelled"), (acts, out))

    def test_expiry_waits_for_no_lock(self):
        # evr_expire_waits runs in a runner's event loop: a session held
        # by another transaction is skipped (taken on a later poll), not
        # waited for; the other expired waits and the runner's other
        # turns go on meanwhile
        import threading
        s1, s2 = self.session(), self.session()
        t1 = send(self.key, s1, "#tool get_location {}")["turn_id"][4:]
        t2 = send(self.key, s2, "#tool get_location {}")["turn_id"][4:]
        self.wait_for_request(s1)
        self.wait_for_request(s2)
        held = threading.Event()
        hold_s = at_once(8)

        def hold():
            held.set()
            psql("DO $$BEGIN PERFORM 1 FROM sessions WHERE id = '%s'::uuid FOR UPDATE; "
                 "PERFORM pg_sleep(%g); END$$" % (s2[4:], hold_s))
        th = threading.Thread(target=hold)
        th.start()
        held.wait()
        time.sleep(0.5)
        # s2's wait ends first: a loop in deadline order meets its lock first
        psql("UPDATE turns SET wait_until = now() - interval '2 seconds' WHERE id = $1::uuid", t2)
        psql("UPDATE turns SET wait_until = now() - interval '1 second' WHERE id = $1::uuid", t1)
        t0 = time.time()
        s3 = self.session(tools=())
        send(self.key, s3, "hello")
        wait_event(self.key, s3, "session.idled", timeout=15)
        wait_event(self.key, s1, "session.idled", timeout=15)
        took = time.time() - t0
        self.assertEqual(status(self.key, s2), "waitingfortoolresults")
        th.join(hold_s + 10)
        self.assertLess(took, hold_s * 0.75, "s1's expiry and s3's turn waited for s2's lock")
        evs = wait_event(self.key, s2, "session.idled", timeout=at_once(15))
        self.assertEqual([e["data"]["error_code"] for e in evs if e["type"] == "turn.failed"],
                         ["tool_wait_timeout"])

    def test_tools_validation(self):
        bad = [
            ([{"type": "client_side", "name": "bad name", "description": "d",
               "parameters": {"type": "object"}}], "name"),
            ([{"type": "client_side", "name": "x" * 65, "description": "d",
               "parameters": {"type": "object"}}], "name"),
            ([{"type": "client_side", "name": "nodesc", "parameters": {"type": "object"}}], "description"),
            ([{"type": "client_side", "name": "noparams", "description": "d"}], "parameters"),
            ([{"type": "client_side", "name": "arr", "description": "d",
               "parameters": {"type": "array"}}], "parameters"),
            ([{"type": "client_side", "name": "untyped", "description": "d",
               "parameters": {}}], "parameters"),
            ([{"type": "client_side", "name": "read_file", "description": "d",
               "parameters": {"type": "object"}}], "capability"),
            ([LOCATE, LOCATE], "twice"),
            ([{"type": "mystery", "name": "m"}], "type"),
            ([{"type": "builtin", "name": "write_file", "policy": "sometimes"}], "policy"),
            ("nope", "tools"),
        ]
        for tools, word in bad:
            r = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "tools": tools}, key=self.key)
            self.assertEqual(r.status, 400, (tools, r.text))
            self.assertIn(word, r.json["error"])
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "approval": "sometimes"}, key=self.key)
        self.assertEqual(r.status, 400, r.text)
        # a name another layer defines: the agent's
        admin = self.key
        ag = api("POST", "/api/v1/agents", {"name": "with-location", "tools": [LOCATE],
                                             "approval": "writes"}, key=admin)
        self.assertEqual(ag.status, 201, ag.text)
        self.assertEqual((ag.json["tools"][0]["name"], ag.json["approval"]), ("get_location", "writes"))
        r = api("POST", "/api/v1/sessions", {"agent_id": ag.json["id"], "tools": [LOCATE]}, key=admin)
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("another layer", r.json["error"])
        r = api("POST", "/api/v1/sessions", {"agent_id": ag.json["id"], "tools": [PICK]}, key=admin)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        r = api("PATCH", "/api/v1/sessions/" + sid, {"tools": [LOCATE]}, key=admin)
        self.assertEqual(r.status, 400, r.text)
        r = api("PATCH", "/api/v1/sessions/" + sid, {"approval": "all"}, key=admin)
        self.assertEqual((r.status, r.json["approval"], r.json["tools"][0]["name"]), (200, "all", "pick_color"))
        got = api("GET", "/api/v1/sessions/" + sid, key=admin).json
        self.assertEqual(got, r.json)  # session_json.c writes what api_session() does
        r = api("PATCH", "/api/v1/agents/" + ag.json["id"], {"approval": None, "tools": []}, key=admin)
        self.assertEqual((r.status, r.json["approval"], r.json["tools"]), (200, None, []))
        h = api("POST", "/api/v1/harnesses", {"name": "h-tools", "tools": [PICK], "approval": "all"}, key=admin)
        self.assertEqual((h.status, h.json["approval"]), (201, "all"), h.text)
        r = api("PATCH", "/api/v1/harnesses/" + h.json["id"],
                {"tools": [{"type": "builtin", "name": "write_file", "policy": "requires_approval"}]},
                key=admin)
        self.assertEqual((r.status, r.json["tools"][0]["policy"]), (200, "requires_approval"), r.text)

    def test_tool_sizes_are_bounded(self):
        # parameters and hints go to the model with every request: at most
        # tool_schema_max_bytes (64 KiB) each as JSON; a description at most
        # tool_description_max_bytes (4 KiB); answers and reasons too
        props = lambda n: {"type": "object", "properties": {
            "p%d" % i: {"type": "string", "description": "x" * 90} for i in range(n)}}
        fits, big = props(450), props(550)
        self.assertLess(len(json.dumps(fits, separators=(",", ":"))), 65536)
        self.assertGreater(len(json.dumps(big, separators=(",", ":"))), 65536)
        tool = lambda **kw: dict({"type": "client_side", "name": "sized", "description": "d",
                                  "parameters": {"type": "object"}}, **kw)
        for t, field in ((tool(parameters=big), "tools[0].parameters"),
                         (tool(hints={"h": big}), "tools[0].hints"),
                         (tool(description="d" * 4097), "tools[0].description")):
            for method, path in (("POST", "/api/v1/sessions"), ("POST", "/api/v1/agents")):
                body = {"tools": [t]}
                body.update({"agent_id": self.agent} if path.endswith("sessions") else
                            {"name": "sized-" + os.urandom(4).hex()})
                r = api(method, path, body, key=self.key)
                self.assertEqual(r.status, 400, (field, r.text[:200]))
                self.assertIn(field.split(".")[-1] if "description" in field else field, r.json["error"])
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "tools": [
            tool(parameters=fits, description="d" * 4096)]}, key=self.key)
        self.assertEqual(r.status, 201, r.text[:200])
        sid = r.json["id"]
        r = results(self.key, sid, [{"tool_call_id": "c%d" % i, "result": 1} for i in range(1001)])
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("at most 1000", r.json["error"])
        r = approvals(self.key, sid, [{"tool_call_id": "c", "approved": False, "reason": "r" * 4097}])
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("reason", r.json["error"])

    def test_generated_result_payloads_all_let_the_turn_end(self):
        seed = int(os.environ.get("EVR_SEED", random.randrange(1 << 30)))
        print("seed: EVR_SEED=%d" % seed, file=sys.stderr)
        rnd = random.Random(seed)

        def text(n):
            # any code point but the surrogates (JSON cannot carry them
            # unpaired); U+0000 is refused, and says so
            out = []
            for _ in range(n):
                c = rnd.choice([rnd.randrange(0x20, 0x7f), rnd.randrange(0x80, 0xd800),
                                rnd.randrange(0xe000, 0x110000), rnd.randrange(0, 0x20)])
                out.append(chr(c))
            return "".join(out)

        def value(depth=0):
            k = rnd.randrange(8)
            if depth > 20 or k == 0:
                return text(rnd.randrange(0, 40))
            if k == 1:
                return rnd.choice([None, True, False, rnd.random() * 1e300, -rnd.randrange(1 << 62)])
            if k < 5:
                return [value(depth + 1) for _ in range(rnd.randrange(0, 4))]
            return {text(rnd.randrange(1, 8)): value(depth + 1) for _ in range(rnd.randrange(0, 4))}

        def deep(n):
            v = "bottom"
            for _ in range(n):
                v = [v]
            return v
        payloads = [value() for _ in range(6)] + [
            deep(rnd.randrange(20, 31)), deep(40), text(200) + "\u0000",
            "x" * (1024 * 1024 - 200), "y" * (2 * 1024 * 1024), {"k": text(5000)}]
        sid = self.session()
        for i, payload in enumerate(payloads):
            since = events(self.key, sid)[-1]["sequence"]
            send(self.key, sid, "#tool get_location {}")
            call = requested(self.wait_for_request(sid, since))[0]["id"]
            answer = {"tool_call_id": call}
            if i % 3 == 2 and isinstance(payload, str) and len(payload) < 10000:
                answer["error"] = payload
            else:
                answer["result"] = payload
            r = results(self.key, sid, [answer])
            if r.status == 200:
                evs = wait_event(self.key, sid, "session.idled", since)
                self.assertEqual(evs[-2]["type"], "turn.completed", (seed, i, evs[-2]))
            else:
                # refused whole, with a reason, and the turn still waits
                self.assertIn(r.status, (400, 413), (seed, i, r.text))
                self.assertIn(r.json["code"], ("validation_error", "invalid_json", "payload_too_large"),
                              (seed, i, r.text))
                self.assertEqual(status(self.key, sid), "waitingfortoolresults")
                self.assertEqual(results(self.key, sid, [{"tool_call_id": call, "result": "ok"}]).status,
                                 200)
                evs = wait_event(self.key, sid, "session.idled", since)
                self.assertEqual(evs[-2]["type"], "turn.completed", (seed, i, evs[-2]))


class ClientToolsFakeProvider(unittest.TestCase):
    """The same through both wire formats of the fake provider: what the
    model is offered, and what it sees after an answer and after a cancel."""

    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()
        cls.key = new_org("client-tools-fake")["api_key"]
        cls.providers = fake_providers(cls.fake, cls.key)
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def session(self, kind):
        name = "m-" + os.urandom(6).hex()
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.providers[kind],
                {"model_id": name, "capabilities": ["chat", "tools"]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        r = api("POST", "/api/v1/sessions", {
            "harness_id": self.harness, "model_id": r.json["id"], "tools": [LOCATE],
            "capabilities": [{"ref": "test_math"}]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return name, r.json["id"]

    def test_answer_reaches_the_model_in_both_wire_formats(self):
        for kind in ("openai_completions", "anthropic"):
            name, sid = self.session(kind)
            self.fake.script(name,
                             {"tool_calls": [{"id": "call_loc", "name": "get_location",
                                              "arguments": '{"precise":true}'},
                                             {"id": "call_sum", "name": "calculate",
                                              "arguments": '{"operation":"add","a":2,"b":3}'}]},
                             {"text": "You are in Kyiv and 2+3 is 5.", "chunks": 2})
            send(self.key, sid, "where am I, and what is 2+3?")
            evs = wait_event(self.key, sid, "tool.call_requested")
            calls = requested(evs)
            self.assertEqual([(c["id"], c["arguments"]) for c in calls], [("call_loc", {"precise": True})])
            wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
            # offered to the model with its schema, next to the capability's
            req0 = self.fake.requests(name)[0]["body"]
            if kind == "anthropic":
                offered = {t["name"]: t.get("input_schema") for t in req0["tools"]}
            else:
                offered = {t["function"]["name"]: t["function"].get("parameters") for t in req0["tools"]}
            self.assertEqual(offered["get_location"], LOCATE["parameters"])
            self.assertIn("calculate", offered)
            r = results(self.key, sid, [{"tool_call_id": "call_loc", "result": {"city": "Kyiv"}}])
            self.assertEqual(r.status, 200, r.text)
            evs = wait_event(self.key, sid, "session.idled")
            self.assertEqual(evs[-2]["type"], "turn.completed", kind)
            reqs = self.fake.requests(name)
            self.assertEqual(len(reqs), 2)
            msgs = reqs[1]["body"]["messages"]
            if kind == "anthropic":
                res = {b["tool_use_id"]: b for b in msgs[-1]["content"] if b["type"] == "tool_result"}
                self.assertEqual(list(res), ["call_loc", "call_sum"])
                self.assertIn("Kyiv", json.dumps(res["call_loc"]))
            else:
                tools = [m for m in msgs if m["role"] == "tool"]
                self.assertEqual([m["tool_call_id"] for m in tools], ["call_loc", "call_sum"])
                self.assertIn("Kyiv", tools[0]["content"])

    def test_a_json_result_reaches_the_model_as_its_json_text(self):
        # the model reads the client's JSON as JSON text: "/" is not "\/"
        for kind in ("openai_completions", "anthropic"):
            name, sid = self.session(kind)
            self.fake.script(name,
                             {"tool_calls": [{"id": "call_url", "name": "get_location", "arguments": "{}"}]},
                             {"text": "ok", "chunks": 1})
            send(self.key, sid, "where am I?")
            wait_event(self.key, sid, "tool.call_requested")
            wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
            value = {"map": "https://maps.example/kyiv?z=3", "city": "Kyiv \u00e9"}
            r = results(self.key, sid, [{"tool_call_id": "call_url", "result": value}])
            self.assertEqual(r.status, 200, r.text)
            evs = wait_event(self.key, sid, "session.idled")
            done = [e for e in evs if e["type"] == "tool.completed"][0]["data"]
            self.assertEqual(json.loads(done["result"][0]["text"]), value)
            self.assertNotIn("\\/", done["result"][0]["text"])
            msgs = self.fake.requests(name)[1]["body"]["messages"]
            if kind == "anthropic":
                seen = [b["content"] for m in msgs if isinstance(m["content"], list)
                        for b in m["content"] if b.get("type") == "tool_result"]
                seen = seen[0] if isinstance(seen[0], str) else seen[0][0]["text"]
            else:
                seen = [m["content"] for m in msgs if m["role"] == "tool"][0]
            self.assertEqual(json.loads(seen), value, kind)
            self.assertIn("https://maps.example/kyiv", seen, kind)

    def test_calls_of_one_response_are_bounded(self):
        # llm_max_tool_calls (256): a model's 300 calls of a client-side
        # tool fail the turn instead of making a wait of 300 questions
        for kind in ("openai_completions", "anthropic"):
            name, sid = self.session(kind)
            self.fake.script(name, {"tool_calls": [
                {"id": "call_%d" % i, "name": "get_location", "arguments": "{}"} for i in range(300)]})
            send(self.key, sid, "where am I, 300 times?")
            evs = wait_event(self.key, sid, "session.idled")
            failed = [e["data"] for e in evs if e["type"] == "turn.failed"]
            self.assertEqual([f["error_code"] for f in failed], ["output_too_large"], kind)
            self.assertIn("llm_max_tool_calls", failed[0]["error"], kind)
            self.assertNotIn("tool.call_requested", [e["type"] for e in evs], kind)
            # 256 are fine
            self.fake.script(name, {"tool_calls": [
                {"id": "c_%d" % i, "name": "get_location", "arguments": "{}"} for i in range(256)]})
            since = evs[-1]["sequence"]
            send(self.key, sid, "where am I, 256 times?")
            evs = wait_event(self.key, sid, "tool.call_requested", since)
            self.assertEqual(len(requested(evs)), 256, kind)
            api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)

    def test_cancel_while_waiting_the_provider_never_sees_an_unanswered_call(self):
        for kind in ("openai_completions", "anthropic"):
            name, sid = self.session(kind)
            self.fake.script(name,
                             {"tool_calls": [{"id": "call_loc", "name": "get_location", "arguments": "{}"}]},
                             {"text": "Fine, never mind.", "chunks": 1})
            send(self.key, sid, "where am I?")
            wait_event(self.key, sid, "tool.call_requested")
            wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
            c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
            self.assertEqual(c.json["status"], "cancelled")
            self.assertEqual(status(self.key, sid), "idle")
            since = events(self.key, sid)[-1]["sequence"]
            send(self.key, sid, "ok, something else")
            evs = wait_event(self.key, sid, "session.idled", since)
            self.assertEqual(evs[-2]["type"], "turn.completed", kind)
            msgs = self.fake.requests(name)[1]["body"]["messages"]
            if kind == "anthropic":
                roles = [m["role"] for m in msgs]
                self.assertTrue(all(a != b for a, b in zip(roles, roles[1:])), roles)
                i = next(k for k, m in enumerate(msgs) if m["role"] == "assistant" and any(
                    b.get("type") == "tool_use" and b["id"] == "call_loc" for b in m["content"]))
                nxt = [b for b in msgs[i + 1]["content"] if b.get("type") == "tool_result"]
                self.assertEqual(nxt[0]["tool_use_id"], "call_loc")
                self.assertIn("cancelled", json.dumps(nxt[0]))
            else:
                i = next(k for k, m in enumerate(msgs) if m["role"] == "assistant" and any(
                    tc["id"] == "call_loc" for tc in m.get("tool_calls") or []))
                self.assertEqual(msgs[i + 1]["role"], "tool")
                self.assertEqual(msgs[i + 1]["tool_call_id"], "call_loc")
                self.assertIn("cancelled", msgs[i + 1]["content"])

    def test_resumes_spend_no_takeover_budget_nor_wall_time(self):
        # four waits in one turn: attempts 1..5, each resume a fresh count
        name, sid = self.session("openai_completions")
        step = lambda i: {"tool_calls": [{"id": "call_%d" % i, "name": "get_location", "arguments": "{}"}]}
        self.fake.script(name, step(1), step(2), step(3), step(4), {"text": "done", "chunks": 1})
        m = send(self.key, sid, "four questions")
        for i in range(1, 5):
            wait_until(lambda: status(self.key, sid) == "waitingfortoolresults"
                       and any(c["id"] == "call_%d" % i for c in requested(events(self.key, sid))),
                       what="wait %d" % i)
            if i == 4:
                # the turn began long ago, but it spent that time waiting:
                # turn_wall_time_s (1800 s) counts only the rest
                psql("UPDATE turns SET started_at = started_at - interval '2 hours', "
                     "wait_started = wait_started - interval '2 hours' WHERE id = $1::uuid",
                     m["turn_id"][4:])
            r = results(self.key, sid, [{"tool_call_id": "call_%d" % i, "result": "here"}])
            self.assertEqual(r.status, 200, r.text)
        evs = wait_event(self.key, sid, "session.idled")
        self.assertEqual(evs[-2]["type"], "turn.completed", evs[-2])
        self.assertEqual(evs[-2]["data"]["iterations"], 5)
        row = psql("SELECT attempt, attempt_base, waited_ms > 7000000 FROM turns WHERE id = $1::uuid",
                   m["turn_id"][4:])
        self.assertEqual(row, [("5", "4", "t")])


class WaitDurability(unittest.TestCase):
    """A waiting turn lives in the database only: the runner killed and
    PostgreSQL restarted, then answered, it goes on; the wait's limit is
    the configuration's."""

    @classmethod
    def setUpClass(cls):
        cls.key = new_org("client-tools-durable")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def setUp(self):
        self.extra = None
        self.addCleanup(self.restore)

    def restore(self):
        if self.extra:
            self.extra.kill()
            self.extra.wait(timeout=10)
        pid = stack_pid("runner")
        if not pid or not os.path.exists("/proc/%d" % pid):
            ctl("start")

    def kill_runner(self):
        pid = stack_pid("runner")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not os.path.exists("/proc/%d/status" % pid) or
                   "zombie" in open("/proc/%d/status" % pid).read(), what="runner gone")

    def session(self):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "tools": [LOCATE]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def test_a_resumed_turn_gets_no_runner_timeout_s_from_its_resume(self):
        # a turn queued again by an answer has waited (here an hour): with
        # no runner alive for a moment (a restart), it is given
        # no_runner_timeout_s (180 s) from its resume, as a new turn is
        # from its start, not failed at once for its age
        sid = self.session()
        m = send(self.key, sid, "#tool get_location {}")
        wait_event(self.key, sid, "tool.call_requested")
        wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
        call = requested(events(self.key, sid))[0]["id"]
        self.kill_runner()
        try:
            psql("UPDATE turns SET created_at = created_at - interval '1 hour' WHERE id = $1::uuid",
                 m["turn_id"][4:])
            psql("UPDATE runners SET seen_at = now() - interval '1 hour'")
            r = results(self.key, sid, [{"tool_call_id": call, "result": "Kyiv"}])
            self.assertEqual((r.status, r.json["status"]), (200, "active"), r.text)
            # GET /sessions/{id} and /health fail what no runner took in time
            # (each API process at most once a second: ask for 2.5 s)
            end = time.time() + 2.5
            while time.time() < end:
                api("GET", "/health", key=None)
                self.assertEqual(status(self.key, sid), "active")
                time.sleep(0.2)
            self.assertNotIn("turn.failed", [e["type"] for e in events(self.key, sid)])
        finally:
            ctl("start")  # a killed runner's zombie keeps restore() from it
        evs = wait_event(self.key, sid, "session.idled", timeout=at_once(20))
        self.assertEqual(evs[-2]["type"], "turn.completed", evs[-2])

    def test_runner_killed_and_postgres_restarted_while_waiting(self):
        sid = self.session()
        send(self.key, sid, "#tool get_location {}")
        wait_event(self.key, sid, "tool.call_requested")
        wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
        call = requested(events(self.key, sid))[0]["id"]
        self.kill_runner()
        pg_restart()
        # no runner at all: the answer is still taken (the API reconnects)
        got = []
        wait_until(lambda: got.append(results(self.key, sid, [{"tool_call_id": call, "result": "Odesa"}]))
                   or got[-1].status != 503, timeout=20, what="an answer after the restart")
        self.assertEqual((got[-1].status, got[-1].json.get("status")), (200, "active"), got[-1].text)
        ctl("start")
        evs = wait_event(self.key, sid, "session.idled", timeout=30)
        types = [e["type"] for e in evs]
        self.assertEqual(evs[-2]["type"], "turn.completed")
        self.assertEqual(types.count("turn.started"), 1)
        self.assertIn("Odesa", json.dumps([e for e in evs if e["type"] == "output.message.completed"][-1]))
        seqs = [e["sequence"] for e in evs]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))

    def test_the_wait_limit_is_tool_wait_max_s(self):
        self.kill_runner()
        self.extra = start_runner(EVERRUNS_TOOL_WAIT_MAX_S=2)
        sid = self.session()
        m = send(self.key, sid, "#tool get_location {}")
        wait_event(self.key, sid, "tool.call_requested", timeout=20)
        t0 = time.monotonic()
        left = float(psql("SELECT extract(epoch FROM wait_until - wait_started) FROM turns "
                          "WHERE id = $1::uuid", m["turn_id"][4:])[0][0])
        self.assertAlmostEqual(left, 2, delta=0.01)
        evs = wait_event(self.key, sid, "session.idled", timeout=15)
        self.assertGreater(time.monotonic() - t0, 1)
        failed = [e for e in evs if e["type"] == "turn.failed"][0]["data"]
        self.assertEqual(failed["error_code"], "tool_wait_timeout")
        self.assertEqual(status(self.key, sid), "idle")


if __name__ == "__main__":
    unittest.main()
