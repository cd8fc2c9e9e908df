"""A hostile tenant against a shared server: each case is one attack, run
while a second organization (bystander.py) does ordinary REST requests and
turns; every attack must end with a clear 4xx or a turn.failed naming the
limit, quickly, and every piece of the bystander's work must complete.
The bystander's latency with and without the attack is printed, and so is
how long each pathological input took to be refused.

Attacks here: runaway regular expressions (the REST grep and the runner's
grep_files tool), output bombs from a provider (text, thinking, tool
arguments, and gzip/deflate bodies that expand past the response cap),
a base_url change that would carry the stored key to another host, header
injection through api_key, the address guard's missing ranges, and a
loopback service probe through a provider's base_url."""

import base64
import json
import os
import signal
import socket
import threading
import time
import unittest
import zlib

from bystander import Bystander
from evr import HOME, api, new_org, tool_output, psql, stack_pid, start_runner, wait_until
from test_drivers import Fake
from test_sse import close_all, open_stream_on, spawn_sse

# 600: SLOW_STEPS_RE takes about 1.8 s on it here unbounded (9x
# regex_time_ms); on 300 it took 0.25 s, so a quiet, fast machine
# finished it inside the limit and the time limit went untested
RUNAWAY = "a" * 600 + "!"
# backtracks for ever in glibc's regexec (as the issue's ^(a*)*\1\1b$) and
# in PCRE2, which sees at once that the pattern needs a 'b'
RUNAWAY_RE = "^(a*)*\\1\\1[bc]$"
# few backtracking steps, each comparing a back reference along the line:
# only a clock read inside the match stops it
SLOW_STEPS_RE = "(a*)\\1*\\1*[bc]"


def fs(sid, path=""):
    return "/api/v1/sessions/%s/fs/%s" % (sid, path)


def wait_turn(key, sid, since, timeout=30):
    """The events after `since` up to session.idled."""
    out = []

    def done():
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d&limit=500"
                % (sid, since), key=key)
        assert r.status == 200, r.text
        out[:] = r.json["data"]
        return any(e["type"] == "session.idled" for e in out)
    wait_until(done, timeout=timeout, interval=0.05, what="session.idled")
    return out


