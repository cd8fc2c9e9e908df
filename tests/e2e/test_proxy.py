"""Behind an enterprise reverse proxy (ARCHITECTURE 2.1): a host mounted under
url_prefix = /everruns, trusting 127.0.0.1 as its proxy
(trusted_proxies), behind a second nginx of ours that buffers responses as
nginx does by default and forwards X-Forwarded-For / -Proto.

- every route answers under the prefix (API, health, UI, OpenAPI);
- the client address in the access log is the one the proxy forwarded,
  and https as the client used it (Strict-Transport-Security is sent);
  the same headers from an untrusted peer are ignored;
- SSE streams live through the buffering proxy (X-Accel-Buffering: no
  passes through), and through the README's settings (proxy_buffering
  off, long proxy_read_timeout) idle streams stay open on heartbeats.
"""

import http.client
import os
import time
import unittest
import urllib.parse

from evr import new_org, api, wait_until
from stacks import ExtraStack, FrontNginx
from test_sse import Stream, durable, idled

PREFIX = "/everruns"

# what README recommends for the stream routes of a proxy in front
README_STREAM_SETTINGS = """\
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 3s;
"""


def raw_get(port, path, headers, source="127.0.0.1"):
    """GET from a chosen loopback source address (an untrusted peer)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20,
                                   source_address=(source, 0))
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class Proxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.host = ExtraStack("proxied", EVERRUNS_URL_PREFIX=PREFIX,
                              EVERRUNS_TRUSTED_PROXIES="127.0.0.1",
                              EVERRUNS_SSE_HEARTBEAT_S="1")
        cls.fronts = []
        try:
            cls.host.start()
            cls.front = FrontNginx(cls.host.http_port, prefix=PREFIX + "/",
                                   forwarded_proto="https")
            cls.fronts.append(cls.front)
            cls.front.start()
            cls.tuned = FrontNginx(cls.host.http_port, prefix=PREFIX + "/",
                                   server_extra=README_STREAM_SETTINGS)
            cls.fronts.append(cls.tuned)
            cls.tuned.start()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.key = new_org("proxied")["api_key"]
        cls.base = cls.front.base + PREFIX
        cls.agent = api("GET", cls.base + "/api/v1/agents/assistant", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        for f in cls.fronts:
            f.stop()
        cls.host.stop()

    def access_log_line(self, marker):
        """The access log's line with marker in it (nginx writes it just
        after the response)."""
        def find():
            with open(os.path.join(self.host.home, "log", "nginx-access.log")) as f:
                lines = [x for x in f.readlines()[-20:] if marker in x]
            return lines[-1] if lines else None
        return wait_until(find, timeout=5, what="the access log line of " + marker)

    def test_routes_under_the_prefix(self):
        r = api("GET", self.base + "/health", key=None)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["status"], "ok")
        r = api("GET", self.base + "/api/v1/agents/assistant", key=self.key)
        self.assertEqual((r.status, r.json["name"]), (200, "assistant"), r.text)
        for i in range(3):
            self.assertEqual(api("POST", self.base + "/api/v1/sessions",
                                 {"agent_id": self.agent}, key=self.key).status, 201)
        # the query string reaches the API unchanged
        r = api("GET", self.base + "/api/v1/sessions?limit=2", key=self.key)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(len(r.json["data"]), 2)
        r = api("GET", self.base + "/api/v1/no-such-thing", key=self.key)
        self.assertEqual(r.status, 404)
        self.assertIn("code", r.json)
        r = api("GET", self.base + "/", key=None)
        self.assertEqual(r.status, 200)
        self.assertIn("text/html", r.headers["content-type"])
        r = api("GET", self.base + "/api-doc/openapi.json", key=None)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["openapi"][:2], "3.")
        # its server URL resolves to the prefix (OpenAPI: relative to
        # where the document was served from)
        server = urllib.parse.urljoin(self.base + "/api-doc/openapi.json",
                                      r.json["servers"][0]["url"])
        self.assertEqual(server, self.base + "/")
        # the prefix without its slash: a relative redirect (the host's
        # nginx does not know the public name)
        r = api("GET", self.host.base + PREFIX, key=None)
        self.assertEqual(r.status, 301)
        self.assertEqual(r.headers["location"], PREFIX + "/")
        # a path outside the prefix is not the application's
        r = api("GET", self.front.base + "/api/v1/agents", key=self.key)
        self.assertEqual(r.status, 404)

    def test_client_address_and_scheme_from_the_trusted_proxy(self):
        r = api("GET", self.base + "/api/v1/auth/me", key=self.key,
                headers={"X-Forwarded-For": "203.0.113.9", "User-Agent": "via-front"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.headers.get("strict-transport-security"), "max-age=31536000")
        line = self.access_log_line("via-front")
        self.assertTrue(line.startswith("203.0.113.9 "), line)
        self.assertIn(" https via=127.0.0.1", line)

    def test_forwarded_headers_of_an_untrusted_peer_are_ignored(self):
        st, h, _ = raw_get(self.host.http_port, PREFIX + "/api/v1/auth/me",
                           {"Authorization": "Bearer " + self.key,
                            "X-Forwarded-For": "198.51.100.1",
                            "X-Forwarded-Proto": "https", "User-Agent": "spoofer"},
                           source="127.0.0.2")
        self.assertEqual(st, 200)
        self.assertNotIn("strict-transport-security", h)
        line = self.access_log_line("spoofer")
        self.assertTrue(line.startswith("127.0.0.2 "), line)
        self.assertIn(" http via=127.0.0.2", line)

    def stream_live(self, base):
        r = api("POST", base + "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        s = Stream(sid, self.key, base=base, timeout=30)
        try:
            self.assertEqual(s.status, 200)
            self.assertEqual(s.frame()["event"], "connected")
            m = api("POST", base + "/api/v1/sessions/%s/messages" % sid,
                    {"message": {"content": [{"type": "text", "text": "#tokens 24\n#rate 8"}]}},
                    key=self.key)
            self.assertEqual(m.status, 201, m.text)
            s.until(lambda f: f.get("event") == "output.message.delta")
            t_delta = time.monotonic()
            # live: the turn is still running when its first words arrive
            st = api("GET", base + "/api/v1/sessions/" + sid, key=self.key).json["status"]
            self.assertEqual(st, "active")
            frames = durable(s.until(idled))
            self.assertGreater(time.monotonic() - t_delta, 1.5)
            self.assertEqual(frames[-1]["event"], "session.idled")
        finally:
            s.close()
        return sid

    def test_sse_live_through_a_buffering_proxy(self):
        self.stream_live(self.base)

    def test_sse_through_the_recommended_proxy_settings(self):
        base = self.tuned.base + PREFIX
        sid = self.stream_live(base)
        # idle for longer than the proxy's read timeout (3 s): heartbeats
        # (sse_heartbeat_s = 1) keep the stream open
        s = Stream(sid, self.key, base=base, query="since_sequence=1000", timeout=30)
        try:
            self.assertEqual(s.frame()["event"], "connected")
            t0 = time.monotonic()
            beats = 0
            while time.monotonic() - t0 < 5:
                f = s.frame()
                self.assertIsNotNone(f, "the proxy closed an idle stream")
                beats += "comment" in f
            self.assertGreaterEqual(beats, 3)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
