"""Scale-out (ARCHITECTURE 11): two complete app stacks, "host A" and "host B",
each with its own nginx, everruns-api, everruns-sse, everruns-runner,
ports and state directory, on the test stack's one PostgreSQL database.

- a message posted through host A streams live from host B;
- the runners of both hosts share the queue, and no turn runs twice;
- host A stopped whole (SIGKILL of all its programs) mid-turn: host B's
  runner finishes the turn, and a client that followed the turn on host A
  resumes on host B with Last-Event-ID, with no gap and no duplicate;
- host A stopped in order (everrunsctl stop) mid-turn: its runner drains,
  then hands the turn over, and host B's runner finishes it.

The test stack's own runner is stopped for the duration (started again at
the end), so that exactly the two hosts' runners compete.
"""

import os
import signal
import time
import unittest

from evr import api, psql, new_org, wait_until, stack_pid, ctl
from stacks import ExtraStack
from test_sse import Stream, durable, idled
from test_turns import TURN

# small runners: 12 turns of ~1 s cannot all go to one of them
INFLIGHT = 3


def running_owners():
    """{turn uuid: runner pid} of the turns running right now."""
    rows = psql("SELECT replace(t.id::text, '-', ''), r.pid FROM turns t JOIN runners r ON r.id = t.lease_owner "
                "WHERE t.state = 'running'")
    return {t: int(pid) for t, pid in rows}


