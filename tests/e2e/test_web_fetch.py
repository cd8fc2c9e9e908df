"""web_fetch's fetch_url and the address guard (ARCHITECTURE 6.2, 6.3), end to end.

Two loopback HTTP servers run in the test: a "victim" on 127.0.0.1 (and
::1) that must never see a request, and an "allowed" site on 127.0.0.2.
The SSRF battery runs on the stack's own runner (guard_allow_fetch empty):
every spelling of an internal address is a tool error. The allowed paths
(HTML reduced to text, redirects, limits, proxy variables ignored) run on
a runner started here with guard_allow_fetch = 127.0.0.2/32 and proxy
variables pointing at the victim, while the stack's runner is paused so
the turns are ours. A provider whose base_url is a refused address fails
its turn with address_refused."""

import base64
import http.server
import json
import os
import signal
import socket
import threading
import time
import unittest

from evr import tool_output, api, new_org, psql, stack_pid, start_runner, wait_until
from test_drivers import Fake
from test_turns import send, wait_idle

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

PAGE = """<!DOCTYPE html><html><head><title>Fetch test page</title>
<style>body { color: red }</style><script>document.write('<p>hidden</p>')</script>
</head><body><h1>Hello &amp; welcome</h1><p>First   paragraph,
with <b>bold</b> text.</p><!-- a comment --><ul><li>one</li><li>two</li></ul></body></html>"""


