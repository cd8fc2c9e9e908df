"""Resume from whatever frame came last (issue "Upstream clients work
unchanged"): a client that keeps only the `id` of the last frame it saw,
a delta's as well as a durable event's, and reconnects with it
(Last-Event-ID and since_id, alternately; a connected or disconnecting
frame's id is a cursor too) gets every durable event once,
in order, and text that joins up: its deltas concatenated equal each
delta's `accumulated` and the completed message (thinking likewise).

The stream is read from a second everruns-sse with a 2 s `disconnecting`
cycle (EVERRUNS_SSE_CYCLE_S), spoken to over FastCGI as nginx does, so
the stack's own streams keep their timings; while text is streaming and
the last frame seen is a delta, that process is killed with SIGKILL and
started again on the same socket."""

import os
import signal
import socket
import time
import unittest
import urllib.parse
import json

from evr import api, new_org, wait_until
from test_sse import fcgi_request, fcgi_split, spawn_sse

PROMPT = "#think\n#tokens 250\n#rate 50"  # about 5 s of text: a cycle or two


class FcgiStream:
    """One SSE response from a FastCGI socket, frame by frame."""

    def __init__(self, sock, sid, key, last_id, use_header):
        params = {"REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": "Bearer " + key}
        query = ""
        if last_id and use_header:
            params["HTTP_LAST_EVENT_ID"] = last_id
        elif last_id:
            query = "since_id=" + urllib.parse.quote(last_id)
        else:
            query = "since_sequence=0"
        params["REQUEST_URI"] = "/api/v1/sessions/%s/sse?%s" % (sid, query)
        params["QUERY_STRING"] = query
        self.c = fcgi_request(sock, params)
        self.c.settimeout(10)
        self.buf, self.text, self.end = b"", "", False

    def frame(self):
        """{"event","id","data"} or {"comment"}; None at the end."""
        while True:
            head, sep, rest = self.text.partition("\n\n")
            if sep:
                self.text = rest
                f = {}
                for line in head.split("\n"):
                    if line.startswith(":"):
                        return {"comment": line[1:].strip()}
                    k, _, v = line.partition(":")
                    f[k] = v[1:] if v.startswith(" ") else v
                if "data" in f:
                    f["data"] = json.loads(f["data"])
                return f
            if self.end:
                return None
            chunk = self.c.recv(65536)
            if not chunk:
                self.end = True
                continue
            recs, self.buf = fcgi_split(self.buf + chunk)
            for t, content in recs:
                if t == 6:
                    self.text += content.decode("utf-8")
                elif t == 3:
                    self.end = True

    def close(self):
        self.c.close()


class DeltaResume(unittest.TestCase):
    def test_last_frame_id_across_cycles_and_sigkill(self):
        key = new_org("delta-resume")["api_key"]
        agent = api("GET", "/api/v1/agents/assistant", key=key).json["id"]
        sid = api("POST", "/api/v1/sessions", {"agent_id": agent}, key=key).json["id"]
        env = dict(EVERRUNS_SSE_HEARTBEAT_S=1, EVERRUNS_SSE_CYCLE_S=2)
        proc, sock, _ = spawn_sse("delta-resume", **env)
        try:
            self._run(key, sid, proc, sock, env)
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(10)

    def _run(self, key, sid, proc, sock, env):
        self.procs = [proc]
        r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": PROMPT}]}}, key=key)
        self.assertEqual(r.status, 201, r.text)
        last_id, durable, text, delta_ids = None, [], {}, []
        connects = cycles = kills = delta_cursors = 0
        deadline = time.monotonic() + 90
        done = False
        while not done and time.monotonic() < deadline:
            try:
                s = FcgiStream(sock, sid, key, last_id, connects % 2 == 0)
            except OSError:  # killed, not yet listening again
                time.sleep(0.1)
                continue
            connects += 1
            if last_id and last_id.startswith("dlt_"):
                delta_cursors += 1
            try:
                while True:
                    f = s.frame()
                    if f is None:
                        break
                    if f.get("event") == "disconnecting":
                        cycles += 1
                    if f.get("Status", "200").strip()[:1] != "2":
                        self.fail("refused: %r" % f)
                    if not f.get("id"):
                        continue
                    self.assertEqual(f["id"], f["data"]["id"])
                    last_id = f["id"]
                    d = f["data"]
                    if f["event"] in ("connected", "disconnecting"):
                        # where the stream stands: a cursor too
                        self.assertRegex(f["id"], r"^dlt_\d+_\d+_\d+$")
                    elif f["event"].endswith(".delta"):
                        self.assertRegex(f["id"], r"^dlt_\d+_\d+_\d+$")
                        delta_ids.append(f["id"])
                        m = (f["event"], d["data"]["message_sequence"])
                        text[m] = text.get(m, "") + d["data"]["delta"]
                        self.assertEqual(text[m], d["data"]["accumulated"],
                                         "text does not join up at %s" % f["id"])
                        if f["event"] == "output.message.delta" and not kills \
                                and len(text[m]) > 200:
                            # while text streams, the last frame a delta
                            os.kill(self.procs[-1].pid, signal.SIGKILL)
                            self.procs[-1].wait(10)
                            p, _, _ = spawn_sse("delta-resume", **env)
                            self.procs.append(p)
                            kills += 1
                            break
                    else:
                        self.assertRegex(f["id"], r"^evt_[0-9a-f]{32}$")
                        durable.append(d)
                        if f["event"] == "session.idled":
                            done = True
                            break
            except (OSError, ValueError):
                pass
            finally:
                s.close()
        self.assertTrue(done, "no session.idled in time")
        log = api("GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=key).json["data"]
        # every durable event once, in order
        self.assertEqual([e["id"] for e in durable], [e["id"] for e in log])
        self.assertEqual(kills, 1)
        self.assertGreaterEqual(cycles, 1, "no disconnecting cycle while streaming")
        self.assertGreaterEqual(delta_cursors, 2, "never resumed from a delta id")
        # the assembled text is the completed message's
        started = {}
        for e in log:
            if e["type"] in ("output.message.started", "reason.thinking.started"):
                started[e["type"].split(".")[0]] = e["sequence"]
            elif e["type"] == "output.message.completed":
                m = ("output.message.delta", started["output"])
                self.assertEqual(text[m], e["data"]["message"]["content"][0]["text"])
            elif e["type"] == "reason.thinking.completed":
                m = ("reason.thinking.delta", started["reason"])
                self.assertEqual(text[m], e["data"]["thinking"])
        # the events page takes a delta's id too: the events after its cursor
        for did in (delta_ids[0], delta_ids[-1]):
            c = int(did.split("_")[1])
            page = api("GET", "/api/v1/sessions/%s/events?since_id=%s" % (sid, did), key=key)
            self.assertEqual(page.status, 200, page.text)
            self.assertEqual([e["sequence"] for e in page.json["data"]],
                             [e["sequence"] for e in log if e["sequence"] > c])
        for bad in ("dlt_1_2_3", "dlt_x", "dlt_%d_1_0" % (log[-1]["sequence"] + 1)):
            r = api("GET", "/api/v1/sessions/%s/events?since_id=%s" % (sid, bad), key=key)
            self.assertEqual((r.status, r.json["code"]), (400, "invalid_cursor"), bad)
        print("delta resume: %d connections, %d cycles, %d resumed from a delta, "
              "%d SIGKILL" % (connects, cycles, delta_cursors, kills))


if __name__ == "__main__":
    unittest.main()
