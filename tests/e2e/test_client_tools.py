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
import sys
import unittest

from evr import api, psql, new_org, wait_until

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
        self.assertIn("turn.resumed", types)
        self.assertIn("turn.completed", types)
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


if __name__ == "__main__":
    unittest.main()
