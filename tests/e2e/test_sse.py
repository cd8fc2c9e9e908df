"""everruns-sse: SSE streams (connected first, live events with ids, resume
with Last-Event-ID / since_id / since_sequence without gap or duplicate,
deltas that reassemble to the completed text also across a reconnect,
filters, errors, per-session limits and replacement, session deletion),
long-poll on /events, a SIGKILL of the process with a resume after its
restart, fds returning to the baseline after many dropped streams, lost
query connections, and a locked events table that stalls no stream's
heartbeats and no new stream.

Heartbeats and cycling use a second everruns-sse on its own socket with
short timings (EVERRUNS_SSE_HEARTBEAT_S / EVERRUNS_SSE_CYCLE_S), spoken to
directly over FastCGI: setting them for the whole stack would cut every
other test's streams."""

import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest
import urllib.parse

import evr

from evr import api, psql, new_org, wait_until, ctl, stack_pid, BASE, HOME, BUILDDIR

TURN = ["input.message", "session.activated", "turn.started", "reason.started",
        "output.message.started", "output.message.completed", "reason.completed",
        "turn.completed", "session.idled"]


class Stream:
    """One SSE response read frame by frame (http.client, stdlib)."""

    def __init__(self, sid, key, query="", headers=None, timeout=15, base=None):
        import http.client
        u = urllib.parse.urlsplit(base or BASE)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        h = {"Accept": "text/event-stream"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        path = (u.path.rstrip("/") + "/api/v1/sessions/%s/sse" % sid
                + ("?" + query if query else ""))
        self.conn.request("GET", path, headers=h)
        self.r = self.conn.getresponse()
        self.status = self.r.status
        self.headers = {k.lower(): v for k, v in self.r.getheaders()}
        if self.status != 200:
            self.body = self.r.read()
            self.json = json.loads(self.body) if self.body else None

    def frame(self):
        """{"event","id","data","retry"} or {"comment"}; None at EOF."""
        f = {}
        while True:
            line = self.r.readline()
            if not line:
                return f or None
            line = line.decode("utf-8").rstrip("\n")
            if line == "":
                if f:
                    if "data" in f:
                        f["data"] = json.loads(f["data"])
                    return f
                continue
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            k, _, v = line.partition(":")
            f[k] = v[1:] if v.startswith(" ") else v

    def until(self, pred, limit=2000):
        """Frames up to and including the first for which pred is true."""
        out = []
        for _ in range(limit):
            f = self.frame()
            if f is None:
                raise AssertionError("stream ended; got %r" % [x.get("event") for x in out])
            out.append(f)
            if pred(f):
                return out
        raise AssertionError("no matching frame in %d" % limit)

    def close(self):
        self.conn.close()


def idled(f):
    return f.get("event") == "session.idled"


def durable(frames):
    return [f for f in frames if f.get("id", "").startswith("evt_")]


class SSE(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.org = new_org("sse")
        cls.key = cls.org["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def session(self):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def send(self, sid, text):
        r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": text}]}}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json

    def log(self, sid, since=0):
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d" % (sid, since), key=self.key)
        self.assertEqual(r.status, 200, r.text)
        return r.json["data"]

    def test_connected_then_live_turn(self):
        sid = self.session()
        s = Stream(sid, self.key)
        try:
            self.assertEqual(s.status, 200)
            self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
            self.assertEqual(s.headers.get("cache-control"), "no-cache")
            first = s.frame()
            self.assertEqual(first["event"], "connected")
            self.assertEqual(first["retry"], "1000")
            self.send(sid, "hello")
            frames = durable(s.until(idled))
            self.assertEqual([f["event"] for f in frames], TURN)
            seqs = [f["data"]["sequence"] for f in frames]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(TURN))))
            for f in frames:
                self.assertRegex(f["id"], r"^evt_[0-9a-f]{32}$")
                self.assertEqual(f["id"], f["data"]["id"])
                self.assertEqual(f["event"], f["data"]["type"])
            # the stream's envelope is the event log's, field for field
            log = {e["sequence"]: e for e in self.log(sid)}
            for f in frames:
                self.assertEqual(f["data"], log[f["data"]["sequence"]])
            self.assertTrue(any(f["data"]["context"]["turn_id"] for f in frames))
            self.assertRegex(frames[0]["data"]["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        finally:
            s.close()

    def test_resume_no_gap_no_dup(self):
        sid = self.session()
        self.send(sid, "one")
        wait_until(lambda: any(e["type"] == "session.idled" for e in self.log(sid)),
                   what="idle")
        evs = self.log(sid)
        mid = evs[3]
        # Last-Event-ID beats since_id and since_sequence in the query
        s = Stream(sid, self.key, "since_sequence=0&since_id=" + evs[0]["id"],
                   headers={"Last-Event-ID": mid["id"]})
        try:
            self.assertEqual(s.frame()["event"], "connected")
            frames = durable(s.until(idled))
            self.assertEqual([f["data"]["sequence"] for f in frames],
                             [e["sequence"] for e in evs[4:]])
        finally:
            s.close()
        s = Stream(sid, self.key, "since_sequence=%d" % evs[-3]["sequence"])
        try:
            s.frame()
            frames = durable(s.until(idled))
            self.assertEqual([f["id"] for f in frames], [e["id"] for e in evs[-2:]])
        finally:
            s.close()

    def test_deltas_reassemble_across_reconnect(self):
        sid = self.session()
        s = Stream(sid, self.key)
        s.frame()
        self.send(sid, "#tokens 60\n#rate 30")
        frames = s.until(lambda f: f.get("event") == "output.message.delta"
                         and len(f["data"]["data"]["accumulated"]) > 20)
        started = [f for f in frames if f.get("event") == "output.message.started"][0]
        deltas = [f for f in frames if f.get("event") == "output.message.delta"]
        # a delta's id is a cursor (dlt_<cursor>_<message>_<offset>) and
        # its envelope the document's Event
        for f in deltas:
            m, off = f["data"]["data"]["message_sequence"], len(f["data"]["data"]["accumulated"].encode())
            self.assertRegex(f["id"], r"^dlt_\d+_%d_%d$" % (m, off))
            self.assertEqual(f["id"], f["data"]["id"])
            self.assertEqual(f["data"]["context"], started["data"]["context"])
            self.assertEqual(f["data"]["data"]["turn_id"], started["data"]["context"]["turn_id"])
        text = "".join(f["data"]["data"]["delta"] for f in deltas)
        self.assertEqual(text, deltas[-1]["data"]["data"]["accumulated"])
        self.assertEqual(deltas[0]["data"]["data"]["message_sequence"],
                         started["data"]["sequence"])
        s.close()
        # reconnect in the middle: one delta with everything so far, then
        # only newer chunks
        s = Stream(sid, self.key, headers={"Last-Event-ID": started["id"]})
        try:
            s.frame()
            frames = s.until(lambda f: f.get("event") == "output.message.completed")
            ds = [f["data"]["data"] for f in frames if f.get("event") == "output.message.delta"]
            done = frames[-1]["data"]["data"]["message"]["content"][0]["text"]
            if ds:
                self.assertTrue(ds[0]["accumulated"].startswith(text))
                self.assertEqual(ds[0]["delta"], ds[0]["accumulated"])
                self.assertEqual("".join(d["delta"] for d in ds), done)
                self.assertEqual(ds[-1]["accumulated"], done)
            s.until(idled)
        finally:
            s.close()

    @unittest.skipUnless(shutil.which("curl"), "no curl")
    def test_curl_reads_the_stream(self):
        # a client nobody here wrote: curl -N gets frames unbuffered
        sid = self.session()
        threading.Timer(0.5, lambda: self.send(sid, "curl")).start()
        p = subprocess.run(["curl", "-sN", "--max-time", "4", "-H",
                            "Authorization: Bearer " + self.key,
                            BASE + "/api/v1/sessions/%s/sse" % sid],
                           stdout=subprocess.PIPE, timeout=30)
        out = p.stdout.decode("utf-8")
        self.assertTrue(out.startswith("retry: 1000\nevent: connected\n"), out[:200])
        self.assertIn("event: session.idled\nid: evt_", out)

    def test_filters(self):
        sid = self.session()
        s = Stream(sid, self.key, "types=turn.started,session.idled&exclude=turn.started")
        try:
            self.assertEqual(s.frame()["event"], "connected")
            self.send(sid, "x")
            frames = s.until(idled)
            self.assertEqual([f["event"] for f in frames], ["session.idled"])
        finally:
            s.close()
        s = Stream(sid, self.key, "types=nope")
        self.assertEqual((s.status, s.json["code"]), (400, "validation_error"))

    def test_errors(self):
        sid = self.session()
        other = self.session()
        self.send(other, "y")
        oid = wait_until(lambda: self.log(other), what="events")[0]["id"]
        s = Stream(sid, self.key, headers={"Last-Event-ID": oid})
        self.assertEqual((s.status, s.json["code"]), (400, "invalid_cursor"))
        s = Stream(sid, self.key, "since_id=" + oid)
        self.assertEqual((s.status, s.json["code"]), (400, "invalid_cursor"))
        s = Stream(sid, None)
        self.assertEqual((s.status, s.json["code"]), (401, "unauthorized"))
        s = Stream("ses_nope", self.key)
        self.assertEqual((s.status, s.json["code"]), (400, "invalid_id"))
        stranger = new_org("sse-other")["api_key"]
        s = Stream(sid, stranger)
        self.assertEqual((s.status, s.json["code"]), (404, "not_found"))
        r = api("GET", "/api/v1/sessions/%s/events" % sid, key=stranger)
        self.assertEqual(r.status, 404)
        r = api("POST", "/api/v1/sessions/%s/sse" % sid, key=self.key)
        self.assertEqual(r.status, 405)

    def test_long_poll(self):
        sid = self.session()
        last = self.log(sid)[-1]["sequence"] if self.log(sid) else 0
        t0 = time.monotonic()
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d&wait=1" % (sid, last),
                key=self.key)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["data"], [])
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        threading.Timer(0.5, lambda: self.send(sid, "poll")).start()
        t0 = time.monotonic()
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d&wait=20&types=session.idled"
                % (sid, last), key=self.key)
        self.assertEqual(r.status, 200, r.text)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual([e["type"] for e in r.json["data"]], ["session.idled"])
        r = api("GET", "/api/v1/sessions/%s/events?wait=5" % sid, key=self.key)
        self.assertEqual(r.status, 400)
        self.assertIn("wait", r.json["error"])
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=0&wait=61" % sid, key=self.key)
        self.assertEqual(r.status, 400)

    def test_limits_and_replacement(self):
        sid = self.session()
        k2 = api("POST", "/api/v1/auth/api-keys", {"name": "second"}, key=self.key).json["key"]
        streams = [Stream(sid, self.key) for _ in range(5)]
        try:
            for s in streams:
                self.assertEqual(s.status, 200)
                s.frame()
            s6 = Stream(sid, k2)
            self.assertEqual(s6.status, 429)
            self.assertIn("retry-after", s6.headers)
            s6 = Stream(sid, self.key)
            self.assertEqual(s6.status, 200)
            streams.append(s6)
            f = streams[0].frame()
            self.assertEqual(f["event"], "disconnecting")
            self.assertEqual(f["data"]["reason"], "replaced")
            self.assertIsNone(streams[0].frame())
        finally:
            for s in streams:
                s.close()

    def test_session_delete(self):
        sid = self.session()
        s = Stream(sid, self.key)
        try:
            s.frame()
            self.assertEqual(api("DELETE", "/api/v1/sessions/" + sid, key=self.key).status, 204)
            f = s.until(lambda f: f.get("event") == "disconnecting")[-1]
            self.assertEqual(f["data"]["reason"], "session_deleted")
            self.assertIsNone(s.frame())
        finally:
            s.close()

    def test_fds_return_to_baseline(self):
        pid = stack_pid("sse")
        sid = self.session()

        def nfd():
            return len(os.listdir("/proc/%d/fd" % pid))
        base = nfd()
        for _ in range(200):
            s = Stream(sid, self.key)
            self.assertEqual(s.status, 200)
            s.frame()
            s.conn.sock.shutdown(socket.SHUT_RDWR)
            s.close()
        wait_until(lambda: nfd() <= base, timeout=10, what="fds back to %d" % base)

    def connections_lost(self, app):
        """Terminate the backends of everruns-sse named app under an open
        stream; a second stream (from sequence 0) opens right after; both
        get the next turn whole."""
        sid = self.session()
        s = Stream(sid, self.key)
        try:
            s.frame()
            n = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = $1", app)[0][0]
            self.assertGreaterEqual(int(n), 1)
            t = Stream(sid, self.key, query="since_sequence=0")
            self.assertEqual(t.status, 200)
            t.frame()
            self.send(sid, "while away")
            frames = durable(s.until(idled))
            self.assertEqual([f["event"] for f in frames], TURN)
            got = durable(t.until(idled))
            self.assertEqual([f["data"]["sequence"] for f in got],
                             [e["sequence"] for e in self.log(sid)])
            t.close()
        finally:
            s.close()

    def test_listen_connection_lost(self):
        # the hub reconnects by itself and reads the table: notifications
        # sent while it was away are not needed
        self.connections_lost("everruns-sse")
        wait_until(lambda: psql("SELECT count(*) FROM pg_stat_activity "
                                "WHERE application_name = 'everruns-sse'")[0][0] == "1",
                   what="LISTEN connection back")

    def test_query_connections_lost(self):
        # the query connections are dropped under it: the next queries
        # reconnect (without blocking) and are sent again
        self.connections_lost("everruns-sse-query")

    def test_zz_sigkill_restart_resume(self):
        sid = self.session()
        s = Stream(sid, self.key)
        s.frame()
        self.send(sid, "#tokens 40\n#rate 40")
        got = durable(s.until(lambda f: f.get("event") == "reason.started"))
        s.close()
        os.kill(stack_pid("sse"), 9)
        ctl("start")
        wait_until(lambda: stack_pid("sse"), what="sse pid")

        def reconnect():
            try:
                st = Stream(sid, self.key, headers={"Last-Event-ID": got[-1]["id"]})
            except OSError:
                return None
            return st if st.status == 200 else None
        s = wait_until(reconnect, timeout=15, interval=0.2, what="stream after restart")
        try:
            s.frame()
            got += durable(s.until(idled))
        finally:
            s.close()
        self.assertEqual([f["data"]["sequence"] for f in got],
                         [e["sequence"] for e in self.log(sid)][1:])


