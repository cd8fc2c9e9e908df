"""Turns with the built-in llmsim model: the exact event order (with and
without a tool round), messages, session_busy, the send-on-turn.completed
race, cancel, controls, tenant isolation of messages and events."""

import json
import os
import random
import sys
import threading
import time
import unittest

from evr import tool_output, api, psql, new_org, wait_until, at_once

TURN = ["input.message", "session.activated", "turn.started", "reason.started",
        "output.message.started", "output.message.completed", "reason.completed",
        "turn.completed", "session.idled"]


def events(key, sid, since=0, **q):
    qs = "&".join(["since_sequence=%d" % since] + ["%s=%s" % kv for kv in q.items()])
    r = api("GET", "/api/v1/sessions/%s/events?%s" % (sid, qs), key=key)
    assert r.status == 200, r.text
    return r.json["data"]


def wait_idle(key, sid, since, timeout=15):
    """Events after `since` up to the turn's session.idled."""
    out = []

    def done():
        out[:] = events(key, sid, since)
        return any(e["type"] == "session.idled" for e in out)
    wait_until(done, timeout=timeout, what="session.idled")
    return out


def send(key, sid, content, **extra):
    body = {"message": {"content": content}}
    body.update(extra)
    return api("POST", "/api/v1/sessions/%s/messages" % sid, body, key=key)