class Site(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host, family=socket.AF_INET):
        self.address_family = family
        self.seen = []
        http.server.ThreadingHTTPServer.__init__(self, (host, 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, ctype, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host")))
        p = self.path
        if p == "/page":
            self.send(200, "text/html; charset=utf-8", PAGE.encode())
        elif p == "/plain":
            self.send(200, "text/plain", b"just text\n")
        elif p.startswith("/redirect?to="):
            self.send(302, "text/plain", b"", [("Location", p[len("/redirect?to="):])])
        elif p == "/loop":
            self.send(302, "text/plain", b"", [("Location", "/loop")])
        elif p == "/missing":
            self.send(404, "text/html", b"<p>not here</p>")
        elif p == "/pixel.png":
            self.send(200, "application/octet-stream", PNG)
        elif p == "/binary":
            self.send(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        elif p == "/big":
            self.send(200, "text/plain", b"x" * 50000)
        elif p.startswith("/slow"):
            time.sleep(float(p.split("=")[1]) if "=" in p else 3)
            try:
                self.send(200, "text/plain", b"slow but here")
            except OSError:
                pass
        else:
            self.send(200, "text/plain", b"victim content")


def loopback_name():
    """A host name other than localhost that resolves to loopback here
    (Debian maps the host name in /etc/hosts), or None."""
    name = socket.gethostname()
    try:
        return name if name != "localhost" and \
            socket.gethostbyname(name).startswith("127.") else None
    except OSError:
        return None


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = new_org("web-fetch")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]
        cls.victim = Site("127.0.0.1")
        try:
            cls.victim6 = Site("::1", socket.AF_INET6)
        except OSError:
            cls.victim6 = None

    @classmethod
    def tearDownClass(cls):
        cls.victim.shutdown()
        if cls.victim6:
            cls.victim6.shutdown()

    def session(self, config=None):
        cap = {"ref": "web_fetch"}
        if config:
            cap["config"] = config
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "capabilities": [cap]},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def fetch(self, url, config=None, max_bytes=None, sid=None, timeout=20):
        """One turn in which the model (llmsim) calls fetch_url(url); the
        tool.completed event's data."""
        sid = sid or self.session(config)
        args = {"url": url}
        if max_bytes:
            args["max_bytes"] = max_bytes
        r = send(self.key, sid, "#tool fetch_url " + json.dumps(args))
        self.assertEqual(r.status, 201, r.text)
        evs = wait_idle(self.key, sid, r.json["sequence"], timeout=timeout)
        done = [e for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(len(done), 1, [e["type"] for e in evs])
        self.assertEqual(evs[-2]["type"], "turn.completed")
        return done[0]["data"]

    def assert_refused(self, url):
        d = self.fetch(url)
        self.assertFalse(d["success"], d)
        self.assertIn("address guard refused", d["error"], url)
        return d


class Battery(Base):
    """On the stack's runner: guard_allow_fetch is empty."""

    def test_ssrf_battery(self):
        v = self.victim.port
        urls = ["http://127.0.0.1:%d/" % v, "http://localhost:%d/" % v,
                "http://[::ffff:127.0.0.1]:%d/" % v, "http://0.0.0.0:%d/" % v,
                "http://10.0.0.1:%d/" % v, "http://10.255.255.1/",
                "http://169.254.169.254/latest/meta-data/",
                "http://2130706433:%d/" % v, "http://0177.0.0.1:%d/" % v,
                "http://0x7f.0.0.1:%d/" % v, "http://127.1:%d/" % v,
                "https://127.0.0.1:%d/" % v, "http://[fd00:ec2::254]/",
                "http://192.168.0.1/", "http://172.16.0.1/", "http://100.64.0.1/"]
        if self.victim6:
            urls.append("http://[::1]:%d/" % self.victim6.port)
        name = loopback_name()
        if name:
            urls.append("http://%s:%d/" % (name, v))
        for url in urls:
            with self.subTest(url=url):
                d = self.assert_refused(url)
                self.assertNotIn("victim content", json.dumps(d))
        self.assertEqual(self.victim.seen, [])
        if self.victim6:
            self.assertEqual(self.victim6.seen, [])

    def image_turn(self, sid, url):
        r = send(self.key, sid, [{"type": "text", "text": "what is this?"},
                                 {"type": "image", "url": url}])
        self.assertEqual(r.status, 201, r.text)
        return wait_idle(self.key, sid, r.json["sequence"])

    def test_image_url_at_a_refused_address_fails_the_turn(self):
        v = self.victim.port
        for url in ("http://127.0.0.1:%d/pixel.png" % v, "http://2130706433:%d/pixel.png" % v,
                    "http://169.254.169.254/pixel.png"):
            sid = self.session()
            evs = self.image_turn(sid, url)
            failed = [e for e in evs if e["type"] == "turn.failed"]
            self.assertEqual(len(failed), 1, [e["type"] for e in evs])
            self.assertEqual(failed[0]["data"]["error_code"], "image_unavailable")
            self.assertIn("address guard", failed[0]["data"]["error"])
            # the session is not stuck on that image: the next turn runs,
            # the model is told the image is not available
            m = send(self.key, sid, "and now?")
            evs = wait_idle(self.key, sid, m.json["sequence"])
            self.assertEqual(evs[-2]["type"], "turn.completed", evs[-2])
        self.assertEqual(self.victim.seen, [])

    def test_not_http_is_a_tool_error(self):
        for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1:%d/_x" % self.victim.port,
                    "dict://127.0.0.1:%d/" % self.victim.port, "not a url"):
            d = self.fetch(url)
            self.assertFalse(d["success"], d)
            self.assertIn("http", d["error"])
        self.assertEqual(self.victim.seen, [])

    def test_provider_base_url_at_a_refused_address_fails_the_turn(self):
        for base in ("http://169.254.169.254/v1", "http://10.0.0.1:9/v1",
                     "http://[::1]:%d/v1" % (self.victim6.port if self.victim6 else 9)):
            r = api("POST", "/api/v1/llm-providers",
                    {"name": "internal-%d" % abs(hash(base)), "provider_type": "openai_completions",
                     "base_url": base, "api_key": "sk-x"}, key=self.key)
            self.assertEqual(r.status, 201, r.text)
            m = api("POST", "/api/v1/llm-providers/%s/models" % r.json["id"],
                    {"model_id": "gpt-internal", "capabilities": ["chat", "tools"]}, key=self.key)
            self.assertEqual(m.status, 201, m.text)
            s = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "model_id": m.json["id"]},
                    key=self.key)
            sid = s.json["id"]
            msg = send(self.key, sid, "hello")
            self.assertEqual(msg.status, 201, msg.text)
            evs = wait_idle(self.key, sid, 1)
            failed = [e for e in evs if e["type"] == "turn.failed"]
            self.assertEqual(len(failed), 1, [e["type"] for e in evs])
            self.assertEqual(failed[0]["data"]["error_code"], "address_refused")
            self.assertIn("guard_allow_providers", failed[0]["data"]["error"])
        if self.victim6:
            self.assertEqual(self.victim6.seen, [])


