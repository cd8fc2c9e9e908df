"""GET /metrics: the operator's metrics in the Prometheus text format,
for a scraper on the host only: queue depth and the oldest queued turn,
lease losses, the notify queue's usage, open streams, and the resident
memory of each program (from the pid files of the stack)."""

import os
import re
import signal
import time
import unittest

from evr import api, psql, new_org, wait_until, stack_pid, start_runner, ctl, HOME, stack_env
from test_sse import Stream, fcgi_request, fcgi_stdout
from test_recovery import holder_pid
from test_turns import send, wait_idle

SAMPLE = re.compile(r'^([a-z_]+)(\{program="([a-z]+)"\})? (-?[0-9.]+(e[-+]?[0-9]+)?)$')


def metrics(headers=None):
    r = api("GET", "/metrics", key=None, headers=headers)
    assert r.status == 200, r
    return r


def parse(text):
    """{name or name{program}: float}, checking the exposition format."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("gauge", "counter"), line
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample: %r" % line
        key = m.group(1) + ("{%s}" % m.group(3) if m.group(3) else "")
        assert key not in out, "repeated sample %r" % key
        out[key] = float(m.group(4))
    for key in out:
        if "{" not in key:
            assert key in typed, "%s has no # TYPE" % key
    return out


def value(name):
    return parse(metrics().text).get(name)


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = new_org("metrics")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def session(self):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def test_format_and_programs(self):
        r = metrics()
        self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        m = parse(r.text)
        for name in ("everruns_turns_queued", "everruns_turns_running", "everruns_turns_waiting",
                     "everruns_oldest_queued_turn_seconds", "everruns_runners",
                     "everruns_lease_losses_total", "everruns_notify_queue_usage_ratio",
                     "everruns_sse_streams", "everruns_sse_connections", "everruns_up"):
            self.assertIn(name, m)
        self.assertEqual(m["everruns_up"], 1)
        self.assertGreaterEqual(m["everruns_runners"], 1)
        self.assertTrue(0 <= m["everruns_notify_queue_usage_ratio"] < 0.5)
        self.assertLessEqual(m["everruns_sse_report_age_seconds"], 5)
        # one sample per program, from the stack's pid files
        with open(os.path.join(HOME, "run", "api.pid")) as f:
            napi = len(f.read().split())
        self.assertEqual(m['everruns_processes{api}'], napi)
        self.assertEqual(m['everruns_processes{sse}'], 1)
        self.assertEqual(m['everruns_processes{runner}'], 1)
        self.assertGreaterEqual(m['everruns_processes{nginx}'], 2)  # master + workers
        for prog in ("api", "sse", "runner", "nginx"):
            rss = m["everruns_process_resident_memory_bytes{%s}" % prog]
            self.assertTrue(1 << 20 < rss < 2 << 30, (prog, rss))

    def test_queue_depth_and_oldest_queued_turn(self):
        pid = stack_pid("runner")
        sid = self.session()
        os.kill(pid, signal.SIGSTOP)
        try:
            m = send(self.key, sid, [{"type": "text", "text": "queued"}])
            self.assertEqual(m.status, 201, m.text)
            time.sleep(1.2)
            got = parse(metrics().text)
            self.assertGreaterEqual(got["everruns_turns_queued"], 1)
            self.assertGreaterEqual(got["everruns_oldest_queued_turn_seconds"], 1.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_idle(self.key, sid, 1)
        got = parse(metrics().text)
        self.assertEqual(got["everruns_turns_queued"], 0)
        self.assertEqual(got["everruns_oldest_queued_turn_seconds"], 0)

    def test_open_streams(self):
        base = value("everruns_sse_streams")
        sids = [self.session() for _ in range(3)]
        streams = [Stream(s, self.key) for s in sids]
        try:
            for s in streams:
                self.assertEqual(s.frame()["event"], "connected")
            wait_until(lambda: value("everruns_sse_streams") == base + 3, timeout=8,
                       interval=0.3, what="three more streams in the metrics")
        finally:
            for s in streams:
                s.close()
        wait_until(lambda: value("everruns_sse_streams") == base, timeout=8,
                   interval=0.3, what="the streams gone from the metrics")

    def test_lease_loss_is_counted(self):
        before = value("everruns_lease_losses_total")
        extra = start_runner("runner-metrics")
        try:
            sid = self.session()
            m = send(self.key, sid, "#tokens 60\n#rate 20")
            turn = m.json["turn_id"]
            pid = wait_until(lambda: holder_pid(turn), timeout=10, what="lease holder")
            os.kill(pid, signal.SIGKILL)
            evs = wait_idle(self.key, sid, 1, timeout=30)
            self.assertEqual([e["type"] for e in evs].count("turn.completed"), 1)
        finally:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(extra.pid, sig)
                except ProcessLookupError:
                    pass
            extra.wait(timeout=10)
            if not stack_pid("runner") or not os.path.exists("/proc/%d" % stack_pid("runner")):
                ctl("start")
        self.assertEqual(value("everruns_lease_losses_total"), before + 1)
        # a drain that hands a turn over is not a loss
        self.assertEqual(psql("SELECT value FROM metric_counters WHERE name = 'lease_losses'"),
                         [(str(int(before + 1)),)])

    def test_loopback_scrapers_only(self):
        # a request a proxy forwarded is not a local scraper's
        r = api("GET", "/metrics", key=None, headers={"X-Forwarded-For": "127.0.0.1"})
        self.assertEqual(r.status, 404)
        self.assertNotIn("everruns_", r.text)
        # the program itself refuses any other client address
        def direct(addr, until):
            sock = os.path.join(stack_env("EVR_SOCKDIR"), "api.sock")
            c = fcgi_request(sock, {"REQUEST_METHOD": "GET", "REQUEST_URI": "/metrics",
                                    "QUERY_STRING": "", "REMOTE_ADDR": addr})
            try:
                return fcgi_stdout(c, until)[0]
            finally:
                c.close()
        out = direct("203.0.113.5", "\r\n\r\n{")
        self.assertIn("Status: 404", out)
        self.assertNotIn("everruns_", out)
        self.assertIn("everruns_up 1", direct("127.0.0.1", "everruns_up 1"))


if __name__ == "__main__":
    unittest.main()