def fcgi_request(sock_path, params):
    """A raw FastCGI request on a unix socket; returns the socket."""
    def rec(t, content):
        pad = (8 - len(content) % 8) % 8
        return struct.pack(">BBHHBB", 1, t, 1, len(content), pad, 0) + content + b"\0" * pad

    def nv(k, v):
        k, v = k.encode(), v.encode()
        out = b""
        for x in (k, v):
            out += bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
        return out + k + v
    body = b"".join(nv(k, v) for k, v in params.items())
    data = rec(1, struct.pack(">HB5x", 1, 0)) + rec(4, body) + rec(4, b"") + rec(5, b"")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(sock_path)
    # every byte split on the way in
    for i in range(len(data)):
        c.sendall(data[i:i + 1])
    return c


def fcgi_split(buf):
    """The complete records at the head of buf: ([(type, content)], rest)."""
    recs = []
    while len(buf) >= 8:
        _, t, _, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
        if len(buf) < 8 + clen + plen:
            break
        recs.append((t, buf[8:8 + clen]))
        buf = buf[8 + clen + plen:]
    return recs, buf


def fcgi_stdout(c, until, timeout=10):
    """STDOUT content until `until` is in it or END_REQUEST arrives."""
    out, buf, end = b"", b"", False
    deadline = time.monotonic() + timeout
    while until.encode() not in out and not end and time.monotonic() < deadline:
        chunk = c.recv(65536)
        if not chunk:
            break
        recs, buf = fcgi_split(buf + chunk)
        for t, content in recs:
            if t == 6:
                out += content
            elif t == 3:
                end = True
    return out.decode("utf-8"), end