class Turns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.org = new_org("turns")
        cls.key = cls.org["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def session(self, **body):
        body.setdefault("agent_id", self.agent)
        r = api("POST", "/api/v1/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def test_simple_turn_event_order(self):
        sid = self.session()
        r = send(self.key, sid, [{"type": "text", "text": "Analyze the sales data in sales.csv"}])
        self.assertEqual(r.status, 201, r.text)
        msg = r.json
        self.assertEqual(msg["role"], "user")
        self.assertEqual(msg["sequence"], 2)
        self.assertRegex(msg["turn_id"], r"^trn_[0-9a-f]{32}$")
        # active from the send's commit, as the guide says
        self.assertIn(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"],
                      ("active", "idle"))
        evs = wait_idle(self.key, sid, 1)
        self.assertEqual([e["type"] for e in evs], TURN)
        seqs = [e["sequence"] for e in evs]
        self.assertEqual(seqs, list(range(2, 2 + len(TURN))))
        self.assertTrue(all(e["context"]["turn_id"] == msg["turn_id"] for e in evs))
        done = [e for e in evs if e["type"] == "output.message.completed"][0]
        self.assertEqual(done["data"]["message"]["content"][0]["text"],
                         "You said: Analyze the sales data in sales.csv")
        tc = [e for e in evs if e["type"] == "turn.completed"][0]["data"]
        self.assertEqual((tc["stop_reason"], tc["iterations"]), ("end_turn", 1))
        self.assertGreater(tc["usage"]["output_tokens"], 0)
        s = api("GET", "/api/v1/sessions/" + sid, key=self.key).json
        self.assertEqual(s["status"], "idle")
        self.assertEqual(s["usage"], evs[-1]["data"]["usage"])
        msgs = api("GET", "/api/v1/sessions/%s/messages" % sid, key=self.key).json
        self.assertEqual([m["role"] for m in msgs["data"]], ["user", "agent"])
        self.assertFalse(msgs["has_more"])
        self.assertEqual(psql("SELECT count(*) FROM live_text WHERE session_id = $1::uuid", sid[4:]),
                         [("0",)])

    def test_tool_round(self):
        sid = self.session()
        r = send(self.key, sid, 'What time is it in Paris?\n#tool get_current_time {"timezone":"Europe/Paris"}')
        self.assertEqual(r.status, 201, r.text)
        evs = wait_idle(self.key, sid, 1)
        self.assertEqual([e["type"] for e in evs], [
            "input.message", "session.activated", "turn.started",
            "reason.started", "output.message.started", "output.message.completed", "reason.completed",
            "act.started", "tool.started", "tool.completed", "act.completed",
            "reason.started", "output.message.started", "output.message.completed", "reason.completed",
            "turn.completed", "session.idled"])
        call = [e for e in evs if e["type"] == "output.message.completed"][0]["data"]["message"]["content"]
        self.assertEqual(call[-1]["type"], "tool_call")
        self.assertEqual(call[-1]["name"], "get_current_time")
        self.assertEqual(call[-1]["arguments"], {"timezone": "Europe/Paris"})
        tool = [e for e in evs if e["type"] == "tool.completed"][0]["data"]
        self.assertTrue(tool["success"])
        self.assertEqual(tool["tool_call_id"], call[-1]["id"])
        self.assertEqual(tool_output(tool)["timezone"], "Europe/Paris")
        tc = [e for e in evs if e["type"] == "turn.completed"][0]["data"]
        self.assertEqual(tc["iterations"], 2)
        msgs = api("GET", "/api/v1/sessions/%s/messages" % sid, key=self.key).json["data"]
        self.assertEqual([m["role"] for m in msgs], ["user", "agent", "tool_result", "agent"])
        self.assertEqual(msgs[2]["content"][0]["tool_call_id"], call[-1]["id"])

    def test_tool_error_goes_back_to_the_model(self):
        sid = self.session()
        send(self.key, sid, '#tool get_current_time {"timezone":"Mars/Olympus"}')
        evs = wait_idle(self.key, sid, 1)
        tool = [e for e in evs if e["type"] == "tool.completed"][0]["data"]
        self.assertFalse(tool["success"])
        self.assertIn("error", tool)
        self.assertEqual(evs[-2]["type"], "turn.completed")

    def test_unavailable_tool_is_a_tool_error(self):
        # the base harness has no capabilities: the model's call is refused
        base = api("GET", "/api/v1/harnesses/base", key=self.key).json["id"]
        sid = self.session(agent_id=None, harness_id=base)
        send(self.key, sid, '#tool get_current_time {}')
        evs = wait_idle(self.key, sid, 1)
        tool = [e for e in evs if e["type"] == "tool.completed"][0]["data"]
        self.assertFalse(tool["success"])
        self.assertIn("get_current_time", tool["error"])

    def test_llmsim_errors_fail_the_turn(self):
        # "#error CODE" fails like a provider would: a 400 at once, a 5xx
        # after the retries; either way the turn ends in turn.failed
        for directive, code in (("#error bad_request", "invalid_request"),
                                ("#error server", "provider_error")):
            sid = self.session()
            self.assertEqual(send(self.key, sid, directive).status, 201)
            evs = wait_idle(self.key, sid, 1)
            types = [e["type"] for e in evs]
            self.assertIn("turn.failed", types, types)
            self.assertNotIn("turn.completed", types)
            failed = [e for e in evs if e["type"] == "turn.failed"][0]["data"]
            self.assertEqual(failed["error_code"], code, failed)
            self.assertIn("simulated", failed["error"].lower())
            self.assertEqual(types.count("reason.started"), 1, types)
            self.assertEqual(psql("SELECT attempt FROM turns WHERE session_id = $1::uuid", sid[4:]),
                             [("1",)])

    def test_session_busy_race(self):
        sid = self.session()
        results = []

        def post():
            # long enough (2 s) that the turn cannot end while slow
            # (sanitized) workers are still answering the other posts
            results.append(send(self.key, sid, "#tokens 40\n#rate 20"))
        threads = [threading.Thread(target=post) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status for r in results)
        self.assertEqual(codes.count(201), 1, codes)
        self.assertEqual(codes.count(400), 49)
        self.assertTrue(all(r.json["code"] == "session_busy" for r in results if r.status == 400))
        self.assertEqual(psql("SELECT count(*) FROM turns WHERE session_id = $1::uuid", sid[4:]), [("1",)])
        wait_idle(self.key, sid, 1)

    def test_next_message_right_after_turn_completed(self):
        sid = self.session()
        since = 1
        for i in range(10):
            r = send(self.key, sid, "round %d" % i)
            self.assertEqual(r.status, 201, (i, r.text))
            seen = []

            def completed():
                seen[:] = events(self.key, sid, since, types="turn.completed")
                return bool(seen)
            wait_until(completed, timeout=10, interval=0.002, what="turn.completed")
            since = seen[-1]["sequence"]
        self.assertEqual(len(api("GET", "/api/v1/sessions/%s/messages" % sid, key=self.key).json["data"]), 20)

    def test_cancel_a_streaming_turn(self):
        sid = self.session()
        r = send(self.key, sid, "#tokens 400\n#rate 20")
        self.assertEqual(r.status, 201)
        wait_until(lambda: events(self.key, sid, 1, types="output.message.started"), timeout=10,
                   what="output.message.started")
        t0 = time.monotonic()
        c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual((c.status, c.json["status"]), (200, "cancelled"))
        wait_until(lambda: api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"] == "idle",
                   timeout=5, interval=0.005, what="idle after cancel")
        self.assertLess(time.monotonic() - t0, at_once(1.0))
        evs = events(self.key, sid, 1)
        types = [e["type"] for e in evs]
        i = types.index("turn.cancelled")
        self.assertEqual(types[i:], ["turn.cancelled", "input.message", "output.message.completed",
                                     "session.idled"])
        self.assertEqual(evs[i + 1]["data"]["message"]["content"][0]["text"],
                         "User requested to cancel the work.")
        self.assertEqual(evs[i + 2]["data"]["message"]["content"][0]["text"],
                         "Work was cancelled by user.")
        self.assertNotIn("turn.completed", types)
        self.assertEqual(api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key).json["status"], "no_op")
        # the history stays well formed: the next turn works
        self.assertEqual(send(self.key, sid, "after cancel").status, 201)
        evs = wait_idle(self.key, sid, evs[-1]["sequence"])
        self.assertEqual(evs[-2]["type"], "turn.completed")

    def test_cancel_idle_is_no_op(self):
        sid = self.session()
        r = api("POST", "/api/v1/sessions/%s/cancel" % sid, raw=b"{}", content_type="application/json",
                key=self.key)
        self.assertEqual((r.status, r.json["status"]), (200, "no_op"))
        self.assertEqual(api("POST", "/api/v1/sessions/ses_%s/cancel" % ("0" * 32), key=self.key).status, 404)

    def test_guide_message_controls(self):
        sid = self.session()
        body = {"message": {"content": [{"type": "text", "text": "Write a detailed analysis"}],
                            "controls": {"max_tokens": 2000, "temperature": 0.7}}}
        r = api("POST", "/api/v1/sessions/%s/messages" % sid, body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json["controls"], {"max_tokens": 2000, "temperature": 0.7})
        wait_idle(self.key, sid, 1)
        # top-level controls (upstream SDKs) are accepted; both and different is a 400
        r = send(self.key, sid, "x", controls={"max_tokens": 10})
        self.assertEqual(r.status, 201)
        wait_idle(self.key, sid, r.json["sequence"])
        r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": "x", "controls": {"max_tokens": 5}}, "controls": {"max_tokens": 6}},
                key=self.key)
        self.assertEqual(r.status, 400)
        self.assertIn("controls", r.json["error"])

    def test_message_validation(self):
        sid = self.session()
        cases = [
            ({"message": {"content": ""}}, "message.content"),
            ({"message": {"content": []}}, "message.content"),
            ({"message": {"content": [{"type": "video"}]}}, "message.content[0].type"),
            ({"message": {"content": [{"type": "text"}]}}, "message.content[0].text"),
            ({"message": {"content": "x", "role": "agent"}}, "message.role"),
            ({"message": {"content": "x", "controls": {"temperature": 3}}}, "controls.temperature"),
            ({"message": {"content": "x", "controls": {"max_tokens": 0}}}, "controls.max_tokens"),
            ({"message": {"content": "x", "controls": {"reasoning": {"effort": "max"}}}},
             "controls.reasoning.effort"),
            ({"message": {"content": [{"type": "image", "base64": "aGVsbG8=", "media_type": "image/png"}]}},
             "message.content[0].base64"),
            ({"message": {"content": "x" * (512 * 1024 + 1)}}, "message.content"),
            ({}, "message"),
        ]
        for body, field in cases:
            r = api("POST", "/api/v1/sessions/%s/messages" % sid, body, key=self.key)
            self.assertEqual(r.status, 400, (field, r.text))
            self.assertIn(field, r.json["error"])
        for body, field in [
            ({"message": {"content": [{"type": "image_file", "image_id": "img_" + "0" * 32}]}}, "image_id"),
            ({"message": {"content": "x", "controls": {"model_id": "mod_" + "0" * 32}}}, "controls.model_id"),
        ]:
            r = api("POST", "/api/v1/sessions/%s/messages" % sid, body, key=self.key)
            self.assertEqual(r.status, 404, r.text)
            self.assertIn(field, r.json["error"])
        # nothing was started by any of them
        self.assertEqual(psql("SELECT count(*) FROM turns WHERE session_id = $1::uuid", sid[4:]), [("0",)])
        self.assertEqual(len(events(self.key, sid)), 1)
        self.assertEqual(api("POST", "/api/v1/sessions/ses_%s/messages" % ("0" * 32),
                             {"message": {"content": "x"}}, key=self.key).status, 404)

    def test_message_idempotency(self):
        sid = self.session()
        h = {"Idempotency-Key": "msg-1"}
        a = api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"content": "once"}},
                key=self.key, headers=h)
        b = api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"content": "once"}},
                key=self.key, headers=h)
        self.assertEqual((a.status, b.status), (201, 201))
        self.assertEqual(a.json["id"], b.json["id"])
        self.assertEqual(b.headers.get("idempotent-replayed"), "true")
        wait_idle(self.key, sid, 1)
        self.assertEqual(len([m for m in api("GET", "/api/v1/sessions/%s/messages" % sid,
                                             key=self.key).json["data"] if m["role"] == "user"]), 1)

    def test_events_filters_and_paging(self):
        sid = self.session()
        send(self.key, sid, "hello")
        evs = wait_idle(self.key, sid, 0)
        n = len(evs)
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=0&limit=3" % sid, key=self.key).json
        self.assertEqual([e["sequence"] for e in r["data"]], [1, 2, 3])
        self.assertTrue(r["has_more"])
        # the document's names: after_sequence; limit alone is the newest
        r = api("GET", "/api/v1/sessions/%s/events?after_sequence=1&limit=2" % sid, key=self.key).json
        self.assertEqual([e["sequence"] for e in r["data"]], [2, 3])
        r = api("GET", "/api/v1/sessions/%s/events?limit=3" % sid, key=self.key).json
        self.assertEqual([e["sequence"] for e in r["data"]], [n - 2, n - 1, n])
        self.assertTrue(r["has_more"])
        r = api("GET", "/api/v1/sessions/%s/events?before_sequence=%d&limit=2" % (sid, n), key=self.key).json
        self.assertEqual([e["sequence"] for e in r["data"]], [n - 2, n - 1])
        self.assertTrue(r["has_more"])
        r = api("GET", "/api/v1/sessions/%s/events?since_id=%s" % (sid, evs[-2]["id"]), key=self.key).json
        self.assertEqual([e["sequence"] for e in r["data"]], [n])
        self.assertFalse(r["has_more"])
        r = api("GET", "/api/v1/sessions/%s/events?types=turn.started&types=session.idled" % sid,
                key=self.key).json
        self.assertEqual([e["type"] for e in r["data"]], ["turn.started", "session.idled"])
        r = api("GET", "/api/v1/sessions/%s/events?exclude=input.message,session.started" % sid,
                key=self.key).json
        self.assertEqual(len(r["data"]), n - 2)
        other = self.session()
        other_ev = events(self.key, other)[0]["id"]
        for q, code in [("types=nope", "validation_error"), ("exclude=x", "validation_error"),
                        ("limit=0", "validation_error"), ("limit=1001", "validation_error"),
                        ("since_id=evt_bad", "invalid_cursor"), ("since_id=" + other_ev, "invalid_cursor"),
                        ("since_sequence=-1", "validation_error"), ("wait=5", "validation_error"),
                        ("wait=61&since_sequence=1", "validation_error")]:
            r = api("GET", "/api/v1/sessions/%s/events?%s" % (sid, q), key=self.key)
            self.assertEqual(r.status, 400, q)
            if code:
                self.assertEqual(r.json["code"], code, q)

    def test_delete_mid_turn(self):
        sid = self.session()
        send(self.key, sid, "#tokens 300\n#rate 30")
        wait_until(lambda: events(self.key, sid, 1, types="output.message.started"), timeout=10,
                   what="streaming")
        self.assertEqual(api("DELETE", "/api/v1/sessions/" + sid, key=self.key).status, 204)
        time.sleep(0.5)
        for t in ("events", "turns", "live_text"):
            self.assertEqual(psql("SELECT count(*) FROM %s WHERE session_id = $1::uuid" % t, sid[4:]),
                             [("0",)], t)
        # the runner is still healthy
        sid2 = self.session()
        send(self.key, sid2, "still there?")
        self.assertEqual(wait_idle(self.key, sid2, 1)[-2]["type"], "turn.completed")

    def test_deletes_racing_event_writes_leave_no_events(self):
        # events have no foreign key to sessions (sql/024): every writer
        # of events holds the session's row lock, and deleting sessions
        # deletes their events. Sessions are deleted at seeded moments
        # while their turns write tool events; none of their events may
        # remain, and the sessions left alone end their turns.
        seed = int(os.environ.get("EVR_SEED", random.randrange(1 << 30)))
        print("seed: EVR_SEED=%d" % seed, file=sys.stderr)
        rnd = random.Random(seed)
        calls = "\n".join('#tool calculate {"operation":"add","a":%d,"b":1}' % i
                          for i in range(12)) + "\n#rate 60"
        caps = [{"ref": "test_math"}]
        doomed = [self.session(capabilities=caps) for _ in range(12)]
        kept = [self.session(capabilities=caps) for _ in range(3)]
        for sid in doomed + kept:
            r = send(self.key, sid, calls)
            self.assertEqual(r.status, 201, r.text)
        t0 = time.monotonic()
        codes = []

        def delete(sid, at):
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            codes.append(api("DELETE", "/api/v1/sessions/" + sid, key=self.key).status)
        threads = [threading.Thread(target=delete, args=(sid, rnd.uniform(0, 0.5)))
                   for sid in doomed]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(codes, [204] * len(doomed))
        for sid in kept:
            evs = wait_idle(self.key, sid, 1, timeout=30)
            self.assertEqual(sum(e["type"] == "tool.completed" for e in evs), 12)
            self.assertEqual(evs[-2]["type"], "turn.completed")
        ids = "{" + ",".join(s[4:] for s in doomed) + "}"
        # what the runner still had queued for them has been refused by now
        wait_until(lambda: psql("SELECT count(*) FROM turns WHERE session_id = ANY($1::uuid[])",
                                ids) == [("0",)], timeout=10, what="their turns gone")
        time.sleep(0.3)
        self.assertEqual(psql("SELECT count(*) FROM events WHERE session_id = ANY($1::uuid[])", ids),
                         [("0",)])
        self.assertEqual(psql("SELECT count(*) FROM events e WHERE NOT EXISTS "
                              "(SELECT 1 FROM sessions s WHERE s.id = e.session_id)"), [("0",)])

    def test_messages_tenant_isolation(self):
        sid = self.session()
        other = new_org("turns-b")["api_key"]
        self.assertEqual(api("GET", "/api/v1/sessions/%s/messages" % sid, key=other).status, 404)
        self.assertEqual(api("GET", "/api/v1/sessions/%s/events" % sid, key=other).status, 404)
        # another org's model in controls is a 404
        omodel = api("GET", "/api/v1/llm-models", key=other).json["data"][0]["id"]
        r = send(self.key, sid, "x", controls={"model_id": omodel})
        self.assertEqual(r.status, 404)


if __name__ == "__main__":
    unittest.main()