class ScaleOut(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hosts = []
        try:
            pid = stack_pid("runner")
            if pid:
                os.kill(pid, signal.SIGTERM)
                wait_until(lambda: not os.path.exists("/proc/%d" % pid), timeout=30,
                           what="the test stack's runner to stop")
            for name in ("hosta", "hostb"):
                h = ExtraStack(name, EVERRUNS_MAX_INFLIGHT_TURNS=INFLIGHT)
                cls.hosts.append(h)
                h.start()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.a, cls.b = cls.hosts
        org = new_org("scaleout")
        cls.key = org["api_key"]
        cls.agent = cls.a.api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        for h in cls.hosts:
            h.stop()
        ctl("start")

    def session(self, host):
        r = host.api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def send(self, host, sid, text):
        r = host.api("POST", "/api/v1/sessions/%s/messages" % sid,
                     {"message": {"content": [{"type": "text", "text": text}]}}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json

    def log(self, host, sid):
        r = host.api("GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=self.key)
        self.assertEqual(r.status, 200, r.text)
        return r.json["data"]

    def test_1_hosts_are_separate_stacks_on_one_database(self):
        self.assertNotEqual(self.a.http_port, self.b.http_port)
        for h in self.hosts:
            r = h.api("GET", "/health", key=None)
            self.assertEqual(r.status, 200, r.text)
            self.assertGreaterEqual(r.json["runners"], 2, r.json)
            for prog in ("api", "sse", "runner", "nginx"):
                self.assertTrue(h.pid(prog), "%s of %s is not running" % (prog, h.name))
        self.assertNotEqual(self.a.pid("runner"), self.b.pid("runner"))
        # a session made on A is the same session on B
        sid = self.session(self.a)
        r = self.b.api("GET", "/api/v1/sessions/" + sid, key=self.key)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["id"], sid)

    def test_2_posted_on_a_streams_on_b(self):
        sid = self.session(self.a)
        s = Stream(sid, self.key, base=self.b.base)
        try:
            self.assertEqual(s.status, 200)
            self.assertEqual(s.frame()["event"], "connected")
            msg = self.send(self.a, sid, "#text hello from host A")
            frames = s.until(idled)
        finally:
            s.close()
        live = durable(frames)
        self.assertEqual([f["event"] for f in live], TURN)
        self.assertEqual(live[0]["data"]["sequence"], msg["sequence"])
        done = [f for f in live if f["event"] == "output.message.completed"][0]
        text = "".join(p.get("text", "") for p in done["data"]["data"]["message"]["content"])
        self.assertEqual(text, "hello from host A")

    def test_2b_deltas_cross_hosts(self):
        # streamed text (NOTIFY evd) written by whichever runner, read on B
        sid = self.session(self.a)
        s = Stream(sid, self.key, base=self.b.base)
        try:
            self.assertEqual(s.frame()["event"], "connected")
            self.send(self.a, sid, "#tokens 30\n#rate 30")
            frames = s.until(idled)
        finally:
            s.close()
        deltas = [f["data"]["data"] for f in frames if f.get("event") == "output.message.delta"]
        self.assertGreater(len(deltas), 1, [f.get("event") for f in frames])
        done = [f for f in frames if f.get("event") == "output.message.completed"][0]
        self.assertEqual("".join(d["delta"] for d in deltas),
                         done["data"]["data"]["message"]["content"][0]["text"])

    def test_3_runners_share_the_queue_no_turn_twice(self):
        pa, pb = self.a.pid("runner"), self.b.pid("runner")
        sids = [self.session(self.a if i % 2 else self.b) for i in range(4 * INFLIGHT)]
        owners = {}
        turns = []
        for i, sid in enumerate(sids):
            turns.append(self.send(self.b if i % 2 else self.a, sid,
                                   "#tokens 20\n#rate 20")["turn_id"][4:])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for t, pid in running_owners().items():
                owners.setdefault(t, set()).add(pid)
            st = psql("SELECT count(*) FROM turns WHERE id = ANY($1::uuid[]) "
                      "AND state NOT IN ('completed', 'failed', 'cancelled')",
                      "{" + ",".join(turns) + "}")[0][0]
            if st == "0":
                break
            time.sleep(0.05)
        else:
            self.fail("turns did not finish: %s" % psql(
                "SELECT state, count(*) FROM turns WHERE id = ANY($1::uuid[]) GROUP BY 1",
                "{" + ",".join(turns) + "}"))
        rows = psql("SELECT state, attempt FROM turns WHERE id = ANY($1::uuid[])",
                    "{" + ",".join(turns) + "}")
        self.assertEqual(sorted(set(rows)), [("completed", "1")], rows)
        for sid in sids:
            types = [e["type"] for e in self.log(self.a, sid)]
            self.assertEqual(types, ["session.started"] + TURN, sid)
        # every turn was seen running under exactly one runner, and both
        # hosts' runners ran some
        seen = {t: o for t, o in owners.items() if t in turns}
        self.assertTrue(all(len(o) == 1 for o in seen.values()), seen)
        used = set().union(*seen.values()) if seen else set()
        self.assertEqual(used, {pa, pb}, "runners used: %s (A %d, B %d)" % (used, pa, pb))

    def test_4_host_a_dies_mid_turn_host_b_finishes(self):
        sid = self.session(self.a)
        pb = self.b.pid("runner")
        # make host A's runner take the turn: B's runner sits it out
        os.kill(pb, signal.SIGSTOP)
        try:
            s = Stream(sid, self.key, base=self.a.base)
            self.assertEqual(s.frame()["event"], "connected")
            m = self.send(self.a, sid, "#tokens 60\n#rate 15")
            turn = m["turn_id"][4:]
            got = durable(s.until(lambda f: f.get("event") == "output.message.started"))
            owner = running_owners().get(turn)
            self.assertEqual(owner, self.a.pid("runner"))
        finally:
            os.kill(pb, signal.SIGCONT)
        # the whole of host A goes away at once
        killed = self.a.kill_all(signal.SIGKILL)
        self.assertGreaterEqual(len(killed), 4)
        s.close()
        self.assertIsNone(self.a.pid("runner"))
        with self.assertRaises(OSError):
            api("GET", self.a.url("/health"), key=None, timeout=3)
        # the client comes back through host B, from where it was
        s = Stream(sid, self.key, base=self.b.base,
                   headers={"Last-Event-ID": got[-1]["id"]}, timeout=30)
        try:
            self.assertEqual(s.status, 200)
            got += durable(s.until(idled))
        finally:
            s.close()
        log = self.log(self.b, sid)
        self.assertEqual([f["data"]["sequence"] for f in got], [e["sequence"] for e in log][1:])
        types = [e["type"] for e in log]
        self.assertEqual(types.count("turn.started"), 1, types)
        self.assertEqual(types.count("turn.completed"), 1, types)
        self.assertEqual(types[-2:], ["turn.completed", "session.idled"])
        self.assertEqual(psql("SELECT state, attempt FROM turns WHERE id = $1::uuid", turn),
                         [("completed", "2")])
        # host A starts again and serves the same data
        self.a.start()
        r = self.a.api("GET", "/api/v1/sessions/" + sid, key=self.key)
        self.assertEqual((r.status, r.json["status"]), (200, "idle"))

    def test_5_host_a_stopped_mid_turn_hands_it_to_b(self):
        # an orderly stop (everrunsctl stop: SIGTERM, the runner drains for
        # drain_s = 5 s, then releases the turn without spending an attempt)
        sid = self.session(self.a)
        pb = self.b.pid("runner")
        os.kill(pb, signal.SIGSTOP)
        try:
            turn = self.send(self.a, sid, "#tokens 200\n#rate 20")["turn_id"][4:]
            wait_until(lambda: running_owners().get(turn) == self.a.pid("runner"), timeout=10,
                       what="host A's runner holds the turn")
        finally:
            os.kill(pb, signal.SIGCONT)
        out = self.a.ctl("stop").stdout
        self.assertIn("stopped", out)
        self.assertIsNone(self.a.pid("runner"))

        def idle():
            r = self.b.api("GET", "/api/v1/sessions/" + sid, key=self.key)
            return r.json["status"] == "idle"
        wait_until(idle, timeout=30, what="host B finishing the turn")
        types = [e["type"] for e in self.log(self.b, sid)]
        self.assertEqual(types.count("turn.started"), 1, types)
        self.assertEqual(types[-2:], ["turn.completed", "session.idled"])
        self.assertEqual(psql("SELECT state, attempt FROM turns WHERE id = $1::uuid", turn),
                         [("completed", "1")])
        self.a.start()


if __name__ == "__main__":
    unittest.main()
