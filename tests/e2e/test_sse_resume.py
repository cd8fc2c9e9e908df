"""Resume at scale (issue "Event streaming"): 10,000 durable events are
produced while an SSE client drops its connection every ~100 events and
reconnects with Last-Event-ID, as an EventSource does; the sequence it
assembles has no gap and no duplicate. The same holds while the
everruns-sse process is killed with SIGKILL and started again, and while
PostgreSQL itself is restarted, during the run."""

import os
import signal
import threading
import time
import unittest

from evr import api, new_org, wait_until, ctl, stack_pid, pg_restart
from test_sse import Stream

TARGET = 10000
CALLS = 50  # tool calls per turn: about 115 events per turn
DISRUPTIONS = 3  # per run, spread over the 10,000 events


def _quiet(f, *a, **kw):
    """f(*a, **kw), or None when the stack is briefly away (restart)."""
    try:
        return f(*a, **kw)
    except (OSError, ValueError):
        return None


class ResumeAtScale(unittest.TestCase):
    def _session(self, name):
        key = new_org(name)["api_key"]
        prv = [p for p in api("GET", "/api/v1/llm-providers", key=key).json["data"]
               if p["provider_type"] == "llmsim"][0]["id"]
        model = api("POST", "/api/v1/llm-providers/%s/models" % prv,
                    {"model_id": "llmsim-instant", "capabilities": ["chat", "tools"]}, key=key).json["id"]
        harness = api("GET", "/api/v1/harnesses/base", key=key).json["id"]
        sid = api("POST", "/api/v1/sessions", {"harness_id": harness, "model_id": model,
                                               "capabilities": [{"ref": "test_math"}]}, key=key).json["id"]
        return key, sid

    def _run(self, name, disrupt=None):
        """Produce >= TARGET events on one session; read them with a client
        that reconnects every 100 events; call disrupt() DISRUPTIONS times
        while it runs. Returns the number of reconnects."""
        key, sid = self._session(name)
        text = "\n".join('#tool calculate {"operation":"add","a":%d,"b":1}' % i for i in range(CALLS))
        errors = []
        produced = [0]
        disruptions = [0]

        def last_sequence():
            r = api("GET", "/api/v1/sessions/%s/events?before_sequence=999999999&limit=1" % sid, key=key)
            return int(r.json["data"][-1]["sequence"]) if r.status == 200 else None

        def idle():
            r = _quiet(api, "GET", "/api/v1/sessions/" + sid, key=key)
            return r is not None and r.status == 200 and r.json["status"] == "idle"

        def produce():
            try:
                while produced[0] < TARGET:
                    if disrupt and disruptions[0] < DISRUPTIONS and \
                            produced[0] >= (disruptions[0] + 1) * TARGET // (DISRUPTIONS + 1):
                        disrupt()
                        disruptions[0] += 1
                    # a send that meets a restarting stack is tried again
                    # (a 409 means the first try did start the turn)
                    r = None
                    for _ in range(200):
                        r = _quiet(api, "POST", "/api/v1/sessions/%s/messages" % sid,
                                   {"message": {"content": text}}, key=key)
                        if r is not None and r.status in (201, 409):
                            break
                        time.sleep(0.1)
                    if r is None or r.status not in (201, 409):
                        raise AssertionError("send: %r" % (r and r.text))
                    wait_until(idle, timeout=90, interval=0.02, what="turn end")
                    seq = wait_until(lambda: _quiet(last_sequence), timeout=30, what="events")
                    produced[0] = seq
            except Exception as e:  # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=produce)
        t.start()
        seqs, last_id, reconnects = [], None, 0
        deadline = time.monotonic() + 900
        try:
            while time.monotonic() < deadline and not errors:
                done = not t.is_alive()
                hdrs = {"Last-Event-ID": last_id} if last_id else {}
                s = _quiet(Stream, sid, key, "" if last_id else "since_sequence=0",
                           headers=hdrs, timeout=10)
                if s is None or s.status != 200:
                    # the SSE process or the database is being restarted:
                    # nginx answers 502, the stream 503; try again
                    self.assertIn(s and s.status, (None, 502, 503, 504))
                    time.sleep(0.1)
                    continue
                got = 0
                try:
                    while got < 100:
                        f = s.frame()
                        if f is None:
                            break
                        if f.get("id", "").startswith("evt_"):
                            seqs.append(f["data"]["sequence"])
                            last_id = f["id"]
                            got += 1
                        elif f.get("comment") is not None and done:
                            break
                except (OSError, ValueError):  # read timeout or a cut stream
                    pass
                finally:
                    _quiet(s.close)
                reconnects += 1
                if done and seqs and seqs[-1] >= produced[0] and got < 100:
                    break
        finally:
            t.join(timeout=180)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(produced[0], TARGET)
        if disrupt:
            self.assertEqual(disruptions[0], DISRUPTIONS)
        self.assertGreaterEqual(reconnects, TARGET // 100)
        # no gap, no duplicate, in order
        self.assertEqual(seqs, list(range(1, produced[0] + 1)))
        return reconnects

    def test_10000_events_with_a_reconnect_every_100(self):
        self._run("sse-resume")

    def test_10000_events_while_sse_is_killed(self):
        def kill_sse():
            os.kill(stack_pid("sse"), signal.SIGKILL)
            time.sleep(0.3)  # some reconnects meet no SSE process at all
            ctl("start")
        try:
            self._run("sse-resume-kill", kill_sse)
        finally:
            ctl("start")

    def test_10000_events_while_postgresql_restarts(self):
        try:
            self._run("sse-resume-pg", pg_restart)
        finally:
            ctl("start")