def spawn_sse(name, **env):
    """Another everruns-sse on its own socket (same database), with
    EVERRUNS_* overrides; returns (Popen, socket path, log path)."""
    sock = os.path.join("/tmp", "evr-sse-%s-%d.sock" % (name, os.getpid()))
    binary = os.path.join(BUILDDIR, "fcgi", "sse", "everruns-sse")
    e = evr._stack_environ()
    e.update({k: str(v) for k, v in env.items()})
    log_path = os.path.join(HOME, "log", "sse-%s.log" % name)
    log = open(log_path, "ab")
    proc = subprocess.Popen(evr._as_run_user([binary, "--socket", sock]), env=e,
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    wait_until(lambda: os.path.exists(sock), what="socket")
    return proc, sock, log_path


class ShortTimings(unittest.TestCase):
    """A second everruns-sse with a 1 s heartbeat and a 2 s cycle."""

    @classmethod
    def setUpClass(cls):
        org = new_org("sse-short")
        cls.key = org["api_key"]
        agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]
        cls.sid = api("POST", "/api/v1/sessions", {"agent_id": agent}, key=cls.key).json["id"]
        cls.proc, cls.sock, _ = spawn_sse("short", EVERRUNS_SSE_HEARTBEAT_S=1,
                                          EVERRUNS_SSE_CYCLE_S=2)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)

    def params(self):
        return {"REQUEST_METHOD": "GET", "REQUEST_URI": "/api/v1/sessions/%s/sse" % self.sid,
                "QUERY_STRING": "", "HTTP_AUTHORIZATION": "Bearer " + self.key}

    def test_heartbeat_and_cycle(self):
        t0 = time.monotonic()
        c = fcgi_request(self.sock, self.params())
        try:
            text, end = fcgi_stdout(c, "\0", timeout=6)  # up to END_REQUEST
        finally:
            c.close()
        self.assertTrue(end)
        self.assertIn("Status: 200", text)
        self.assertIn("X-Accel-Buffering: no", text)
        self.assertRegex(text, r"event: connected\nid: dlt_\d+_0_0\ndata: ")
        self.assertIn(": ping", text)
        # the last frame's id is where the stream stands: a cursor to resume from
        self.assertRegex(text, r'event: disconnecting\nid: (dlt_\d+_0_0)\n'
                               r'data: \{"reason":"connection_cycle","retry_ms":100,"id":"\1"\}\n\n$')
        self.assertTrue(1.5 <= time.monotonic() - t0 <= 4, time.monotonic() - t0)

    def test_bad_records_close(self):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect(self.sock)
        c.sendall(b"\x02" + b"\0" * 15)  # not version 1
        self.assertEqual(c.recv(100), b"")
        c.close()
        self.assertIsNone(self.proc.poll())


