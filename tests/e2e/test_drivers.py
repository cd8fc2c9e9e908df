"""The real HTTP drivers (openai_completions, anthropic) against the
scripted fake provider (tests/fake-llm): tool rounds, event order, history
sent to the provider, retries, every failure class, a silent provider, a
cancel that aborts the transfer, max_iterations."""

import json
import os
import subprocess
import time
import unittest
import urllib.request
import uuid

from evr import tool_output, api, new_org, wait_until, BUILDDIR, at_once
from test_turns import events, send, wait_idle

TWO_ROUNDS = [
    "input.message", "session.activated", "turn.started",
    "reason.started", "output.message.started", "output.message.completed", "reason.completed",
    "act.started", "tool.started", "tool.completed", "act.completed",
    "reason.started", "output.message.started", "output.message.completed", "reason.completed",
    "act.started", "tool.started", "tool.completed", "tool.started", "tool.completed", "act.completed",
    "reason.started", "output.message.started", "output.message.completed", "reason.completed",
    "turn.completed", "session.idled"]


class Fake:
    """The fake provider process and its control endpoints."""

    def __init__(self):
        binary = os.path.join(BUILDDIR, "tests", "fake-llm", "fake-llm")
        self.proc = subprocess.Popen([binary, "0"], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def script(self, model, *responses):
        self.call("POST", "/_script", {"model": model, "responses": list(responses)})

    def requests(self, model):
        return self.call("GET", "/_requests?model=" + model)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def fake_providers(fake, key):
    """A provider of each wire format at the fake, in key's organization:
    {"openai_completions": "prv_...", "anthropic": "prv_..."}."""
    providers = {}
    for kind, url in (("openai_completions", fake.base + "/v1"), ("anthropic", fake.base)):
        r = api("POST", "/api/v1/llm-providers", {"name": "fake-" + kind, "provider_type": kind,
                                                  "base_url": url, "api_key": "sk-test-" + kind},
                key=key)
        assert r.status == 201, r.text
        providers[kind] = r.json["id"]
    return providers


class Drivers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()
        cls.key = new_org("drivers")["api_key"]
        cls.providers = fake_providers(cls.fake, cls.key)
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def model(self, kind, caps=("chat", "tools")):
        name = "m-" + uuid.uuid4().hex[:12]
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.providers[kind],
                {"model_id": name, "capabilities": list(caps)}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return name, r.json["id"]

    def session(self, model_id, **extra):
        body = {"harness_id": self.harness, "model_id": model_id,
                "capabilities": [{"ref": "test_math"}, {"ref": "test_weather"}]}
        body.update(extra)
        r = api("POST", "/api/v1/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def each_driver(self):
        return ("openai_completions", "anthropic")

    def test_two_tool_rounds(self):
        for kind in self.each_driver():
            name, mid = self.model(kind)
            self.fake.script(name,
                             {"tool_calls": [{"id": "call_a", "name": "calculate",
                                              "arguments": '{"operation":"add","a":2,"b":3}'}],
                              "split": 4, "usage": {"input": 11, "output": 7}},
                             {"text": "Checking the weather too. ", "chunks": 3,
                              "tool_calls": [{"id": "call_b", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                                             {"id": "call_c", "name": "calculate",
                                              "arguments": '{"operation":"multiply","a":4,"b":5}'}],
                              "split": 3},
                             {"text": "2+3 is 5 and it is mild in Paris.", "chunks": 6,
                              "usage": {"input": 40, "output": 12}})
            sid = self.session(mid)
            self.assertEqual(send(self.key, sid, "Do some math and check Paris").status, 201)
            evs = wait_idle(self.key, sid, 1)
            self.assertEqual([e["type"] for e in evs], TWO_ROUNDS)
            done = [e for e in evs if e["type"] == "tool.completed"]
            self.assertEqual([d["data"]["tool_call_id"] for d in done], ["call_a", "call_b", "call_c"])
            self.assertTrue(all(d["data"]["success"] for d in done), done)
            self.assertEqual(tool_output(done[0]["data"])["result"], 5)
            final = [e for e in evs if e["type"] == "output.message.completed"][-1]["data"]["message"]
            self.assertEqual(final["content"][0]["text"], "2+3 is 5 and it is mild in Paris.")
            tc = [e for e in evs if e["type"] == "turn.completed"][0]["data"]
            self.assertEqual((tc["iterations"], tc["stop_reason"]), (3, "end_turn"))
            self.assertGreaterEqual(tc["usage"]["input_tokens"], 51)
            # what the provider saw: the tools, the key, and a history in
            # which every call is followed by its result
            reqs = self.fake.requests(name)
            self.assertEqual(len(reqs), 3)
            self.assertTrue(all(r["completed"] and not r["client_disconnected"] for r in reqs))
            h = {k.lower(): v for k, v in reqs[0]["headers"].items()}
            if kind == "openai_completions":
                self.assertEqual(h.get("authorization"), "Bearer sk-test-" + kind)
                msgs = reqs[2]["body"]["messages"]
                roles = [m["role"] for m in msgs]
                # the base harness's prompt comes first
                self.assertEqual(roles, ["system", "user", "assistant", "tool", "assistant", "tool", "tool"])
                self.assertEqual([m.get("tool_call_id") for m in msgs if m["role"] == "tool"],
                                 ["call_a", "call_b", "call_c"])
                names = sorted(t["function"]["name"] for t in reqs[0]["body"]["tools"])
                self.assertIn("calculate", names)
                self.assertIn("get_weather", names)
                self.assertTrue(reqs[0]["body"]["stream"])
            else:
                self.assertEqual(h.get("x-api-key"), "sk-test-" + kind)
                msgs = reqs[2]["body"]["messages"]
                self.assertEqual([m["role"] for m in msgs], ["user", "assistant", "user", "assistant", "user"])
                results = [b["tool_use_id"] for b in msgs[4]["content"] if b["type"] == "tool_result"]
                self.assertEqual(results, ["call_b", "call_c"])
                uses = [b["id"] for b in msgs[3]["content"] if b["type"] == "tool_use"]
                self.assertEqual(uses, ["call_b", "call_c"])

    def test_history_of_earlier_turns_reaches_the_provider_whole(self):
        # the runner builds the messages of a session's earlier turns once
        # and only adds each turn's own: every request still carries the
        # whole conversation, in order, and nothing of a previous request
        name, mid = self.model("openai_completions")
        self.fake.script(name,
                         {"tool_calls": [{"id": "call_h1", "name": "calculate",
                                          "arguments": '{"operation":"add","a":1,"b":2}'}]},
                         {"text": "one: 3"}, {"text": "two"}, {"text": "three"},
                         {"tool_calls": [{"id": "call_h2", "name": "calculate",
                                          "arguments": '{"operation":"add","a":2,"b":2}'}]},
                         {"text": "four: 4"}, {"text": "five"})
        sid = self.session(mid)
        for q in ("q1", "q2", "q3", "q4", "q5"):
            m = send(self.key, sid, q)
            self.assertEqual(m.status, 201, m.text)
            wait_idle(self.key, sid, m.json["sequence"])
        reqs = self.fake.requests(name)
        self.assertEqual(len(reqs), 7)
        def brief(m):
            if m["role"] == "tool":
                return "tool:" + m["tool_call_id"]
            if m.get("tool_calls"):
                return "call:" + ",".join(c["id"] for c in m["tool_calls"])
            return "%s:%s" % (m["role"], m["content"] if m["role"] != "system" else "")
        whole = ["system:", "user:q1", "call:call_h1", "tool:call_h1", "assistant:one: 3",
                 "user:q2", "assistant:two", "user:q3", "assistant:three",
                 "user:q4", "call:call_h2", "tool:call_h2", "assistant:four: 4", "user:q5"]
        # what each request saw: the conversation up to its own point
        cuts = {0: 2, 1: 4, 2: 6, 3: 8, 4: 10, 5: 12, 6: 14}
        for k, n in cuts.items():
            self.assertEqual([brief(m) for m in reqs[k]["body"]["messages"]], whole[:n], k)

    def test_retry_after_429_and_500(self):
        for kind in self.each_driver():
            name, mid = self.model(kind)
            self.fake.script(name, {"status": 429}, {"status": 500}, {"text": "third time lucky", "chunks": 2})
            sid = self.session(mid)
            send(self.key, sid, "hi")
            evs = wait_idle(self.key, sid, 1)
            types = [e["type"] for e in evs]
            self.assertEqual(types[-2:], ["turn.completed", "session.idled"])
            self.assertEqual(evs[-3]["type"], "reason.completed")
            done = [e for e in evs if e["type"] == "output.message.completed"][-1]
            self.assertEqual(done["data"]["message"]["content"][0]["text"], "third time lucky")
            self.assertEqual(len(self.fake.requests(name)), 3)

    def test_failure_classes_end_in_turn_failed(self):
        cases = [
            ([{"status": 400, "body": '{"error":{"message":"bad tool schema"}}'}], "invalid_request", "bad tool schema"),
            ([{"status": 401}], "authentication_error", "401"),
            ([{"status": 500}] * 3, "provider_error", "500"),
            ([{"malformed": True}], "malformed_response", "malformed"),
            ([{"text": "a b c d e f", "chunks": 6, "cut_after_chunks": 2}] * 3, "connection_error", "cut"),
            ([{"stream_error": {"type": "overloaded_error", "message": "Overloaded"}}] * 3, "provider_error",
             "Overloaded"),
        ]
        for kind in self.each_driver():
            for script, code, words in cases:
                name, mid = self.model(kind)
                self.fake.script(name, *script)
                sid = self.session(mid)
                send(self.key, sid, "hi")
                evs = wait_idle(self.key, sid, 1, timeout=30)
                types = [e["type"] for e in evs]
                self.assertEqual(types[-2:], ["turn.failed", "session.idled"], (kind, code, types))
                failed = evs[-2]["data"]
                self.assertEqual(failed["error_code"], code, (kind, failed))
                self.assertIn(words.lower(), failed["error"].lower(), (kind, failed))
                # the user also gets a plain agent message
                msg = [e for e in evs if e["type"] == "output.message.completed"][-1]
                self.assertIn("could not complete", msg["data"]["message"]["content"][0]["text"])
                self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"], "idle")

    def test_silent_provider_times_out(self):
        # headers, then nothing: each try ends after the idle timeout (1 s
        # on the test stack), then turn.failed with error_code timeout
        for kind in self.each_driver():
            name, mid = self.model(kind)
            self.fake.script(name, *[{"hang_after_headers": True}] * 3)
            sid = self.session(mid)
            t0 = time.monotonic()
            send(self.key, sid, "hello?")
            evs = wait_idle(self.key, sid, 1, timeout=30)
            self.assertLess(time.monotonic() - t0, 20)
            self.assertEqual(evs[-2]["type"], "turn.failed")
            self.assertEqual(evs[-2]["data"]["error_code"], "timeout")
            reqs = self.fake.requests(name)
            self.assertEqual(len(reqs), 3)
            self.assertTrue(all(r["client_disconnected"] for r in reqs), reqs)

    def test_cancel_aborts_the_transfer_then_history_stays_well_formed(self):
        for kind in self.each_driver():
            name, mid = self.model(kind)
            self.fake.script(name,
                             {"tool_calls": [{"id": "call_x", "name": "calculate",
                                              "arguments": '{"operation":"add","a":1,"b":1}'}]},
                             {"text": " ".join("w%d" % i for i in range(200)), "chunks": 200, "delay_ms": 50},
                             {"text": "second turn answer", "chunks": 2})
            sid = self.session(mid)
            send(self.key, sid, "start something long")
            # the second call is streaming once its first delta made text
            wait_until(lambda: len([e for e in events(self.key, sid, 1, types="output.message.started")]) >= 2,
                       timeout=10, what="second call streaming")
            time.sleep(0.3)
            t0 = time.monotonic()
            c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
            self.assertEqual(c.json["status"], "cancelled")
            wait_until(lambda: api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"] == "idle",
                       timeout=5, interval=0.005, what="idle")
            self.assertLess(time.monotonic() - t0, at_once(0.5))
            wait_until(lambda: self.fake.requests(name)[1]["client_disconnected"], timeout=3,
                       what="the fake provider to see the client go away")
            self.assertFalse(self.fake.requests(name)[1]["completed"])
            evs = events(self.key, sid, 1)
            self.assertEqual([e["type"] for e in evs][-4:],
                             ["turn.cancelled", "input.message", "output.message.completed", "session.idled"])
            # the next turn succeeds and its history pairs the earlier call
            r = send(self.key, sid, "and now?")
            self.assertEqual(r.status, 201)
            evs = wait_idle(self.key, sid, evs[-1]["sequence"])
            self.assertEqual(evs[-2]["type"], "turn.completed")
            body = self.fake.requests(name)[2]["body"]
            text = json.dumps(body["messages"])
            self.assertIn("call_x", text)
            self.assertIn("User requested to cancel the work.", text)
            if kind == "anthropic":
                roles = [m["role"] for m in body["messages"]]
                self.assertTrue(all(a != b for a, b in zip(roles, roles[1:])), roles)
                self.assertEqual(roles[0], "user")

    def test_max_iterations(self):
        for kind in self.each_driver():
            name, mid = self.model(kind)
            call = {"tool_calls": [{"id": "c", "name": "calculate", "arguments": '{"operation":"add","a":1,"b":1}'}]}
            self.fake.script(name, *[dict(call, tool_calls=[dict(call["tool_calls"][0], id="c%d" % i)])
                                     for i in range(5)])
            sid = self.session(mid, max_iterations=2)
            send(self.key, sid, "loop forever")
            evs = wait_idle(self.key, sid, 1)
            tc = [e for e in evs if e["type"] == "turn.completed"][0]["data"]
            self.assertEqual((tc["stop_reason"], tc["iterations"]), ("max_iterations", 2))
            self.assertEqual(len(self.fake.requests(name)), 2)

    def test_thinking_streams_and_is_replayed_signed(self):
        for kind in self.each_driver():
            name, mid = self.model(kind, caps=("chat", "tools", "reasoning"))
            self.fake.script(name,
                             {"thinking": "Two plus two, carefully.", "tool_calls": [
                                 {"id": "call_t", "name": "calculate",
                                  "arguments": '{"operation":"add","a":2,"b":2}'}]},
                             {"text": "It is 4."})
            sid = self.session(mid)
            r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                    {"message": {"content": "2+2?", "controls": {"reasoning": {"effort": "low"}}}}, key=self.key)
            self.assertEqual(r.status, 201, r.text)
            evs = wait_idle(self.key, sid, 1)
            types = [e["type"] for e in evs]
            self.assertEqual(types[3:7], ["reason.started", "reason.thinking.started",
                                          "reason.thinking.completed", "output.message.started"], (kind, types))
            self.assertEqual(evs[5]["data"]["thinking"], "Two plus two, carefully.")
            self.assertEqual(types[-2], "turn.completed")
            reqs = self.fake.requests(name)
            if kind == "anthropic":
                self.assertEqual(reqs[0]["body"]["thinking"]["type"], "enabled")
                first = reqs[1]["body"]["messages"][1]["content"][0]
                self.assertEqual(first["type"], "thinking")
                self.assertEqual(first["signature"], "ZmFrZS1zaWduYXR1cmU=")
            else:
                self.assertEqual(reqs[0]["body"].get("reasoning_effort"), "low")

    def test_vision_is_checked(self):
        png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
        for kind in self.each_driver():
            name, mid = self.model(kind, caps=("chat", "tools"))
            sid = self.session(mid)
            r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                    {"message": {"content": [{"type": "text", "text": "what is this?"},
                                             {"type": "image", "base64": png, "media_type": "image/png"}]}},
                    key=self.key)
            self.assertEqual(r.status, 201, r.text)
            evs = wait_idle(self.key, sid, 1)
            self.assertEqual(evs[-2]["data"]["error_code"], "unsupported_input")
            self.assertEqual(self.fake.requests(name), [])
            vname, vmid = self.model(kind, caps=("chat", "tools", "vision"))
            self.fake.script(vname, {"text": "a pixel"})
            sid = self.session(vmid)
            api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image", "base64": png, "media_type": "image/png"}]}},
                key=self.key)
            evs = wait_idle(self.key, sid, 1)
            self.assertEqual(evs[-2]["type"], "turn.completed")
            sent = json.dumps(self.fake.requests(vname)[0]["body"])
            self.assertIn(png[:40], sent)
            self.assertIn("data:image/png;base64," if kind == "openai_completions" else '"media_type": "image/png"',
                          sent)


if __name__ == "__main__":
    unittest.main()
