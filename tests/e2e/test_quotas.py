"""Quotas (README "Limits"): the session file system's entries (each file
or directory counts towards fs_session_max_entries and is charged at
least fs_entry_min_kb, so directories, empty files and copied subtrees
are not free), the per-organization limits on sessions, stored bytes
(files and images) and events, the api's statement_timeout, and the
connections of everruns-sse (long-polls count towards the stream limits;
a revoked key's streams and long-polls close within seconds).

Every case runs on a host of its own (stacks.ExtraStack, on the test
stack's database) configured with small limits, each attack from a fresh
organization, while a second organization's ordinary requests run
alongside (Bystander): they must all succeed."""

import base64
import os
import subprocess
import threading
import time
import unittest
import urllib.parse
import uuid

import evr
from evr import api, new_org, psql
from stacks import ExtraStack
from test_sse import Stream

V1 = "/api/v1"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
KIB, MIB = 1024, 1024 * 1024

LIMITS = dict(
    EVERRUNS_FS_SESSION_MAX_ENTRIES=1000,
    EVERRUNS_FS_ENTRY_MIN_KB=4,
    EVERRUNS_ORG_MAX_SESSIONS=5,
    EVERRUNS_ORG_MAX_STORAGE_MB=8,
    EVERRUNS_ORG_MAX_EVENTS=60,
    EVERRUNS_API_STATEMENT_TIMEOUT_S=1,
    EVERRUNS_SSE_MAX_PER_SESSION=2,
    EVERRUNS_SSE_MAX_PER_ORG=4,
    # the runner of this host takes turns too; keep it small
    EVERRUNS_API_THREADS=3,
)