def report(what, seconds, verb="refused"):
    print("\n  %s: %-52s in %6.0f ms" % (verb, what, seconds * 1000), flush=True)


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bystander = Bystander("hostile-bystander")
        cls.key = new_org("hostile")["api_key"]
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]
        prv = [p for p in api("GET", "/api/v1/llm-providers", key=cls.key).json["data"]
               if p["provider_type"] == "llmsim"][0]["id"]
        cls.instant = api("POST", "/api/v1/llm-providers/%s/models" % prv,
                          {"model_id": "llmsim-instant", "capabilities": ["chat", "tools"]},
                          key=cls.key).json["id"]
        cls.fake = Fake()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def session(self, model_id=None):
        body = {"harness_id": self.harness, "capabilities": [{"ref": "session_file_system"}]}
        body["model_id"] = model_id or self.instant
        r = api("POST", "/api/v1/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def provider(self, base_url, kind="openai_completions", api_key="sk-hostile", fake=None):
        """A provider and one model of it: (provider id, model id, model name)."""
        name = "m-%d-%d" % (os.getpid(), int(time.monotonic() * 1e6))
        body = {"name": name[:60], "provider_type": kind, "base_url": base_url}
        if api_key is not None:
            body["api_key"] = api_key
        r = api("POST", "/api/v1/llm-providers", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        m = api("POST", "/api/v1/llm-providers/%s/models" % r.json["id"],
                {"model_id": name, "capabilities": ["chat", "tools"]}, key=self.key)
        self.assertEqual(m.status, 201, m.text)
        return r.json["id"], m.json["id"], name

    seq = {}  # session -> the last event sequence seen

    def turn(self, sid, text, timeout=30):
        """Send text; (events of the turn, seconds until session.idled)."""
        since = self.seq.get(sid, 0)
        t = time.monotonic()
        r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": text}}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        evs = wait_turn(self.key, sid, since, timeout=timeout)
        self.seq[sid] = evs[-1]["sequence"]
        return evs, time.monotonic() - t

    def failed(self, evs):
        f = [e for e in evs if e["type"] == "turn.failed"]
        self.assertEqual(len(f), 1, [e["type"] for e in evs])
        return f[0]["data"]

    # --- runaway regular expressions ----------------------------------

    def test_runaway_regex_via_api(self):
        sid = self.session()
        r = api("PUT", fs(sid, "a.txt"), {"content": "first\n" + RUNAWAY + "\nlast\n"},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        quiet = self.bystander.measure(2.0)
        results = {}
        with self.bystander.running() as load:
            # the pattern: PCRE2 sees at once that no 'b' is there
            for pat in ("^(a*)*\\1\\1b$", RUNAWAY_RE, "^(a+)+$", "^(a|a)*$",
                        "((a*)*)*\\2\\1!b", "(*NO_START_OPT)^(a*)*\\1\\1b$", SLOW_STEPS_RE):
                t = time.monotonic()
                r = api("POST", fs(sid, "_/grep"), {"pattern": pat}, key=self.key, timeout=20)
                results[pat] = (r, time.monotonic() - t)
            # eight at once (as many as hold every API thread before)
            many = []

            def one():
                t0 = time.monotonic()
                rr = api("POST", fs(sid, "_/grep"), {"pattern": RUNAWAY_RE}, key=self.key,
                         timeout=20)
                many.append((rr.status, time.monotonic() - t0))
            threads = [threading.Thread(target=one) for _ in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(timeout=30)
        for pat, (r, dt) in results.items():
            report("grep %r" % pat, dt, "refused" if r.status != 200 else "answered")
            self.assertLess(dt, 3.0, pat)
            if r.status == 200:
                self.assertEqual(r.json["count"], 0, r.text)  # none can match
            else:
                self.assertEqual(r.status, 422, r.text)
                self.assertEqual(r.json["code"], "regex_limit", r.text)
                self.assertRegex(r.json["error"],
                                 r"regex_(match_limit|depth_limit|memory_kb|time_ms)")
                self.assertIn("line 2 of /a.txt", r.json["error"])
        self.assertEqual(results[RUNAWAY_RE][0].status, 422)
        self.assertEqual(results["^(a+)+$"][0].status, 422)
        self.assertIn("regex_time_ms", results[SLOW_STEPS_RE][0].json["error"])
        self.assertEqual(results["(*NO_START_OPT)^(a*)*\\1\\1b$"][0].status, 422)
        self.assertEqual(sorted(s for s, _ in many), [422] * 8)
        report("8 concurrent grep %r (slowest)" % RUNAWAY_RE, max(d for _, d in many))
        # ordinary patterns, as POSIX ERE was used before, still work
        r = api("POST", fs(sid, "_/grep"), {"pattern": "^(fir|la)st$|\\<last\\>"}, key=self.key)
        self.assertEqual((r.status, r.json["count"]), (200, 2), r.text)
        r = api("POST", fs(sid, "_/grep"), {"pattern": "[[:alpha:]]{5}"}, key=self.key)
        self.assertEqual((r.status, r.json["count"]), (200, 2), r.text)
        self.bystander.check(quiet, load, "runaway grep via the API")

    def test_runaway_regex_via_runner_tool(self):
        sid = self.session()
        r = api("PUT", fs(sid, "a.txt"), {"content": RUNAWAY + "\n"}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        quiet = self.bystander.measure(2.0)
        with self.bystander.running() as load:
            evs, dt = self.turn(sid, "#tool grep_files %s\ngo" % json.dumps({"pattern": RUNAWAY_RE}),
                                timeout=40)
        done = [e["data"] for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(len(done), 1, [e["type"] for e in evs])
        self.assertFalse(done[0]["success"], done[0])
        self.assertRegex(done[0]["error"], r"regex_(match_limit|time_ms)")
        self.assertIn("turn.completed", [e["type"] for e in evs])
        report("grep_files %r (whole turn)" % RUNAWAY_RE, dt)
        self.bystander.check(quiet, load, "runaway grep_files in the runner")

    def test_slow_grep_files_is_cut_short(self):
        """Lines that each stay under the limits but cost tens of ms: the
        runner's thread is given back after grep_tool_budget_ms."""
        sid = self.session()
        r = api("PUT", fs(sid, "slow.txt"), {"content": ("a" * 100 + "!\n") * 300},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        quiet = self.bystander.measure(2.0)
        with self.bystander.running() as load:
            evs, dt = self.turn(sid, "#tool grep_files %s\ngo" % json.dumps({"pattern": SLOW_STEPS_RE}),
                                timeout=40)
        done = [e["data"] for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(len(done), 1, [e["type"] for e in evs])
        if done[0]["success"]:
            self.assertTrue(tool_output(done[0])["truncated"], done[0])
        else:  # a line past regex_time_ms on a loaded machine
            self.assertIn("regex_time_ms", done[0]["error"])
        report("grep_files on 300 slow lines (whole turn)", dt, "cut short")
        self.assertLess(dt, 3.5)
        self.bystander.check(quiet, load, "slow grep_files in the runner")

    # --- output bombs -------------------------------------------------

    def bomb_turn(self, kind, response):
        base = self.fake.base + ("/v1" if kind == "openai_completions" else "")
        _, mid, name = self.provider(base, kind)
        self.fake.script(name, response)
        sid = self.session(mid)
        evs, dt = self.turn(sid, "hello", timeout=60)
        return self.failed(evs), dt

    @staticmethod
    def compressed_stream(wbits, mib):
        """An OpenAI stream that expands to about `mib` MiB of SSE comments
        before a valid answer, compressed (wbits 31: gzip, 15: zlib)."""
        c = zlib.compressobj(9, zlib.DEFLATED, wbits)
        head = ('data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
                '"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n')
        tail = ('data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
                '"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        block = (": " + "x" * 1021 + "\n").encode() * 1024  # 1 MiB
        out = [c.compress(head.encode())]
        for _ in range(mib):
            out.append(c.compress(block))
        out.append(c.compress(tail.encode()))
        out.append(c.flush())
        return b"".join(out)

    def test_output_bombs(self):
        mib = 1024 * 1024
        quiet = self.bystander.measure(2.0)
        with self.bystander.running() as load:
            cases = [
                ("text 3 MiB", "openai_completions",
                 {"text": "a" * (3 * mib), "chunks": 48}, "llm_max_text_kb (2048 KiB)"),
                ("thinking 3 MiB", "anthropic",
                 {"thinking": "t" * (3 * mib), "text": "done", "chunks": 48},
                 "llm_max_thinking_kb (2048 KiB)"),
                ("tool arguments 2 x 2.5 MiB", "openai_completions",
                 {"tool_calls": [{"id": "c%d" % i, "name": "write_file",
                                  "arguments": json.dumps({"path": "/x%d" % i,
                                                           "content": "z" * (5 * mib // 2)})}
                                 for i in range(2)], "split": 20},
                 "llm_max_tool_args_kb (4096 KiB)"),
            ]
            for wbits, enc in ((31, "gzip"), (15, "deflate")):
                body = self.compressed_stream(wbits, 64)
                cases.append(("%s bomb %d KiB -> 64 MiB" % (enc, len(body) // 1024),
                              "openai_completions",
                              {"raw_b64": base64.b64encode(body).decode(),
                               "content_encoding": enc}, "llm_max_response_mb (16 MiB)"))
            for label, kind, response, key in cases:
                f, dt = self.bomb_turn(kind, response)
                report(label, dt)
                self.assertEqual(f["error_code"], "output_too_large", (label, f))
                self.assertIn(key, f["error"], label)
                self.assertLess(dt, 30, label)
            # an error answer of 32 MiB: its first 64 KiB explain it, the
            # rest is not read
            _, mid, name = self.provider(self.fake.base + "/v1")
            self.fake.script(name, {"status": 400, "body": '{"error":{"message":"%s"}}'
                                    % ("x" * (32 * mib))})
            evs, dt = self.turn(self.session(mid), "hello", timeout=60)
            report("error body of 32 MiB", dt)
            self.assertEqual(self.failed(evs)["error_code"], "invalid_request")
            wait_until(lambda: self.fake.requests(name)[0]["client_disconnected"], timeout=10,
                       what="the runner to hang up on the error body")
        self.bystander.check(quiet, load, "output bombs")

    def test_sse_accumulated_text_is_capped(self):
        """everruns-sse keeps at most llm_max_text_kb of a message as its
        accumulated text, whatever live_text and the deltas hold (here an
        everruns-sse with a 4 KiB cap, and 12,000 bytes of deltas)."""
        proc, sock, _ = spawn_sse("hostile-acc", EVERRUNS_LLM_MAX_TEXT_KB=4,
                                  EVERRUNS_LLM_MAX_THINKING_KB=4)
        readers = []
        chunks, size = 6, 2000
        try:
            sid = self.session()
            h = sid[4:]
            uuid = "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
            m = api("GET", "/api/v1/sessions/%s/events" % sid, key=self.key).json["data"][-1]["sequence"]
            a = open_stream_on(sock, sid, self.key, readers)
            wait_until(lambda: a.first("event: connected"), what="connected")

            def deltas():
                return [json.loads(b.split("\ndata: ", 1)[1])["data"]
                        for b in a.text().split("\n\n")[:-1]
                        if b.startswith("event: output.message.delta")]
            quiet = self.bystander.measure(2.0)
            with self.bystander.running() as load:
                psql("WITH c AS (SELECT i, repeat(chr(65 + i %% 26), %d) AS t "
                     "FROM generate_series(0, %d) i), "
                     "ins AS (INSERT INTO live_text (session_id, m, off, text) "
                     "SELECT '%s', %d, i * %d, t FROM c) "
                     "SELECT count(pg_notify('evd', json_build_object('s', '%s', 'm', %d, "
                     "'off', i * %d, 'd', t)::text)) FROM c"
                     % (size, chunks - 1, uuid, m, size, h, m, size))
                wait_until(lambda: deltas() and len(deltas()[-1]["accumulated"]) >= 2 * size,
                           timeout=10, what="the first 4,000 bytes")
                time.sleep(1.0)
            ds = deltas()
            self.assertLessEqual(max(len(d["accumulated"]) for d in ds), 4096,
                                 [len(d["accumulated"]) for d in ds])
            self.assertEqual("".join(d["delta"] for d in ds), "A" * size + "B" * size)
            self.assertIsNone(proc.poll())
            self.bystander.check(quiet, load, "sse accumulated text")
        finally:
            close_all(proc, readers)

    # --- provider secrets ---------------------------------------------

    def test_base_url_change_needs_the_key(self):
        other = Fake()
        try:
            pid, mid, name = self.provider(self.fake.base + "/v1", api_key="sk-secret-1")
            quiet = self.bystander.measure(2.0)
            with self.bystander.running() as load:
                t = time.monotonic()
                r = api("PATCH", "/api/v1/llm-providers/" + pid,
                        {"base_url": other.base + "/v1"}, key=self.key)
                report("PATCH base_url without api_key", time.monotonic() - t)
                self.assertEqual(r.status, 400, r.text)
                self.assertEqual(r.json["code"], "validation_error")
                self.assertIn("api_key", r.json["error"])
                r = api("PATCH", "/api/v1/llm-providers/" + pid,
                        {"provider_type": "anthropic"}, key=self.key)
                self.assertEqual(r.status, 400, r.text)
                g = api("GET", "/api/v1/llm-providers/" + pid, key=self.key).json
                self.assertEqual((g["base_url"], g["provider_type"], g["api_key_set"]),
                                 (self.fake.base + "/v1", "openai_completions", True))
                # unchanged values and other fields need no key
                r = api("PATCH", "/api/v1/llm-providers/" + pid,
                        {"base_url": self.fake.base + "/v1", "name": name[:50] + "-r"},
                        key=self.key)
                self.assertEqual(r.status, 200, r.text)
                self.assertTrue(r.json["api_key_set"])
                # the key still goes to the first host only
                sid = self.session(mid)
                evs, _ = self.turn(sid, "hi")
                self.assertIn("turn.completed", [e["type"] for e in evs])
                # moving with null: the key is gone, nothing is sent
                r = api("PATCH", "/api/v1/llm-providers/" + pid,
                        {"base_url": other.base + "/v1", "api_key": None}, key=self.key)
                self.assertEqual(r.status, 200, r.text)
                self.assertFalse(r.json["api_key_set"])
                evs, _ = self.turn(sid, "again")
                self.assertIn("turn.completed", [e["type"] for e in evs])
                # moving with a new key
                r = api("PATCH", "/api/v1/llm-providers/" + pid,
                        {"base_url": self.fake.base + "/v1", "api_key": "sk-new-2"},
                        key=self.key)
                self.assertEqual(r.status, 200, r.text)
                self.assertTrue(r.json["api_key_set"])
            seen = [h for q in other.requests(name) for k, h in q["headers"].items()
                    if k.lower() in ("authorization", "x-api-key")]
            self.assertEqual(seen, [])
            self.assertEqual(len(other.requests(name)), 1)
            auth = [q["headers"].get("authorization") or q["headers"].get("Authorization")
                    for q in self.fake.requests(name)]
            self.assertEqual(auth, ["Bearer sk-secret-1"])
            self.bystander.check(quiet, load, "base_url change")
        finally:
            other.stop()

    def test_header_injection_through_api_key(self):
        quiet = self.bystander.measure(2.0)
        with self.bystander.running() as load:
            pid, _, _ = self.provider(self.fake.base + "/v1")
            for bad in ("sk-x\r\nX-Injected: 1", "sk-x\nX-Injected: 1", "sk-x\rY",
                        "sk\u0000x", "sk\tx", "sk\u007fx", "sk\u001bx"):
                t = time.monotonic()
                r = api("POST", "/api/v1/llm-providers",
                        {"name": "inj", "provider_type": "openai_completions",
                         "base_url": self.fake.base + "/v1", "api_key": bad}, key=self.key)
                dt = time.monotonic() - t
                self.assertEqual(r.status, 400, (bad, r.text))
                self.assertIn("api_key", r.json["error"], bad)
                r = api("PATCH", "/api/v1/llm-providers/" + pid, {"api_key": bad}, key=self.key)
                self.assertEqual(r.status, 400, (bad, r.text))
                self.assertIn("api_key", r.json["error"], bad)
            report("api_key with CR LF", dt)
            g = api("GET", "/api/v1/llm-providers/" + pid, key=self.key).json
            self.assertTrue(g["api_key_set"])
        self.bystander.check(quiet, load, "header injection")

    # --- the address guard --------------------------------------------

    def test_guard_refuses_tunnels_and_documentation_ranges(self):
        urls = {
            "http://[2001::1]/v1": "Teredo",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:8080/v1": "Teredo",
            "http://[64:ff9b:1::a00:1]/v1": "NAT64",
            "http://[2001:db8::1]/v1": "documentation",
            "http://[3fff::1]/v1": "documentation",
            "http://192.0.2.1/v1": "documentation",
            "http://198.51.100.1/v1": "documentation",
            "http://203.0.113.1/v1": "documentation",
        }
        quiet = self.bystander.measure(2.0)
        with self.bystander.running() as load:
            started = []
            for url in urls:
                _, mid, _ = self.provider(url)
                sid = self.session(mid)
                since = 0
                r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                        {"message": {"content": "hi"}}, key=self.key)
                self.assertEqual(r.status, 201, r.text)
                started.append((url, sid, since, time.monotonic()))
            for url, sid, since, t in started:
                evs = wait_turn(self.key, sid, since, timeout=30)
                f = self.failed(evs)
                report("provider at %s" % url, time.monotonic() - t)
                self.assertEqual(f["error_code"], "address_refused", (url, f))
                self.assertIn(urls[url], f["error"], url)
        self.bystander.check(quiet, load, "guard ranges")

    def test_loopback_probe_needs_an_exact_allow_entry(self):
        """A runner configured as a production host would be (the provider
        allowed by address and port) does not let a base_url reach another
        loopback service; the stack's own runner says loudly that its
        127.0.0.0/8 is for development."""
        seen = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        srv.settimeout(0.2)
        stop = threading.Event()

        def victim():
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                seen.append(1)
                c.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 18\r\n\r\nSECRET-BANNER-1234")
                c.close()
        th = threading.Thread(target=victim, daemon=True)
        th.start()
        paused = stack_pid("runner")
        os.kill(paused, signal.SIGSTOP)
        runner = start_runner("runner-hostile",
                              EVERRUNS_GUARD_ALLOW_PROVIDERS="127.0.0.1:%d" % self.fake.port)
        try:
            wait_until(lambda: psql("SELECT count(*) FROM runners WHERE pid = $1 AND "
                                    "seen_at > now() - interval '3 s'", runner.pid)[0][0] == "1",
                       timeout=10, what="our runner")
            quiet = self.bystander.measure(2.0)
            with self.bystander.running() as load:
                _, mid, _ = self.provider(self.fake.base + "/v1")
                evs, _ = self.turn(self.session(mid), "hi")
                self.assertIn("turn.completed", [e["type"] for e in evs])
                _, mid, _ = self.provider("http://127.0.0.1:%d/v1" % srv.getsockname()[1])
                evs, dt = self.turn(self.session(mid), "hi")
                f = self.failed(evs)
                report("provider at another loopback port", dt)
                self.assertEqual(f["error_code"], "address_refused", f)
                self.assertNotIn("SECRET", json.dumps(evs))
            self.assertEqual(seen, [])
            self.bystander.check(quiet, load, "loopback probe")
            with open(os.path.join(HOME, "log", "runner.log"), errors="replace") as f:
                self.assertTrue("for development only" in f.read(),
                                "the stack's runner did not warn about 127.0.0.0/8")
        finally:
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(timeout=15)
            except Exception:  # noqa: BLE001
                runner.kill()
            os.kill(paused, signal.SIGCONT)
            stop.set()
            srv.close()


if __name__ == "__main__":
    unittest.main()
