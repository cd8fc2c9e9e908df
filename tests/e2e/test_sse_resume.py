"""Resume at scale (issue "Event streaming"): 10,000 durable events are
produced while an SSE client drops its connection every ~100 events and
reconnects with Last-Event-ID, as an EventSource does; the sequence it
assembles has no gap and no duplicate."""

import threading
import time
import unittest

from evr import api, new_org, wait_until
from test_sse import Stream

TARGET = 10000
CALLS = 50  # tool calls per turn: about 115 events per turn


class ResumeAtScale(unittest.TestCase):
    def test_10000_events_with_a_reconnect_every_100(self):
        key = new_org("sse-resume")["api_key"]
        prv = [p for p in api("GET", "/api/v1/llm-providers", key=key).json["data"]
               if p["provider_type"] == "llmsim"][0]["id"]
        model = api("POST", "/api/v1/llm-providers/%s/models" % prv,
                    {"model_id": "llmsim-instant", "capabilities": ["chat", "tools"]}, key=key).json["id"]
        harness = api("GET", "/api/v1/harnesses/base", key=key).json["id"]
        sid = api("POST", "/api/v1/sessions", {"harness_id": harness, "model_id": model,
                                               "capabilities": [{"ref": "test_math"}]}, key=key).json["id"]
        text = "\n".join('#tool calculate {"operation":"add","a":%d,"b":1}' % i for i in range(CALLS))
        errors = []
        produced = [0]

        def produce():
            try:
                while produced[0] < TARGET:
                    r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                            {"message": {"content": text}}, key=key)
                    if r.status != 201:
                        raise AssertionError(r.text)
                    wait_until(lambda: api("GET", "/api/v1/sessions/" + sid, key=key).json["status"] == "idle",
                               timeout=60, interval=0.02, what="turn end")
                    produced[0] = int(api("GET", "/api/v1/sessions/%s/events?before_sequence=999999999&limit=1"
                                          % sid, key=key).json["data"][-1]["sequence"])
            except Exception as e:  # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=produce)
        t.start()
        seqs, last_id, reconnects = [], None, 0
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline and not errors:
                done = not t.is_alive()
                hdrs = {"Last-Event-ID": last_id} if last_id else {}
                s = Stream(sid, key, "" if last_id else "since_sequence=0", headers=hdrs, timeout=10)
                self.assertEqual(s.status, 200)
                got = 0
                try:
                    while got < 100:
                        f = s.frame()
                        if f is None:
                            break
                        if f.get("id"):
                            seqs.append(f["data"]["sequence"])
                            last_id = f["id"]
                            got += 1
                        elif f.get("comment") is not None and done:
                            break
                except OSError:  # read timeout: nothing new for now
                    pass
                finally:
                    s.close()
                reconnects += 1
                if done and seqs and seqs[-1] >= produced[0] and got < 100:
                    break
        finally:
            t.join(timeout=120)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(produced[0], TARGET)
        self.assertGreaterEqual(reconnects, TARGET // 100)
        self.assertEqual(seqs, list(range(1, produced[0] + 1)))
