"""SSE clients nobody here wrote (issue "Event streaming"): the npm
`eventsource` package, a WHATWG EventSource as browsers implement it, reads
a turn from our stream; and when the everruns-sse process is killed in the
middle of a streamed reply it reconnects by itself with Last-Event-ID and
the reply it assembles is complete, with no event lost or doubled. (curl -N
is in test_sse.py.)"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

from evr import api, new_org, wait_until, ctl, stack_pid, BASE, SRCDIR
import test_sse

SCRIPT = os.path.join(SRCDIR, "tests", "ui", "eventsource.mjs")
HAVE_PKG = os.path.isdir(os.path.join(SRCDIR, "tests", "node_modules", "eventsource"))


class Client:
    """tests/ui/eventsource.mjs in the background; its JSON lines are
    collected as they arrive."""

    def __init__(self, sid, key, until="session.idled", count=1, timeout=60):
        self.lines = []
        self.p = subprocess.Popen(
            ["node", SCRIPT, BASE + "/api/v1/sessions/%s/sse" % sid, key, until,
             str(count), str(timeout)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, universal_newlines=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(json.loads(line))

    def events(self, type_=None):
        return [x for x in list(self.lines) if "type" in x and (type_ is None or x["type"] == type_)]

    def opens(self):
        return [x["open"] for x in list(self.lines) if "open" in x]

    def wait(self, timeout=90):
        rc = self.p.wait(timeout=timeout)
        self.t.join(timeout=5)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def assemble(events):
    """The reply text as a client builds it from the deltas: append each
    chunk; the first delta after a (re)connection carries everything so far
    in `accumulated`, so a client that has seen `connected` since its last
    delta starts again from that."""
    text, fresh = "", True
    for e in events:
        if e["type"] == "connected":
            fresh = True
        elif e["type"] == "output.message.delta":
            d = e["data"]["data"]
            if fresh:
                text, fresh = d["accumulated"], False
            else:
                text += d["delta"]
    return text


@unittest.skipUnless(shutil.which("node"), "node is not installed (conf/install-deps --test)")
class EventSourceClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not HAVE_PKG:
            raise AssertionError("tests/node_modules/eventsource is missing (tests/run runs npm ci)")
        cls.key = new_org("sse-eventsource")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    session = test_sse.SSE.session  # a new session of the assistant agent
    send = test_sse.SSE.send        # a text message, 201 asserted

    def check_durable(self, c):
        durable = [e for e in c.events() if e["data"].get("id", "").startswith("evt_")]
        self.assertTrue(durable)
        for e in durable:  # the SSE id is the event's id
            self.assertEqual(e["id"], e["data"]["id"])
        seqs = [e["data"]["sequence"] for e in durable]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), seqs)
        return durable

    def test_reads_a_streamed_turn(self):
        sid = self.session()
        c = Client(sid, self.key)
        try:
            wait_until(lambda: c.opens(), timeout=15, what="EventSource open")
            wait_until(lambda: c.events("connected"), timeout=15, what="connected")
            self.send(sid, "#tokens 40\n#rate 400")
            self.assertEqual(c.wait(), 0, c.lines[-3:])
        finally:
            c.kill()
        self.assertEqual(c.events()[0]["type"], "connected")
        self.assertEqual(c.opens(), [1])
        durable = self.check_durable(c)
        self.assertEqual([e["type"] for e in durable][0], "input.message")
        self.assertTrue(c.events("output.message.delta"))
        done = c.events("output.message.completed")[0]["data"]["data"]["message"]["content"][0]["text"]
        self.assertEqual(assemble(c.events()), done)

    def test_reconnects_by_itself_when_sse_is_killed_mid_reply(self):
        sid = self.session()
        c = Client(sid, self.key, timeout=90)
        try:
            wait_until(lambda: c.events("connected"), timeout=15, what="connected")
            self.send(sid, "#tokens 120\n#rate 30")  # about 4 s of deltas
            wait_until(lambda: len(c.events("output.message.delta")) >= 5, timeout=20,
                       what="the first deltas")
            os.kill(stack_pid("sse"), signal.SIGKILL)
            ctl("start")
            self.assertEqual(c.wait(), 0, c.lines[-3:])
        finally:
            c.kill()
            ctl("start")
        self.assertGreaterEqual(len(c.opens()), 2)
        self.assertGreaterEqual(len(c.events("connected")), 2)
        durable = self.check_durable(c)
        types = [e["type"] for e in durable]
        self.assertEqual(types[0], "input.message")
        self.assertEqual(types[-1], "session.idled")
        done = c.events("output.message.completed")[0]["data"]["data"]["message"]["content"][0]["text"]
        self.assertEqual(assemble(c.events()), done)
        # the stream was really cut in the middle of the reply
        i = [k for k, e in enumerate(c.events()) if e["type"] == "connected"][1]
        self.assertTrue(any(e["type"] == "output.message.delta" for e in c.events()[:i]))
        self.assertTrue(any(e["type"] == "output.message.delta" for e in c.events()[i:]))