class Bystander:
    """Another organization's ordinary requests (list sessions, write and
    read a small file), one after the other in a thread for as long as
    the block runs (bounded: at most 2,000 requests); every one must
    succeed. Latencies are kept for the report."""

    def __init__(self, host):
        self.host = host
        org = new_org("bystander-" + uuid.uuid4().hex[:6])
        self.key = org["api_key"]
        agent = host.api("GET", V1 + "/agents/assistant", key=self.key).json["id"]
        self.sid = host.api("POST", V1 + "/sessions", {"agent_id": agent},
                            key=self.key).json["id"]
        r = host.api("PUT", V1 + "/sessions/%s/fs/by.txt" % self.sid, raw=b"by",
                     content_type="text/plain", key=self.key)
        assert r.status == 201, r
        self.failures, self.lat = [], []

    def _run(self):
        # reads only: a write adds an event, and events are a quota too
        n = 0
        calls = (("GET", "/sessions?limit=5", {}),
                 ("GET", "/sessions/" + self.sid, {}),
                 ("GET", "/sessions/%s/fs/by.txt" % self.sid, {}),
                 ("POST", "/sessions/%s/fs/_/stat" % self.sid, {"body": {"path": "/by.txt"}}),
                 ("GET", "/agents?limit=5", {}))
        while not self.stop.is_set() and n < 2000:
            n += 1
            for m, p, kw in calls:
                t = time.monotonic()
                try:
                    r = self.host.api(m, V1 + p, key=self.key, timeout=10, **kw)
                    st = r.status
                except Exception as e:  # a timeout is a failure too
                    st = repr(e)
                self.lat.append(time.monotonic() - t)
                if not (isinstance(st, int) and 200 <= st < 300):
                    self.failures.append((m, p, st))
            time.sleep(0.02)

    def __enter__(self):
        self.stop = threading.Event()
        self.failures, self.lat = [], []
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.th.join(30)

    def report(self, what):
        lat = sorted(self.lat) or [0]
        print("  bystander during %s: %d requests, p50 %.1f ms, max %.1f ms" % (
            what, len(self.lat), 1000 * lat[len(lat) // 2], 1000 * lat[-1]))


class Quotas(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.host = ExtraStack("quotas", **LIMITS)
        try:
            cls.host.start()
        except Exception:
            cls.host.stop()
            raise
        cls.by = Bystander(cls.host)

    @classmethod
    def tearDownClass(cls):
        cls.host.stop()

    def api(self, *a, **kw):
        return self.host.api(*a, **kw)

    def org(self, name):
        key = new_org(name + "-" + uuid.uuid4().hex[:6])["api_key"]
        agent = self.api("GET", V1 + "/agents/assistant", key=key).json["id"]
        return key, agent

    def session(self, key, agent, caps=None):
        body = {"agent_id": agent}
        if caps:
            body["capabilities"] = caps
        r = self.api("POST", V1 + "/sessions", body, key=key)
        self.assertEqual(r.status, 201, r)
        return r.json["id"]

    def put(self, key, sid, path, data=b"", raw=True):
        return self.api("PUT", V1 + "/sessions/%s/fs/%s" % (sid, path), raw=data,
                        content_type="application/octet-stream", key=key)

    def rows(self, sid):
        return int(psql("SELECT count(*) FROM session_files WHERE session_id = "
                        "replace(substr($1, 5), '-', '')::uuid", sid)[0][0])

    def attack(self, what):
        """The bystander runs alongside; checked when the block ends."""
        test = self

        class _Ctx:
            def __enter__(self):
                self.b = test.by.__enter__()
                return self.b

            def __exit__(self, *exc):
                test.by.__exit__(*exc)
                test.by.report(what)
                if exc[0] is None:
                    test.assertEqual(test.by.failures, [], "the bystander's requests failed")
                    test.assertGreater(len(test.by.lat), 0)
        return _Ctx()

    # --- the session file system ---------------------------------------------

    def test_copy_cannot_multiply_rows(self):
        key, agent = self.org("copies")
        sid = self.session(key, agent)
        self.assertEqual(self.put(key, sid, "d/f").status, 201)
        refused = None
        t0 = time.monotonic()
        with self.attack("subtree copies"):
            # each copy and move doubles the entries of /d: 2^(i+1); 14
            # rounds would be 32,768 rows without the limit (bounded here
            # in case)
            for i in range(14):
                r = self.api("POST", V1 + "/sessions/%s/fs/_/copy" % sid,
                             {"src_path": "/d", "dst_path": "/t"}, key=key)
                if r.status != 201:
                    refused = r
                    break
                r = self.api("POST", V1 + "/sessions/%s/fs/_/move" % sid,
                             {"src_path": "/t", "dst_path": "/d/c%d" % i}, key=key)
                self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(refused, "no copy was refused; rows: %d" % self.rows(sid))
        self.assertEqual((refused.status, refused.json["code"]), (413, "too_many_entries"), refused)
        self.assertIn("1000", refused.json["error"])
        self.assertIn("fs_session_max_entries", refused.json["error"])
        self.assertLessEqual(self.rows(sid), 1000)
        print("  copy over the entry limit refused after %.2f s (%d rows)" % (
            time.monotonic() - t0, self.rows(sid)))
        # the limit is exact: /d holds 512 entries and /d/cI 2^(I+1);
        # fill the remaining 488 with copies that fit, refuse one that
        # does not (256 with 232 left), then any single entry
        self.assertEqual(self.rows(sid), 512)
        cp = lambda src, dst: self.api("POST", V1 + "/sessions/%s/fs/_/copy" % sid,
                                       {"src_path": src, "dst_path": dst}, key=key)
        self.assertEqual(cp("/d/c7", "/x7").status, 201)
        r = cp("/d/c7", "/y7")
        self.assertEqual((r.status, r.json["code"]), (413, "too_many_entries"), r)
        for i in (6, 5, 4, 2):
            self.assertEqual(cp("/d/c%d" % i, "/x%d" % i).status, 201)
        self.assertEqual(self.rows(sid), 1000)
        r = self.put(key, sid, "one-more")
        self.assertEqual((r.status, r.json["code"]), (413, "too_many_entries"), r)
        r = self.api("POST", V1 + "/sessions/%s/fs/new-dir" % sid, {"is_directory": True}, key=key)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.rows(sid), 1000)
        # a deletion makes room; the count follows every change
        self.assertEqual(self.api("DELETE", V1 + "/sessions/%s/fs/x2?recursive=true" % sid,
                                  key=key).status, 200)
        self.assertEqual(self.put(key, sid, "after").status, 201)
        used = psql("SELECT entries FROM session_fs_usage WHERE session_id = "
                    "replace(substr($1, 5), '-', '')::uuid", sid)[0][0]
        self.assertEqual(int(used), self.rows(sid))

    def test_empty_entries_are_charged(self):
        # a session of at most 1 MiB: empty files and directories cost
        # 4 KiB each, so about 256 of them fill it
        key, agent = self.org("charges")
        sid = self.session(key, agent, [{"ref": "session_file_system",
                                         "config": {"max_total_mb": 1}}])
        self.assertEqual(self.put(key, sid, "e/empty").status, 201)
        refused = None
        with self.attack("empty entries"):
            for i in range(10):
                r = self.api("POST", V1 + "/sessions/%s/fs/_/copy" % sid,
                             {"src_path": "/e", "dst_path": "/t"}, key=key)
                if r.status != 201:
                    refused = r
                    break
                r = self.api("POST", V1 + "/sessions/%s/fs/_/move" % sid,
                             {"src_path": "/t", "dst_path": "/e/c%d" % i}, key=key)
                self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(refused, "empty entries were free: %d rows" % self.rows(sid))
        self.assertEqual((refused.status, refused.json["code"]), (413, "payload_too_large"))
        self.assertIn(str(MIB), refused.json["error"])
        self.assertLessEqual(self.rows(sid) * 4 * KIB, MIB)
        # directories alone, one request each, meet the same wall
        sid2 = self.session(key, agent, [{"ref": "session_file_system",
                                          "config": {"max_total_mb": 1}}])
        deep = "/".join(["a"] * 300)
        r = self.api("POST", V1 + "/sessions/%s/fs/%s" % (sid2, deep), {"is_directory": True}, key=key)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.rows(sid2), 0)

    # --- the organization ----------------------------------------------------

    def test_org_sessions(self):
        key, agent = self.org("sessions")
        idem = {"Idempotency-Key": "q-" + uuid.uuid4().hex}
        first = self.api("POST", V1 + "/sessions", {"agent_id": agent}, key=key, headers=idem)
        self.assertEqual(first.status, 201, first)
        with self.attack("session creation"):
            made = [self.api("POST", V1 + "/sessions", {"agent_id": agent}, key=key).status
                    for _ in range(6)]
        self.assertEqual(made[:4], [201] * 4)
        self.assertEqual(made[4:], [429] * 2)
        # a replay of a create is still answered at the limit
        again = self.api("POST", V1 + "/sessions", {"agent_id": agent}, key=key, headers=idem)
        self.assertEqual((again.status, again.json["id"]), (201, first.json["id"]))
        r = self.api("POST", V1 + "/sessions", {"agent_id": agent}, key=key)
        self.assertEqual((r.status, r.json["code"]), (429, "org_session_limit"), r)
        self.assertIn("org_max_sessions", r.json["error"])
        self.assertIn("retry-after", r.headers)
        # another organization is not affected (the bystander made one too)
        k2, a2 = self.org("sessions-other")
        self.session(k2, a2)

    def test_org_storage(self):
        key, agent = self.org("storage")
        s1, s2 = self.session(key, agent), self.session(key, agent)
        blob = b"\x01" * (MIB - 64 * KIB)
        codes = []
        with self.attack("storage"):
            for i in range(6):
                for sid in (s1, s2):
                    r = self.put(key, sid, "f%d" % i, blob)
                    codes.append(r.status)
                    if r.status != 201:
                        break
                if codes[-1] != 201:
                    break
        self.assertEqual(codes[-1], 413, codes)
        self.assertLessEqual(codes.count(201), 8)
        self.assertGreaterEqual(codes.count(201), 7)
        self.assertEqual(r.json["code"], "org_storage_full", r)
        self.assertIn("org_max_storage_mb", r.json["error"])
        # images count towards the same bytes
        b = "----q" + uuid.uuid4().hex
        body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                "Content-Type: image/png\r\n\r\n" % b).encode() + PNG + b"\0" * (900 * KIB) + \
            ("\r\n--%s--\r\n" % b).encode()
        r = self.api("POST", V1 + "/images", raw=body,
                     content_type="multipart/form-data; boundary=" + b, key=key)
        self.assertEqual((r.status, r.json["code"]), (413, "org_storage_full"), r)
        # and deleting makes room again
        self.assertEqual(self.api("DELETE", V1 + "/sessions/%s" % s1, key=key).status, 204)
        r = self.api("POST", V1 + "/images", raw=body,
                     content_type="multipart/form-data; boundary=" + b, key=key)
        self.assertEqual(r.status, 201, r)

    def test_org_events(self):
        key, agent = self.org("events")
        sid = self.session(key, agent)
        msg = {"message": {"content": [{"type": "text", "text": "hi"}]},
               "controls": {}}
        refused = None
        with self.attack("events"):
            for i in range(20):
                r = self.api("POST", V1 + "/sessions/%s/messages" % sid, msg, key=key)
                if r.status == 400 and r.json.get("code") == "session_busy":
                    time.sleep(0.1)
                    continue
                if r.status != 201:
                    refused = r
                    break
                evr.wait_until(lambda: self.api("GET", V1 + "/sessions/" + sid, key=key)
                               .json["status"] == "idle", timeout=20, what="turn done")
        self.assertIsNotNone(refused)
        self.assertEqual((refused.status, refused.json["code"]), (429, "org_event_limit"), refused)
        self.assertIn("org_max_events", refused.json["error"])
        n = int(psql("SELECT last_seq FROM sessions WHERE id = "
                     "replace(substr($1, 5), '-', '')::uuid", sid)[0][0])
        self.assertGreaterEqual(n, 60)
        self.assertLess(n, 80)
        # file writes add events too: refused alike
        r = self.put(key, sid, "x", b"x")
        self.assertEqual((r.status, r.json["code"]), (429, "org_event_limit"), r)

    def test_statement_timeout(self):
        key, agent = self.org("slow")
        sid = self.session(key, agent)
        # another connection holds the session's row for 6 s: a file
        # write waits for it, and the api's statement_timeout (1 s) ends
        # the wait
        locker = subprocess.Popen(
            evr._as_run_user([evr._psql_bin(), "-X", "-q", "-d", evr.stack_env("EVR_DATABASE_URL"),
                              "-c", "BEGIN; SELECT 1 FROM sessions WHERE id = '%s' FOR UPDATE; "
                              "SELECT pg_sleep(6); COMMIT;" % sid[4:]]),
            env=evr._stack_environ(), cwd="/", stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            with self.attack("a locked row"):
                t = time.monotonic()
                r = self.put(key, sid, "blocked", b"x")
                took = time.monotonic() - t
        finally:
            locker.wait(30)
        print("  a statement waiting on a lock cancelled after %.2f s" % took)
        self.assertEqual((r.status, r.json["code"]), (503, "statement_timeout"), r)
        self.assertIn("api_statement_timeout_s", r.json["error"])
        self.assertLess(took, 3.5)
        self.assertEqual(self.put(key, sid, "after", b"x").status, 201)

    # --- everruns-sse connections --------------------------------------------

    def poll(self, sid, key, out, wait=8):
        def run():
            t = time.monotonic()
            try:
                r = self.api("GET", V1 + "/sessions/%s/events?since_sequence=1&wait=%d"
                             % (sid, wait), key=key, timeout=wait + 10)
                out.append((r.status, r.json, time.monotonic() - t))
            except Exception as e:
                out.append((repr(e), None, time.monotonic() - t))
        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th

    def member(self, key):
        r = self.api("POST", V1 + "/auth/api-keys", {"name": "m"}, key=key)
        self.assertEqual(r.status, 201, r)
        return r.json

    def test_long_polls_count_towards_stream_limits(self):
        key, agent = self.org("polls")
        sid, sid2, sid3 = (self.session(key, agent) for _ in range(3))
        keys = [self.member(key)["key"] for _ in range(5)]
        out, ths, streams = [], [], []
        with self.attack("long-polls"):
            try:
                # two long-polls of two keys fill the session (limit 2)
                ths += [self.poll(sid, keys[0], out), self.poll(sid, keys[1], out)]
                time.sleep(1.0)
                s = Stream(sid, keys[2], base=self.host.base, timeout=10)
                streams.append(s)
                self.assertEqual(s.status, 429, "a stream beside two long-polls")
                self.assertEqual(s.json["code"], "too_many_streams")
                r = self.api("GET", V1 + "/sessions/%s/events?since_sequence=1&wait=1" % sid,
                             key=keys[3])
                self.assertEqual((r.status, r.json["code"]), (429, "too_many_streams"))
                # the organization's limit (4): two more long-polls elsewhere
                # fill it, and a stream of a third session is refused
                ths += [self.poll(sid2, keys[0], out), self.poll(sid2, keys[1], out)]
                time.sleep(1.0)
                s = Stream(sid3, keys[4], base=self.host.base, timeout=10)
                streams.append(s)
                self.assertEqual(s.status, 429, "a stream past the organization's limit")
            finally:
                for s in streams:
                    s.close()
        # the long-polls themselves end normally at their deadline
        for th in ths:
            th.join(30)
        self.assertEqual(sorted(o[0] for o in out), [200] * 4, out)

    def test_revoked_key_loses_its_connections(self):
        key, agent = self.org("revoke")
        sid, sid2 = self.session(key, agent), self.session(key, agent)
        m = self.member(key)
        s = Stream(sid, m["key"], base=self.host.base, timeout=15)
        self.assertEqual(s.status, 200)
        self.assertEqual(s.frame().get("event"), "connected")
        out = []
        th = self.poll(sid2, m["key"], out, wait=30)
        time.sleep(1.0)
        with self.attack("revocation"):
            t = time.monotonic()
            r = self.api("DELETE", V1 + "/auth/api-keys/" + m["id"], key=key)
            self.assertEqual(r.status, 204)
            try:
                frames = s.until(lambda f: f.get("event") == "disconnecting", limit=50)
            finally:
                s.close()
            took = time.monotonic() - t
            th.join(15)
        print("  a revoked key's stream closed after %.2f s" % took)
        self.assertEqual(frames[-1]["data"]["reason"], "key_revoked")
        self.assertLess(took, 5)
        self.assertEqual(len(out), 1, "the long-poll is still open")
        self.assertEqual(out[0][0], 401, out)
        self.assertLess(out[0][2], 10)
        # and the key cannot open another
        s = Stream(sid, m["key"], base=self.host.base, timeout=10)
        self.assertEqual(s.status, 401)
        s.close()


if __name__ == "__main__":
    unittest.main()