class SlowClient(unittest.TestCase):
    """A client that stops reading: past 256 KiB unsent, everruns-sse stops
    pushing to it (its memory stays bounded) and, once the client reads
    again, catches it up from the table: every event, in order, once."""

    def test_lagging_client_is_caught_up(self):
        proc, sock, log_path = spawn_sse("lag", EVERRUNS_LOG_LEVEL="debug")
        try:
            key, sid = org_session("sse-lag")
            c = fcgi_request(sock, {"REQUEST_METHOD": "GET",
                                    "REQUEST_URI": "/api/v1/sessions/%s/sse" % sid,
                                    "QUERY_STRING": "", "HTTP_AUTHORIZATION": "Bearer " + key})
            text, _ = fcgi_stdout(c, "event: connected")
            self.assertIn("event: connected", text)

            def rss_kb():
                with open("/proc/%d/status" % proc.pid) as f:
                    return int([l for l in f if l.startswith("VmRSS:")][0].split()[1])
            rss0 = rss_kb()
            # about 9 MB of events (each message ~300 KB, a short reply),
            # nothing read meanwhile
            word = "lag " * 75000
            turns = 30
            for i in range(turns):
                r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                        {"message": {"content": [{"type": "text", "text": "#tokens 10\n%d %s" % (i, word)}]}},
                        key=key)
                self.assertEqual(r.status, 201, r.text)
                wait_until(lambda: api("GET", "/api/v1/sessions/" + sid, key=key).json["status"] == "idle",
                           timeout=60, what="turn end")

            def logged(what):
                with open(log_path, errors="replace") as f:
                    return what in f.read()
            wait_until(lambda: logged("lags:"), timeout=10, what="the stream to lag")
            # bounded: the sse process did not buffer the megabytes (ASan
            # keeps freed memory in quarantine: no figure to judge there)
            grown = rss_kb() - rss0
            if "ASAN_OPTIONS" not in os.environ:
                self.assertLess(grown, 4096, "RSS grew by %d kB" % grown)
            # now read everything
            out, buf = b"", b""
            c.settimeout(10)
            deadline = time.monotonic() + 60
            while out.count(b"event: session.idled") < turns and time.monotonic() < deadline:
                chunk = c.recv(1 << 20)
                if not chunk:
                    break
                recs, buf = fcgi_split(buf + chunk)
                out += b"".join(content for t, content in recs if t == 6)
            c.close()
            self.assertTrue(logged("drained: catching up"))
            seqs = []
            for block in out.decode("utf-8").split("\n\n"):
                lines = block.split("\n")
                if any(l.startswith("id: evt_") for l in lines):
                    data = [l[6:] for l in lines if l.startswith("data: ")][0]
                    seqs.append(json.loads(data)["sequence"])
            r = api("GET", "/api/v1/sessions/%s/events?since_sequence=1&limit=1000" % sid, key=key)
            self.assertEqual(seqs, [e["sequence"] for e in r.json["data"]])
            self.assertEqual(out.count(b"event: session.idled"), turns)
        finally:
            proc.terminate()
            proc.wait(10)