class Allowed(Base):
    """On a runner of our own that allows 127.0.0.2 and has proxy
    variables pointing at the victim."""

    @classmethod
    def setUpClass(cls):
        Base.setUpClass()
        try:
            cls.site = Site("127.0.0.2")
        except OSError as e:
            raise unittest.SkipTest("cannot bind 127.0.0.2: %s" % e)
        proxy = "http://127.0.0.1:%d" % cls.victim.port
        cls.paused = stack_pid("runner")
        os.kill(cls.paused, signal.SIGSTOP)
        cls.runner = start_runner("runner-web-fetch",
                                  EVERRUNS_GUARD_ALLOW_FETCH="127.0.0.2/32",
                                  http_proxy=proxy, HTTP_PROXY=proxy, https_proxy=proxy,
                                  HTTPS_PROXY=proxy, ALL_PROXY=proxy, all_proxy=proxy)
        try:
            wait_until(lambda: psql("SELECT count(*) FROM runners WHERE pid = $1 AND "
                                    "seen_at > now() - interval '3 s'", cls.runner.pid)[0][0] == "1",
                       timeout=10, what="our runner")
        except AssertionError:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.runner.send_signal(signal.SIGTERM)
        try:
            cls.runner.wait(timeout=15)
        except Exception:
            cls.runner.kill()
        os.kill(cls.paused, signal.SIGCONT)
        cls.site.shutdown()
        Base.tearDownClass()

    def url(self, path):
        return "http://127.0.0.2:%d%s" % (self.site.port, path)

    def test_html_is_reduced_to_text_and_proxies_are_ignored(self):
        d = self.fetch(self.url("/page"))
        self.assertTrue(d["success"], d)
        res = tool_output(d)
        self.assertEqual(res["status"], 200)
        self.assertEqual(res["content_type"], "text/html; charset=utf-8")
        self.assertEqual(res["content"], "Fetch test page\n\nHello & welcome\n\n"
                                         "First paragraph, with bold text.\n\none\n\ntwo")
        self.assertFalse(res["truncated"])
        # fetched directly although http_proxy names the victim
        self.assertIn(("/page", "127.0.0.2:%d" % self.site.port), self.site.seen)
        d = self.fetch(self.url("/plain"))
        self.assertEqual(tool_output(d)["content"], "just text\n")
        self.assertEqual(self.victim.seen, [])

    def test_redirects(self):
        # within the allowed host: followed, the final URL reported
        d = self.fetch(self.url("/redirect?to=/plain"))
        self.assertTrue(d["success"], d)
        self.assertEqual(tool_output(d)["url"], self.url("/plain"))
        # to loopback, in several spellings: refused, the victim sees nothing
        v = self.victim.port
        for target in ("http://127.0.0.1:%d/" % v, "http://localhost:%d/" % v,
                       "http://2130706433:%d/" % v, "http://169.254.169.254/"):
            d = self.fetch(self.url("/redirect?to=" + target))
            self.assertFalse(d["success"], d)
            self.assertIn("address guard refused", d["error"])
        # to another scheme, and in a loop
        d = self.fetch(self.url("/redirect?to=file:///etc/passwd"))
        self.assertFalse(d["success"], d)
        d = self.fetch(self.url("/loop"))
        self.assertIn("more than 5 redirects", d["error"])
        self.assertEqual(len([s for s in self.site.seen if s[0] == "/loop"]), 6)
        self.assertEqual(self.victim.seen, [])

    def test_errors_and_limits(self):
        d = self.fetch(self.url("/missing"))
        self.assertFalse(d["success"])
        self.assertIn("HTTP 404", d["error"])
        d = self.fetch(self.url("/binary"))
        self.assertFalse(d["success"])
        self.assertIn("not text", d["error"])
        # byte limit: the capability's, lowered by the call's (results stay
        # under the runner's 64 KiB tool-result limit)
        d = self.fetch(self.url("/big"), config={"max_bytes": 20000})
        self.assertTrue(tool_output(d)["truncated"])
        self.assertEqual(len(tool_output(d)["content"]), 20000)
        d = self.fetch(self.url("/big"), config={"max_bytes": 20000}, max_bytes=50000)
        self.assertEqual(len(tool_output(d)["content"]), 20000)
        d = self.fetch(self.url("/big"), config={"max_bytes": 20000}, max_bytes=5000)
        self.assertEqual(len(tool_output(d)["content"]), 5000)
        d = self.fetch(self.url("/big"), max_bytes=60000)
        self.assertFalse(tool_output(d)["truncated"])
        self.assertEqual(len(tool_output(d)["content"]), 50000)
        # time limit
        t0 = time.monotonic()
        d = self.fetch(self.url("/slow?s=4"), config={"timeout_s": 1})
        self.assertFalse(d["success"])
        self.assertIn("longer than the limit of 1 s", d["error"])
        self.assertLess(time.monotonic() - t0, 3.5)

    def test_a_slow_fetch_does_not_stall_other_turns(self):
        slow = self.session({"timeout_s": 10})
        r = send(self.key, slow, '#tool fetch_url {"url": "%s"}' % self.url("/slow?s=3"))
        self.assertEqual(r.status, 201)
        wait_until(lambda: any(s[0].startswith("/slow") for s in self.site.seen),
                   timeout=5, what="the slow fetch")
        t0 = time.monotonic()
        quick = self.session()
        m = send(self.key, quick, "hello")
        evs = wait_idle(self.key, quick, m.json["sequence"], timeout=10)
        self.assertEqual(evs[-2]["type"], "turn.completed")
        self.assertLess(time.monotonic() - t0, 2.0)
        evs = wait_idle(self.key, slow, r.json["sequence"], timeout=15)
        done = [e for e in evs if e["type"] == "tool.completed"][0]["data"]
        self.assertTrue(done["success"], done)
        self.assertEqual(tool_output(done)["content"], "slow but here")

    def test_image_urls_are_fetched_through_the_guard(self):
        fake = Fake()
        try:
            r = api("POST", "/api/v1/llm-providers",
                    {"name": "fake-vision", "provider_type": "openai_completions",
                     "base_url": fake.base + "/v1", "api_key": "sk-x"}, key=self.key)
            m = api("POST", "/api/v1/llm-providers/%s/models" % r.json["id"],
                    {"model_id": "eyes", "capabilities": ["chat", "tools", "vision"]}, key=self.key)
            fake.script("eyes", {"text": "a pixel"}, {"text": "a pixel again"})
            harness = api("GET", "/api/v1/harnesses/base", key=self.key).json["id"]
            sid = api("POST", "/api/v1/sessions", {"harness_id": harness, "model_id": m.json["id"]},
                      key=self.key).json["id"]
            msg = send(self.key, sid, [{"type": "text", "text": "what is this?"},
                                       {"type": "image", "url": self.url("/pixel.png")}])
            evs = wait_idle(self.key, sid, msg.json["sequence"])
            self.assertEqual(evs[-2]["type"], "turn.completed", evs[-2])
            user = fake.requests("eyes")[0]["body"]["messages"][-1]
            self.assertEqual(user["content"][1], {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}})
            # a redirect to loopback is refused like any other request
            msg = send(self.key, sid, [{"type": "image", "url": self.url(
                "/redirect?to=http://127.0.0.1:%d/pixel.png" % self.victim.port)}])
            evs = wait_idle(self.key, sid, msg.json["sequence"])
            self.assertEqual(evs[-2]["data"]["error_code"], "image_unavailable")
            self.assertIn("address guard", evs[-2]["data"]["error"])
            self.assertEqual(len(fake.requests("eyes")), 1)
            self.assertEqual(self.victim.seen, [])
        finally:
            fake.stop()

    def test_cancel_aborts_a_fetch(self):
        sid = self.session({"timeout_s": 30})
        before = len(self.site.seen)
        r = send(self.key, sid, '#tool fetch_url {"url": "%s"}' % self.url("/slow?s=20"))
        wait_until(lambda: len(self.site.seen) > before, timeout=5, what="the fetch")
        t0 = time.monotonic()
        c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual(c.status, 200, c.text)
        evs = wait_idle(self.key, sid, r.json["sequence"], timeout=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("turn.cancelled", [e["type"] for e in evs])


if __name__ == "__main__":
    unittest.main()
