"""Approval before a tool runs (ARCHITECTURE 3.9): per-tool policies and
the `approval` mode ("writes", "all") of sessions; a call that needs
approval writes tool.approval_requested, the session waits, and POST
.../tool-approvals approves (the call runs when the turn resumes) or
denies (the call's result says so, written by the API; a denied write
leaves no file). Mixed answers, the wrong kind, a second answer, and a
client-side tool that needs approval before the client is asked."""

import json
import unittest

from evr import api, new_org, wait_until
from test_client_tools import (LOCATE, approvals, events, results, requested, send,
                               status, wait_event)


def approval_calls(evs):
    return [e for e in evs if e["type"] == "tool.approval_requested"][-1]["data"]["tool_calls"]


class Approval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = new_org("approval")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def session(self, **body):
        body.setdefault("agent_id", self.agent)
        r = api("POST", "/api/v1/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def wait_for_approval(self, sid, since=0):
        evs = wait_event(self.key, sid, "tool.approval_requested", since)
        wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting")
        return evs

    def file(self, sid, path):
        return api("GET", "/api/v1/sessions/%s/fs%s" % (sid, path), key=self.key)

    def test_approve_runs_the_call(self):
        sid = self.session(approval="writes")
        send(self.key, sid, '#tool write_file {"path": "/a.txt", "content": "hello"}')
        evs = self.wait_for_approval(sid)
        calls = approval_calls(evs)
        self.assertEqual([(c["name"], c["arguments"]["path"]) for c in calls], [("write_file", "/a.txt")])
        # nothing ran yet
        self.assertNotIn("tool.started", [e["type"] for e in evs])
        self.assertEqual(self.file(sid, "/a.txt").status, 404)
        r = approvals(self.key, sid, [{"tool_call_id": calls[0]["id"], "approved": True}])
        self.assertEqual((r.status, r.json), (200, {"accepted": 1, "status": "active"}))
        evs = wait_event(self.key, sid, "session.idled")
        types = [e["type"] for e in evs]
        res = [e for e in evs if e["type"] == "tool.approval_resolved"][0]["data"]
        self.assertEqual((res["tool_call_id"], res["approved"], res["tool_name"]),
                         (calls[0]["id"], True, "write_file"))
        self.assertLess(types.index("tool.approval_resolved"), types.index("tool.started"))
        done = [e for e in evs if e["type"] == "tool.completed"][0]["data"]
        self.assertTrue(done["success"], done)
        self.assertEqual(evs[-2]["type"], "turn.completed")
        self.assertEqual(self.file(sid, "/a.txt").status, 200)

    def test_deny_leaves_no_file_and_the_model_reads_why(self):
        sid = self.session(approval="writes")
        send(self.key, sid, '#tool write_file {"path": "/denied.txt", "content": "no"}')
        call = approval_calls(self.wait_for_approval(sid))[0]["id"]
        r = approvals(self.key, sid, [{"tool_call_id": call, "approved": False,
                                       "reason": "not in this folder"}])
        self.assertEqual((r.status, r.json["status"]), (200, "active"))
        evs = wait_event(self.key, sid, "session.idled")
        done = [e for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(len(done), 1)
        self.assertFalse(done[0]["data"]["success"])
        self.assertEqual(done[0]["data"]["error"], "The user denied this call: not in this folder")
        self.assertNotIn("tool.started", [e["type"] for e in evs])
        self.assertEqual(evs[-2]["type"], "turn.completed")
        # llmsim's answer quotes the tool result: the model read the denial
        final = [e for e in evs if e["type"] == "output.message.completed"][-1]
        self.assertIn("denied", json.dumps(final["data"]["message"]["content"]))
        self.assertEqual(self.file(sid, "/denied.txt").status, 404)

    def test_mixed_answers_and_a_read_that_needs_none(self):
        sid = self.session(approval="writes")
        send(self.key, sid, '#tool write_file {"path": "/yes.txt", "content": "1"}\n'
                            '#tool stat_file {"path": "/"}\n'
                            '#tool write_file {"path": "/no.txt", "content": "2"}')
        evs = self.wait_for_approval(sid)
        # the read ran at once, before the wait
        ran = [e["data"]["tool_name"] for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(ran, ["stat_file"])
        calls = approval_calls(evs)
        self.assertEqual(len(calls), 2)
        yes, no = calls[0]["id"], calls[1]["id"]
        r = results(self.key, sid, [{"tool_call_id": yes, "result": "ok"}])
        self.assertEqual((r.status, r.json["code"]), (400, "wrong_kind"))
        r = approvals(self.key, sid, [{"tool_call_id": yes, "approved": True}])
        self.assertEqual((r.status, r.json["status"]), (200, "waitingfortoolresults"))
        r = approvals(self.key, sid, [{"tool_call_id": yes, "approved": False}])
        self.assertEqual((r.status, r.json["code"]), (409, "already_answered"))
        r = approvals(self.key, sid, [{"tool_call_id": no, "approved": "no"}])
        self.assertEqual((r.status, r.json["code"]), (400, "validation_error"))
        r = approvals(self.key, sid, [{"tool_call_id": no, "approved": False}])
        self.assertEqual((r.status, r.json["status"]), (200, "active"))
        evs = wait_event(self.key, sid, "session.idled")
        self.assertEqual(evs[-2]["type"], "turn.completed")
        done = {e["data"]["tool_call_id"]: e["data"] for e in evs if e["type"] == "tool.completed"}
        self.assertTrue(done[yes]["success"])
        self.assertEqual(done[no]["error"], "The user denied this call.")
        self.assertEqual(self.file(sid, "/yes.txt").status, 200)
        self.assertEqual(self.file(sid, "/no.txt").status, 404)

    def test_policies_per_tool(self):
        # "requires_approval" on one tool asks under approval "auto" ...
        sid = self.session(tools=[{"type": "builtin", "name": "get_current_time",
                                   "policy": "requires_approval"}])
        send(self.key, sid, '#tool get_current_time {}\n#tool stat_file {"path": "/"}')
        evs = self.wait_for_approval(sid)
        self.assertEqual([c["name"] for c in approval_calls(evs)], ["get_current_time"])
        self.assertEqual([e["data"]["tool_name"] for e in evs if e["type"] == "tool.completed"],
                         ["stat_file"])
        approvals(self.key, sid, [{"tool_call_id": approval_calls(evs)[0]["id"], "approved": True}])
        evs = wait_event(self.key, sid, "session.idled")
        self.assertEqual(evs[-2]["type"], "turn.completed")
        # ... and "auto" exempts one from approval "all" (the session's
        # mode overrides its agent's)
        sid = self.session(approval="all", tools=[{"type": "builtin", "name": "get_current_time",
                                                   "policy": "auto"}])
        send(self.key, sid, '#tool get_current_time {}\n#tool stat_file {"path": "/"}\n'
                            '#tool no_such_tool {}')
        evs = self.wait_for_approval(sid)
        self.assertEqual([c["name"] for c in approval_calls(evs)], ["stat_file"])
        # a tool nobody offered is an error for the model, not a question
        ran = {e["data"]["tool_name"]: e["data"] for e in evs if e["type"] == "tool.completed"}
        self.assertEqual(sorted(ran), ["get_current_time", "no_such_tool"])
        self.assertFalse(ran["no_such_tool"]["success"])
        api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)

    def test_client_side_tool_that_needs_approval_first(self):
        tool = dict(LOCATE, policy="requires_approval")
        sid = self.session(tools=[tool])
        send(self.key, sid, "#tool get_location {}")
        evs = self.wait_for_approval(sid)
        call = approval_calls(evs)[0]["id"]
        self.assertNotIn("tool.call_requested", [e["type"] for e in evs])
        since = evs[-1]["sequence"]
        self.assertEqual(approvals(self.key, sid, [{"tool_call_id": call, "approved": True}]).status, 200)
        # approved: now the client is asked, for the same call
        evs = wait_event(self.key, sid, "tool.call_requested", since)
        self.assertEqual(requested(evs)[0]["id"], call)
        wait_until(lambda: status(self.key, sid) == "waitingfortoolresults", what="waiting again")
        r = results(self.key, sid, [{"tool_call_id": call, "result": "Lviv"}])
        self.assertEqual((r.status, r.json["status"]), (200, "active"), r.text)
        evs = wait_event(self.key, sid, "session.idled", since)
        self.assertEqual(evs[-2]["type"], "turn.completed")
        self.assertEqual(len([e for e in events(self.key, sid) if e["type"] == "turn.resumed"]), 2)

    def test_cancel_while_waiting_for_an_approval(self):
        sid = self.session(approval="all")
        send(self.key, sid, '#tool write_file {"path": "/c.txt", "content": "x"}')
        call = approval_calls(self.wait_for_approval(sid))[0]["id"]
        self.assertEqual(api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key).json["status"],
                         "cancelled")
        self.assertEqual(status(self.key, sid), "idle")
        r = approvals(self.key, sid, [{"tool_call_id": call, "approved": True}])
        self.assertEqual((r.status, r.json["code"]), (409, "not_waiting"))
        self.assertEqual(self.file(sid, "/c.txt").status, 404)


if __name__ == "__main__":
    unittest.main()


class ApprovalCallIds(unittest.TestCase):
    """An approval names a call by its id, and the model chooses the ids:
    a model that gives two calls one id, or a later call the id of an
    approved one, or no id, must not get a call run that nobody approved."""

    @classmethod
    def setUpClass(cls):
        from test_drivers import Fake, fake_providers
        cls.fake = Fake()
        cls.key = new_org("approval-ids")["api_key"]
        cls.providers = fake_providers(cls.fake, cls.key)
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def session(self, kind):
        import os
        name = "m-" + os.urandom(6).hex()
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.providers[kind],
                {"model_id": name, "capabilities": ["chat", "tools"]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        r = api("POST", "/api/v1/sessions", {
            "harness_id": self.harness, "model_id": r.json["id"], "approval": "writes",
            "capabilities": [{"ref": "session_file_system"}]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return name, r.json["id"]

    def file(self, sid, path):
        return api("GET", "/api/v1/sessions/%s/fs%s" % (sid, path), key=self.key).status

    @staticmethod
    def write(cid, path):
        return {"id": cid, "name": "write_file",
                "arguments": json.dumps({"path": path, "content": "x"})}

    def waiting(self, sid, n):
        wait_until(lambda: status(self.key, sid) == "waitingfortoolresults" and len(
            [e for e in events(self.key, sid) if e["type"] == "tool.approval_requested"]) == n,
            what="approval request %d" % n)
        return approval_calls(events(self.key, sid))

    def test_an_approved_id_reused_by_a_later_call_asks_again(self):
        for kind in ("openai_completions", "anthropic"):
            name, sid = self.session(kind)
            self.fake.script(name, {"tool_calls": [self.write("call_w", "/a.txt")]},
                             {"tool_calls": [self.write("call_w", "/b.txt")]},
                             {"text": "done", "chunks": 1})
            send(self.key, sid, "write two files")
            calls = self.waiting(sid, 1)
            self.assertEqual([c["id"] for c in calls], ["call_w"])
            r = approvals(self.key, sid, [{"tool_call_id": "call_w", "approved": True}])
            self.assertEqual(r.status, 200, r.text)
            # the second call is asked about under an id of its own
            calls = self.waiting(sid, 2)
            self.assertEqual([c["arguments"]["path"] for c in calls], ["/b.txt"], kind)
            self.assertNotEqual(calls[0]["id"], "call_w")
            self.assertEqual((self.file(sid, "/a.txt"), self.file(sid, "/b.txt")), (200, 404), kind)
            r = approvals(self.key, sid, [{"tool_call_id": calls[0]["id"], "approved": False}])
            self.assertEqual(r.status, 200, r.text)
            evs = wait_event(self.key, sid, "session.idled")
            self.assertEqual(evs[-2]["type"], "turn.completed", kind)
            self.assertEqual(self.file(sid, "/b.txt"), 404, kind)
            # the provider saw two calls with two ids, each with its result
            msgs = self.fake.requests(name)[2]["body"]["messages"]
            if kind == "anthropic":
                ids = [b["id"] for m in msgs if m["role"] == "assistant"
                       for b in m["content"] if b.get("type") == "tool_use"]
                res = [b["tool_use_id"] for m in msgs if m["role"] == "user" and isinstance(m["content"], list)
                       for b in m["content"] if b.get("type") == "tool_result"]
            else:
                ids = [c["id"] for m in msgs if m["role"] == "assistant" for c in m.get("tool_calls") or []]
                res = [m["tool_call_id"] for m in msgs if m["role"] == "tool"]
            self.assertEqual(len(set(ids)), 2, msgs)
            self.assertEqual(ids, res, msgs)

    def test_two_calls_with_one_id_or_none_are_asked_about_one_by_one(self):
        for kind in ("openai_completions", "anthropic"):
            name, sid = self.session(kind)
            self.fake.script(name, {"tool_calls": [self.write("call_d", "/a.txt"),
                                                   self.write("call_d", "/b.txt"),
                                                   self.write("", "/c.txt")]},
                             {"text": "done", "chunks": 1})
            send(self.key, sid, "write three files")
            calls = self.waiting(sid, 1)
            self.assertEqual([c["arguments"]["path"] for c in calls], ["/a.txt", "/b.txt", "/c.txt"])
            ids = [c["id"] for c in calls]
            self.assertEqual(len(set(ids)), 3, ids)
            self.assertTrue(all(ids), ids)
            r = approvals(self.key, sid, [{"tool_call_id": ids[0], "approved": True}])
            self.assertEqual((r.status, r.json["status"]), (200, "waitingfortoolresults"), r.text)
            r = approvals(self.key, sid, [{"tool_call_id": ids[1], "approved": False},
                                          {"tool_call_id": ids[2], "approved": False}])
            self.assertEqual((r.status, r.json["status"]), (200, "active"), r.text)
            evs = wait_event(self.key, sid, "session.idled")
            self.assertEqual(evs[-2]["type"], "turn.completed", kind)
            self.assertEqual([self.file(sid, p) for p in ("/a.txt", "/b.txt", "/c.txt")],
                             [200, 404, 404], kind)