class FcgiReader(threading.Thread):
    """Reads a FastCGI response in the background and notes when each
    piece of STDOUT arrived (time.monotonic())."""

    def __init__(self, sock):
        threading.Thread.__init__(self, daemon=True)
        self.sock, self.pieces, self.ended = sock, [], False
        self.sock.settimeout(30)
        self.start()

    def run(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                recs, buf = fcgi_split(buf + chunk)
                for t, content in recs:
                    if t == 6:
                        self.pieces.append((time.monotonic(), content.decode("utf-8")))
                    elif t == 3:
                        self.ended = True
        except OSError:
            return

    def text(self):
        return "".join(p for _, p in self.pieces)

    def first(self, what):
        """When `what` had arrived (None if not yet)."""
        acc = ""
        for t, p in self.pieces:
            acc += p
            if what in acc:
                return t
        return None

    def times(self, what):
        """When each piece holding `what` arrived."""
        return [t for t, p in self.pieces if what in p]

    def seqs(self):
        out = []
        # the last piece is a frame still arriving (or empty)
        for block in self.text().split("\n\n")[:-1]:
            lines = block.split("\n")
            if any(l.startswith("id: evt_") for l in lines):
                out.append(json.loads([l[6:] for l in lines if l.startswith("data: ")][0])["sequence"])
        return out


def open_stream_on(sock, sid, key, readers, query="", extra=None):
    """A stream of session sid on the everruns-sse at sock, read in the
    background (FcgiReader, added to readers)."""
    p = {"REQUEST_METHOD": "GET",
         "REQUEST_URI": "/api/v1/sessions/%s/sse" % sid + ("?" + query if query else ""),
         "QUERY_STRING": query, "HTTP_AUTHORIZATION": "Bearer " + key}
    p.update(extra or {})
    r = FcgiReader(fcgi_request(sock, p))
    readers.append(r)
    return r


def org_session(name):
    """A new organization's API key and a session of its assistant."""
    key = new_org(name)["api_key"]
    agent = api("GET", "/api/v1/agents/assistant", key=key).json["id"]
    return key, api("POST", "/api/v1/sessions", {"agent_id": agent}, key=key).json["id"]


def close_all(proc, readers):
    """Close the streams, then stop the spawned everruns-sse."""
    for r in readers:
        try:
            r.sock.close()
        except OSError:
            pass
    proc.terminate()
    proc.wait(10)


def lock_events(seconds):
    """Hold LOCK TABLE events IN ACCESS EXCLUSIVE MODE for `seconds` in a
    thread; returns (thread, dict) once the lock is granted; the dict gets
    "released" (time.monotonic()) when it is let go."""
    locked = {}

    def hold():
        psql("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; "
             "SELECT pg_sleep(%d); COMMIT;" % seconds)
        locked["released"] = time.monotonic()
    th = threading.Thread(target=hold, daemon=True)
    th.start()
    wait_until(lambda: psql(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = 'events' AND l.mode = 'AccessExclusiveLock' "
        "AND l.granted")[0][0] == "1", what="the lock")
    return th, locked


class DatabaseStall(unittest.TestCase):
    """While the events table is locked (every query that reads it
    waits), the loop of everruns-sse goes on: heartbeats keep coming,
    new streams are answered, a client that leaves while its query waits
    is let go; once the lock is gone everything is delivered, in order,
    without gap or duplicate."""

    LOCK_S = 4

    def test_locked_events_table_does_not_stall_the_loop(self):
        proc, sock, _ = spawn_sse("stall", EVERRUNS_SSE_HEARTBEAT_S=1,
                                  EVERRUNS_SSE_CYCLE_S=120)
        readers = []
        try:
            key, sid = org_session("sse-stall")
            first_id = api("GET", "/api/v1/sessions/%s/events" % sid, key=key).json["data"][0]["id"]

            def open_stream(query="", extra=None):
                return open_stream_on(sock, sid, key, readers, query, extra)

            a = open_stream()
            wait_until(lambda: a.first("event: connected"), what="stream a connected")

            th, locked = lock_events(self.LOCK_S)
            t_lock = time.monotonic()
            # a resumed stream: answered at once, its catch-up (a query on
            # events) waits for the lock on one query connection
            c = open_stream("since_sequence=0")
            # a fresh stream needs no events query: answered on the other
            b = open_stream()
            # a stream whose cursor is an event id waits for the lock;
            # its client leaves before the answer comes
            d = open_stream("", {"HTTP_LAST_EVENT_ID": first_id})
            time.sleep(0.3)
            d.sock.shutdown(socket.SHUT_RDWR)
            d.sock.close()
            # a turn whose events wait for the lock too
            posted = {}

            def post():
                posted["r"] = api("POST", "/api/v1/sessions/%s/messages" % sid,
                                  {"message": {"content": [{"type": "text", "text": "locked"}]}},
                                  key=key)
            pt = threading.Thread(target=post, daemon=True)
            pt.start()
            th.join(self.LOCK_S + 30)
            released = locked["released"]
            self.assertGreaterEqual(released - t_lock, self.LOCK_S - 1)
            for name, r in (("c", c), ("b", b)):
                t = r.first("event: connected")
                self.assertIsNotNone(t, "stream %s not answered" % name)
                self.assertLess(t, released - 0.5, "stream %s answered only after the lock" % name)
            # the heartbeats of the open stream went on meanwhile
            pings = [t for t in a.times(": ping") if t_lock < t < released - 0.2]
            self.assertGreaterEqual(len(pings), 2, a.text())
            self.assertIsNone(d.first("event: connected"))
            # then everything, in order, once
            pt.join(60)
            self.assertEqual(posted["r"].status, 201, posted["r"].text)
            for r in (a, b, c):
                wait_until(lambda: "event: session.idled" in r.text(), timeout=30,
                           what="the turn on every stream")
            log = [e["sequence"] for e in api(
                "GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=key).json["data"]]
            self.assertEqual(c.seqs(), log)
            start = log.index(a.seqs()[0])
            self.assertEqual(a.seqs(), log[start:])
            self.assertEqual(b.seqs(), log[start:])
            self.assertEqual([json.loads([l[6:] for l in blk.split("\n") if l.startswith("data: ")][0])["type"]
                              for blk in a.text().split("\n\n") if "\nid: evt_" in blk], TURN)
            self.assertIsNone(proc.poll())
        finally:
            close_all(proc, readers)
        self.assertEqual(proc.returncode, 0)

    def test_query_timeout(self):
        # sse_query_timeout_s = 1: a query that waits for the lock is given
        # up after a second. A stream whose cursor needs the events table
        # gets 503 database_unavailable with Retry-After while the lock is
        # still held; a catch-up round is tried again until the lock is
        # gone, and then delivers everything, in order.
        proc, sock, log_path = spawn_sse("qtimeout", EVERRUNS_SSE_QUERY_TIMEOUT_S=1)
        readers = []
        try:
            key, sid = org_session("sse-qtimeout")
            first_id = api("GET", "/api/v1/sessions/%s/events" % sid, key=key).json["data"][0]["id"]

            def open_stream(query="", extra=None):
                return open_stream_on(sock, sid, key, readers, query, extra)

            th, locked = lock_events(self.LOCK_S)
            t_lock = time.monotonic()
            c = open_stream("since_sequence=0")
            d = open_stream("", {"HTTP_LAST_EVENT_ID": first_id})
            wait_until(lambda: d.ended, timeout=self.LOCK_S + 10, what="stream d answered")
            t_d = d.first("database_unavailable")
            self.assertIsNotNone(t_d, d.text())
            self.assertIn("Status: 503", d.text())
            self.assertIn("Retry-After: 1", d.text())
            self.assertIsNone(d.first("event: connected"))
            self.assertGreater(t_d - t_lock, 0.9, "given up before the timeout")
            self.assertLess(t_d - t_lock, self.LOCK_S - 1, "answered only after the lock")
            th.join(self.LOCK_S + 30)
            self.assertIn("released", locked)
            wait_until(lambda: c.seqs(), timeout=10, what="the catch-up after the lock")
            log = [e["sequence"] for e in api(
                "GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=key).json["data"]]
            self.assertEqual(c.seqs(), log)
            self.assertGreater(c.first("id: evt_"), locked["released"] - 0.1)
            # and the same stream as d opens now
            e = open_stream("", {"HTTP_LAST_EVENT_ID": first_id})
            wait_until(lambda: e.first("event: connected"), what="stream e connected")
            self.assertIsNone(proc.poll())
        finally:
            close_all(proc, readers)
        self.assertEqual(proc.returncode, 0)
        with open(log_path) as f:
            text = f.read()
        self.assertIn("a query ran over 1 s, given up", text)

    def test_delta_buffer_cap(self):
        # sse_delta_buffer_mb = 1: while the session's catch-up round waits
        # for the lock, 1.2 MB of deltas arrive; the oldest are dropped,
        # and once the lock is gone the stream gets the whole text from
        # live_text as one delta, and nothing after it repeats it.
        proc, sock, log_path = spawn_sse("deltacap", EVERRUNS_SSE_DELTA_BUFFER_MB=1)
        readers = []
        chunks, size = 300, 4000
        try:
            key, sid = org_session("sse-deltacap")
            hexid = sid[4:]
            uuid = "%s-%s-%s-%s-%s" % (hexid[:8], hexid[8:12], hexid[12:16], hexid[16:20], hexid[20:])
            m = api("GET", "/api/v1/sessions/%s/events" % sid, key=key).json["data"][-1]["sequence"]
            a = open_stream_on(sock, sid, key, readers)
            wait_until(lambda: a.first("event: connected"), what="connected")
            th, locked = lock_events(self.LOCK_S)
            # a wake-up: the session's round now waits for the lock
            psql("SELECT pg_notify('ev', '%s:%d')" % (hexid, m + 1))
            time.sleep(0.3)
            psql("WITH c AS (SELECT i, repeat(chr(65 + i %% 26), %d) AS t "
                 "FROM generate_series(0, %d) i), "
                 "ins AS (INSERT INTO live_text (session_id, m, off, text) "
                 "SELECT '%s', %d, i * %d, t FROM c) "
                 "SELECT count(pg_notify('evd', json_build_object('s', '%s', 'm', %d, "
                 "'off', i * %d, 'd', t)::text)) FROM c"
                 % (size, chunks - 1, uuid, m, size, hexid, m, size))
            th.join(self.LOCK_S + 30)
            self.assertIn("released", locked)
            whole = "".join(chr(65 + i % 26) * size for i in range(chunks))

            def deltas():
                out = []
                # the last piece is a frame still arriving (or empty)
                for block in a.text().split("\n\n")[:-1]:
                    if block.startswith("event: output.message.delta"):
                        out.append(json.loads(block.split("\ndata: ", 1)[1])["data"])
                return out
            wait_until(lambda: deltas() and deltas()[-1]["accumulated"] == whole, timeout=20,
                       what="the whole text")
            time.sleep(0.5)
            ds = deltas()
            self.assertEqual("".join(d["delta"] for d in ds), whole)
            self.assertLess(len(ds), chunks, "some deltas were dropped")
            self.assertIsNone(proc.poll())
        finally:
            close_all(proc, readers)
        self.assertEqual(proc.returncode, 0)
        with open(log_path) as f:
            self.assertIn("deltas held for stalled sessions passed 1 MB", f.read())

    def test_query_connections_setting(self):
        # one connection serves everything (rounds and requests share
        # it); out of range is clamped to 1..16, with a warning
        org = new_org("sse-one")
        key = org["api_key"]
        agent = api("GET", "/api/v1/agents/assistant", key=key).json["id"]
        sid = api("POST", "/api/v1/sessions", {"agent_id": agent}, key=key).json["id"]
        proc, sock, log_path = spawn_sse("one", EVERRUNS_SSE_DB_CONNECTIONS=1)
        try:
            r = FcgiReader(fcgi_request(sock, {
                "REQUEST_METHOD": "GET",
                "REQUEST_URI": "/api/v1/sessions/%s/sse?since_sequence=0" % sid,
                "QUERY_STRING": "since_sequence=0", "HTTP_AUTHORIZATION": "Bearer " + key}))
            wait_until(lambda: r.first("event: connected"), what="connected")
            api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": "one"}]}}, key=key)
            wait_until(lambda: "event: session.idled" in r.text(), timeout=30, what="the turn")
            log = [e["sequence"] for e in api(
                "GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=key).json["data"]]
            self.assertEqual(r.seqs(), log)
            r.sock.close()
        finally:
            proc.terminate()
            proc.wait(10)
        with open(log_path) as f:
            self.assertIn(" 1 query connection\n", f.read())
        for asked, got in ((0, 1), (99, 16)):
            proc, _, log_path = spawn_sse("n%d" % asked, EVERRUNS_SSE_DB_CONNECTIONS=asked)
            proc.terminate()
            proc.wait(10)
            with open(log_path) as f:
                text = f.read()
            self.assertIn("config sse_db_connections: %d is outside [1, 16], using %d"
                          % (asked, got), text)
            self.assertIn(" %d query connection" % got, text)
