"""The stack itself: nginx in front (HTTP, HTTPS/2, static UI with its
headers, nginx's own errors as JSON), the FastCGI wiring, loopback-only
listeners, privileges, and everrunsctl reviving dead pieces."""

import os
import shutil
import signal
import stat
import subprocess
import unittest

import evr

RUN = os.path.join(evr.HOME, "run")


def pids_of(name):
    try:
        with open(os.path.join(RUN, name + ".pid")) as f:
            return [int(x) for x in f.read().split() if x.isdigit()]
    except OSError:
        return []


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return -1


def listening_addresses(port):
    """Local addresses of the TCP sockets listening on port."""
    found = []
    for fn, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(fn) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            addr, p = cols[1].split(":")
            if int(p, 16) == port and cols[3] == "0A":
                found.append(("v6:" if v6 else "") + addr)
    return found


def assert_json_error(tc, r, status, code):
    tc.assertEqual(r.status, status, r)
    tc.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r.headers)
    tc.assertIsInstance(r.json, dict, r)
    tc.assertEqual(r.json.get("code"), code, r)
    tc.assertIsInstance(r.json.get("error"), str, r)


class StackTest(unittest.TestCase):

    def test_health_ok(self):
        r = evr.api("GET", "/health", key=None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ok")
        self.assertTrue(r.headers["content-type"].startswith("application/json"))

    def test_health_over_https(self):
        r = evr.api("GET", evr.HTTPS_BASE + "/health", key=None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ok")

    @unittest.skipUnless(shutil.which("curl"), "needs curl")
    def test_https_speaks_http2(self):
        p = subprocess.run(
            ["curl", "-sk", "--noproxy", "*", "--http2", "-o", "/dev/null",
             "-w", "%{http_version} %{http_code}", evr.HTTPS_BASE + "/health"],
            stdout=subprocess.PIPE, universal_newlines=True, timeout=30)
        self.assertEqual(p.stdout, "2 200")

    def test_static_index_with_csp(self):
        r = evr.api("GET", "/", key=None)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        self.assertIn("<html", r.text.lower())
        csp = r.headers.get("content-security-policy", "")
        self.assertIn("default-src 'self'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")

    def test_static_index_has_no_inline_script(self):
        r = evr.api("GET", "/index.html", key=None)
        self.assertEqual(r.status, 200, r)
        low = r.text.lower()
        self.assertNotIn("<script>", low)
        self.assertNotIn(" onclick=", low)
        self.assertNotIn("<style", low)

    def test_api_responses_carry_nosniff_not_csp_of_the_ui(self):
        r = evr.api("GET", "/api/v1/auth/me")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
        # no CORS headers for a same-origin setup (cors_origins empty)
        r = evr.api("GET", "/api/v1/auth/me", headers={"Origin": "https://evil.example"})
        self.assertNotIn("access-control-allow-origin", r.headers)

    def test_nginx_413_is_json(self):
        r = evr.api("POST", "/api/v1/sessions", raw=b"x" * (2 * 1024 * 1024),
                    content_type="application/json")
        assert_json_error(self, r, 413, "payload_too_large")

    def test_unknown_api_route_is_json_404(self):
        r = evr.api("GET", "/api/v1/no-such-thing")
        assert_json_error(self, r, 404, "not_found")

    def test_openapi_document_is_served(self):
        r = evr.api("GET", "/api-doc/openapi.json", key=None)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        doc = r.json
        self.assertTrue(doc["openapi"].startswith("3."))
        self.assertIn("/api/v1/sessions", doc["paths"])
        self.assertIn("post", doc["paths"]["/api/v1/sessions/{session_id}/messages"])

    def test_listens_on_loopback_only(self):
        for port in (int(evr.stack_env("EVR_HTTP_PORT")), int(evr.stack_env("EVR_HTTPS_PORT"))):
            addrs = listening_addresses(port)
            self.assertTrue(addrs, "nothing listens on %d" % port)
            for a in addrs:
                self.assertEqual(a, "0100007F", "port %d listens on %s" % (port, a))

    def test_state_files_are_private(self):
        for rel in ("admin-api-key", "tls/server.key"):
            st = os.stat(os.path.join(evr.HOME, rel))
            self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077, 0, rel)
        user = evr.stack_env("EVR_RUN_USER")
        if os.geteuid() == 0:
            import pwd
            self.assertNotEqual(user, "root")
            self.assertEqual(pwd.getpwuid(os.stat(evr.HOME).st_uid).pw_name, user)

    @unittest.skipUnless(os.geteuid() == 0, "only meaningful when run as root")
    def test_nothing_runs_as_root(self):
        pids = pids_of("api") + pids_of("nginx")
        with open(os.path.join(evr.HOME, "pg", "postmaster.pid")) as f:
            pids.append(int(f.readline()))
        self.assertGreaterEqual(len(pids), 3)
        for pid in pids:
            self.assertNotEqual(uid_of(pid), 0, "pid %d runs as root" % pid)

    def test_status(self):
        p = evr.ctl("status")
        self.assertIn("api", p.stdout)
        self.assertRegex(p.stdout, r"nginx\s+running")

    def test_start_on_a_running_stack_is_a_no_op(self):
        before = sorted(pids_of("api")) + pids_of("nginx")
        p = evr.ctl("start")
        self.assertIn("already running", p.stdout)
        self.assertEqual(sorted(pids_of("api")) + pids_of("nginx"), before)

    def test_api_down_is_json_502_and_start_revives_it(self):
        pids = pids_of("api")
        self.assertTrue(pids)
        try:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            evr.wait_until(lambda: not any(alive(p) for p in pids), 10,
                           what="the api processes to die")
            r = evr.wait_until(
                lambda: (lambda r: r if r.status == 502 else None)(
                    evr.api("GET", "/api/v1/auth/me")),
                10, what="a 502")
            assert_json_error(self, r, 502, "bad_gateway")
            r = evr.api("GET", "/health", key=None)
            assert_json_error(self, r, 502, "bad_gateway")
            st = evr.ctl("status", check=False)
            self.assertNotEqual(st.returncode, 0, st.stdout)
        finally:
            p = evr.ctl("start")
        self.assertIn("starting everruns-api", p.stdout)
        self.assertEqual(evr.api("GET", "/health", key=None).status, 200)
        self.assertEqual(evr.api("GET", "/api/v1/auth/me").status, 200)
        self.assertTrue(set(pids_of("api")).isdisjoint(pids))


if __name__ == "__main__":
    unittest.main()
